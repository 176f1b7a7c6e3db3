"""``spikelm lm evaluate``: perplexities of a converted LM over one text or a corpus of documents.

Per document: the float model's, the quantized reference's (QANN) and the spiking network's
(SNN) perplexity, the top-1 agreement of float and QANN, whether the SNN's logits equal the
QANN's bit for bit, SynOps and steps of the spike-by-spike run, and wall time. Text is cut
into windows of the model's context (:func:`spikelm.lm.evaluate.windows`); each window is
scored from its second token on. Characters outside the tokenizer's vocabulary are dropped.

With ``--docs``, each document is one Dask task. A worker converts the model once per
(model folder, bits) and keeps it (:mod:`spikelm.scaleout.worker`), so a corpus of many short
documents pays one conversion per worker, not one per document. What crosses the network is
the model's *path* and each document's text; results come back as one row each. Corpus
totals weight each document by its tokens: perplexity = exp(sum of NLL / sum of tokens).
"""
from __future__ import annotations

import json
import math
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spikelm.errors import ConfigError, FileFormatError

#: Bounds on what is read before anything is allocated for it.
MAX_CORPUS_BYTES = 1 << 30
MAX_DOCUMENTS = 1_000_000
CALIBRATION_CHARS = 4000
COLUMNS = ["doc", "status", "tokens", "float_ppl", "qann_ppl", "top1_agreement", "snn_tokens", "snn_ppl",
           "qann_ppl_snn_tokens", "float_ppl_snn_tokens", "snn_exact", "synops", "macs", "synops_over_macs",
           "shift_adds", "spikes", "spikes_per_activation", "steps", "wall_s", "float_nll", "qann_nll", "snn_nll",
           "qann_nll_snn_tokens", "float_nll_snn_tokens", "error"]
#: The printed columns: snn_ppl covers only the first snn_tokens, so the QANN's and the float
#: model's perplexities on those same tokens stand beside it (float_ppl and qann_ppl cover all)
SHOWN = ["doc", "status", "tokens", "float_ppl", "qann_ppl", "top1_agreement", "snn_tokens", "snn_ppl",
         "qann_ppl_snn_tokens", "float_ppl_snn_tokens", "snn_exact", "synops_over_macs", "spikes_per_activation",
         "wall_s"]


@dataclass(frozen=True)
class EvalOptions:
    """How each document is evaluated: the model (folder, None = shipped demo), bits, SNN run options."""

    model: str | None = None
    bits: str | None = None
    backend: str = "numba"
    max_steps: int | None = None
    snn_tokens: int | None = None
    coding: str | None = None
    context: int | None = None
    weight_bits: int | None = None
    window: int | None = None
    clamp: str | None = None
    methods: str | None = None
    budget: float | None = None
    calibration_text: str | None = None  # the text itself (workers may not see the client's files)

    @property
    def key(self) -> tuple:
        """What decides the converted model (the cache key on workers)."""
        return (self.model, self.bits, self.coding, self.context, self.weight_bits, self.clamp, self.methods,
                self.budget, self.calibration_text)


# -- documents ------------------------------------------------------------------------------------
def read_documents(source, option: str = "--docs") -> list:
    """``[(doc id, text)]`` from a directory of ``.txt`` files (sorted by name) or a JSON Lines file.

    A JSON Lines document is ``{"text": "...", "id": ...}`` (id optional: the line number).
    """
    p = Path(source)
    if p.is_dir():
        files = sorted(f for f in p.glob("*.txt") if f.is_file())
        if not files:
            raise ConfigError(f"{option} {source}: no .txt files in the directory")
        _bound(sum(f.stat().st_size for f in files), len(files), source, option)
        return [(f.name, _read_text(f, option)) for f in files]
    if not p.is_file():
        raise ConfigError(f"{option} {source}: no such directory or file")
    _bound(p.stat().st_size, 0, source, option)
    docs, seen = [], set()
    with open(p, encoding="utf-8", errors="strict") as f:
        try:
            lines = list(f)
        except UnicodeDecodeError as e:
            raise FileFormatError(f"{source}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            raise FileFormatError(f"{source}: line {n}: not JSON ({e}); {option} takes a directory of .txt files "
                                  "or JSON Lines; one text file is --text") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise FileFormatError(f"{source}: line {n}: expected an object with a string field \"text\"")
        doc = obj.get("id", f"line {n}")
        if not isinstance(doc, (str, int)) or isinstance(doc, bool):
            raise FileFormatError(f"{source}: line {n}: id: expected a string or an integer, got {doc!r}")
        doc = str(doc)
        if doc in seen:
            raise FileFormatError(f"{source}: line {n}: id {doc!r} appears twice")
        seen.add(doc)
        docs.append((doc, obj["text"]))
        if len(docs) > MAX_DOCUMENTS:
            raise FileFormatError(f"{source}: more than {MAX_DOCUMENTS} documents")
    if not docs:
        raise FileFormatError(f"{source}: no documents (no non-empty lines)")
    return docs


def _bound(size, count, source, option):
    if size > MAX_CORPUS_BYTES:
        raise ConfigError(f"{option} {source}: {size:,} bytes; at most {MAX_CORPUS_BYTES:,} per run (split the corpus)")
    if count > MAX_DOCUMENTS:
        raise ConfigError(f"{option} {source}: {count} documents; at most {MAX_DOCUMENTS}")


def _read_text(path, option):
    from spikelm.io.textfile import read_text

    # a named pipe would block, a directory or a huge file raise: one line each, naming the file
    return read_text(path, f"a UTF-8 text file ({option})", MAX_CORPUS_BYTES)


# -- the model ------------------------------------------------------------------------------------
def check_model(opts: EvalOptions) -> EvalOptions:
    """Check the options on the client; the model path becomes absolute, the bits a plain string."""
    import dataclasses

    from spikelm.lm.codings import check_coding
    from spikelm.lm.models import resolve
    from spikelm.lm.precision import parse_bits

    bits = None if opts.bits is None else str(parse_bits(opts.bits, "--bits"))  # a string travels to workers
    if opts.coding is not None:
        check_coding(opts.coding)
    if opts.max_steps is not None and opts.max_steps < 1:
        raise ConfigError(f"--max-steps {opts.max_steps}; allowed: a positive integer")
    if opts.snn_tokens is not None and opts.snn_tokens < 0:
        raise ConfigError(f"--snn-tokens {opts.snn_tokens}; allowed: an integer >= 0")
    if opts.window is not None and opts.window < 2:
        raise ConfigError(f"--window {opts.window}; allowed: an integer >= 2")
    path = resolve(opts.model)
    return dataclasses.replace(opts, bits=bits, model=None if path is None else str(path.resolve()))


def load_model(opts: EvalOptions):
    """Convert the model: ``(SpikingLM, tokenizer)`` (:func:`spikelm.lm.models.open_for_cli`)."""
    from spikelm.lm.models import open_for_cli

    snn, tok, _ = open_for_cli(opts.model, opts.bits, opts.coding, opts.context, opts.weight_bits,
                               opts.calibration_text, opts.clamp, opts.methods, opts.budget)
    return snn, tok


class ModelCache:
    """Converted models of one process, keyed by (model folder, bits); the ``size`` most recent kept."""

    def __init__(self, size: int = 2):
        self.size = size
        self._models = OrderedDict()
        self.conversions = 0

    def get(self, opts: EvalOptions):
        key = opts.key
        if key in self._models:
            self._models.move_to_end(key)
        else:
            self._models[key] = load_model(opts)
            self.conversions += 1
            while len(self._models) > self.size:
                self._models.popitem(last=False)
        return self._models[key]


# -- one document ---------------------------------------------------------------------------------
def _nll(logits, targets) -> float:
    from scipy.special import log_softmax

    return float(-log_softmax(logits, axis=-1)[np.arange(len(targets)), targets].sum())


def evaluate_text(snn, tok, text: str, opts: EvalOptions, progress: bool = False) -> dict:
    """The figures of one document (a row of the table; ``status`` "ok")."""
    from spikelm.lm.evaluate import evaluate

    t0 = time.perf_counter()
    ids = tok.encode(tok.clean(text))
    if ids.size < 2:
        raise ConfigError(f"{ids.size} token(s) after dropping characters outside the vocabulary; at least 2 needed")
    n_snn = ids.size if opts.snn_tokens is None else min(opts.snn_tokens, ids.size)
    r = evaluate(snn, ids, n_snn, opts.backend, opts.window, opts.max_steps, progress)
    row = {"status": "ok", "error": "", "tokens": r["tokens"], "float_ppl": r["float_ppl"], "qann_ppl": r["qann_ppl"],
           "top1_agreement": r["top1_agreement"], "float_nll": r["float_nll"], "qann_nll": r["qann_nll"],
           "snn_tokens": r.get("snn_tokens", 0), "snn_nll": r.get("snn_nll", 0.0),
           "qann_nll_snn_tokens": r.get("qann_nll_same_tokens", 0.0), "snn_exact": r.get("snn_logits_exact", True),
           "snn_ppl": r.get("snn_ppl", math.nan), "qann_ppl_snn_tokens": r.get("qann_ppl_same_tokens", math.nan),
           "float_ppl_snn_tokens": r.get("float_ppl_same_tokens", math.nan),
           "float_nll_snn_tokens": r.get("float_nll_same_tokens", 0.0)}
    for key in ("synops", "macs", "shift_adds", "spikes", "steps"):
        row[key] = r.get(key, 0)
    row["synops_over_macs"] = r.get("synops_over_macs", math.nan)
    row["spikes_per_activation"] = r.get("spikes_per_activation", math.nan)
    row["wall_s"] = time.perf_counter() - t0
    return row


def evaluate_document(doc: str, text: str, opts: EvalOptions, cache: ModelCache) -> dict:
    """One document with a model from ``cache`` (what a worker task does)."""
    snn, tok = cache.get(opts)
    return {"doc": doc, **evaluate_text(snn, tok, text, opts)}


def totals(rows: list) -> dict:
    """Corpus totals over the documents that finished: token-weighted perplexities and agreement."""
    ok = [r for r in rows if r["status"] == "ok"]
    tok = sum(r["tokens"] for r in ok)
    snn_tok = sum(r["snn_tokens"] for r in ok)

    def ppl(key, n):
        return math.exp(sum(r[key] for r in ok) / n) if n else math.nan

    return {"doc": "corpus", "status": f"{len(ok)} of {len(rows)} ok", "tokens": tok,
            "float_ppl": ppl("float_nll", tok), "qann_ppl": ppl("qann_nll", tok),
            "top1_agreement": sum(r["top1_agreement"] * r["tokens"] for r in ok) / tok if tok else math.nan,
            "snn_tokens": snn_tok, "snn_ppl": ppl("snn_nll", snn_tok),
            "qann_ppl_snn_tokens": ppl("qann_nll_snn_tokens", snn_tok),
            "float_ppl_snn_tokens": ppl("float_nll_snn_tokens", snn_tok),
            "snn_exact": all(r["snn_exact"] for r in ok), "synops": sum(r["synops"] for r in ok),
            "steps": sum(r["steps"] for r in ok), "wall_s": sum(r["wall_s"] for r in ok)}


def evaluate_document_task(doc: str, text: str, opts: EvalOptions) -> dict:
    """One document on a Dask worker, with the worker's cached model."""
    from spikelm.scaleout import worker

    return evaluate_document(doc, text, opts, worker.cache())


# -- a corpus ---------------------------------------------------------------------------------------
def evaluate_corpus(docs: list, opts: EvalOptions, scheduler: str = "local", progress: bool = True) -> list:
    """One row per document (input order); a document that fails gets status "error" and its error."""
    from spikelm.scaleout.cluster import open_client, run_tasks, say

    opts = check_model(opts)
    rows = [{"doc": d, "status": "error", "error": "not run"} for d, _ in docs]
    with open_client(scheduler, "spikelm lm evaluate --docs") as client:
        if client is None:
            cache = ModelCache()
            tasks = [(f"doc-{i}", evaluate_document, (d, t, opts, cache)) for i, (d, t) in enumerate(docs)]
        else:
            from spikelm.scaleout import worker

            client.register_plugin(worker.ModelCachePlugin(ModelCache), name=worker.PLUGIN)
            tasks = [(f"doc-{i}", evaluate_document_task, (d, t, opts)) for i, (d, t) in enumerate(docs)]
        for i, result, error in run_tasks(client, tasks, "documents", progress):
            if error is None:
                rows[i] = result
            else:
                rows[i] = {"doc": docs[i][0], "status": "error", "error": error}
                say(f"document {docs[i][0]!r} failed: {error}", progress)
    return rows


def options_of(args) -> EvalOptions:
    """The evaluation options of ``spikelm lm evaluate``'s arguments, checked."""
    return check_model(EvalOptions(args.model, args.bits, args.backend, args.max_steps, args.snn_tokens,
                                   getattr(args, "coding", None), getattr(args, "context", None),
                                   getattr(args, "weight_bits", None), getattr(args, "window", None),
                                   getattr(args, "clamp", None), getattr(args, "methods", None),
                                   getattr(args, "budget", None), _calibration_text(args)))


def _calibration_text(args) -> str | None:
    """The text of ``--calibration FILE`` (read on the client), or None."""
    path = getattr(args, "calibration", None)
    if path is None:
        return None
    from spikelm.lm.models import read_calibration

    return read_calibration(path)


def run_cli(args) -> int:
    """``spikelm lm evaluate`` (options in :func:`spikelm.scaleout.cli.add_evaluate_options`)."""
    from spikelm.scaleout.cluster import parse_scheduler
    from spikelm.scaleout.table import format_table, write_table

    opts = options_of(args)  # --out and --json were checked by spikelm.lm.cli.check_outputs, before this
    if args.docs:
        parse_scheduler(args.scheduler)
        docs = read_documents(args.docs)
        print(f"{len(docs)} documents from {args.docs} on {args.scheduler}; model "
              f"{opts.model or 'demo'}, bits {opts.bits or 'default'}, backend {opts.backend}")
        rows = evaluate_corpus(docs, opts, args.scheduler, progress=not args.no_progress)
    else:
        from spikelm.lm import texts

        name, text = (os.path.basename(args.text), _read_text(args.text, "--text")) if args.text else \
            ("python-topics (built-in held-out text)", texts.heldout_text())
        snn, tok = load_model(opts)
        print(f"model {opts.model or 'demo'}: {snn.config.n_layer} layers, activation bits {snn.bits}, "
              f"{snn.coding} spikes, context {snn.context}, backend {opts.backend}", flush=True)
        try:
            rows = [{"doc": name, **evaluate_text(snn, tok, text, opts, progress=not args.no_progress)}]
        except ConfigError as e:
            raise ConfigError(f"--text {args.text}: {e}") from None
        _print_text_summary(rows[0])
    total = totals(rows)
    print(format_table(rows + [total], SHOWN))
    meta = {"model": opts.model or "demo", "bits": opts.bits or "default", "coding": opts.coding or "default",
            "backend": opts.backend}
    if args.out:
        write_table(args.out, "documents", rows, COLUMNS, meta,
                    more={"corpus": ([total], [c for c in COLUMNS if c in total])})
        print(f"table: {args.out}")
    if getattr(args, "json", None):
        from spikelm.io.outputs import write_text

        write_text(args.json, json.dumps({"options": meta, "documents": rows, "corpus": total},
                                         indent=1, default=float) + "\n")
        print(f"figures: {args.json}")
    failed = [r for r in rows if r["status"] != "ok"]
    for r in failed:
        print(f"failed: {r['doc']}: {r['error']}")
    if not total["snn_exact"]:
        print("SNN logits differ from the QANN's on some document (snn_exact false): please report this")
    return 1 if failed or not total["snn_exact"] else 0


def _print_text_summary(r):
    f, q = r["float_ppl"], r["qann_ppl"]
    print(f"{r['tokens']:,} tokens scored: float perplexity {f:.3f}, QANN {q:.3f} ({100 * (q / f - 1):+.2f} %), "
          f"top-1 agreement with float {100 * r['top1_agreement']:.2f} %")
    if r["snn_tokens"]:
        print(f"SNN on the first {r['snn_tokens']:,} scored tokens: perplexity {r['snn_ppl']:.3f} (on the same "
              f"tokens: QANN {r['qann_ppl_snn_tokens']:.3f}, float {r['float_ppl_snn_tokens']:.3f}), logits equal "
              "to the QANN's: "
              f"{'yes' if r['snn_exact'] else 'NO'}; SynOps/MACs {r['synops_over_macs']:.3f}, "
              f"spikes per activation {r['spikes_per_activation']:.3f}")
