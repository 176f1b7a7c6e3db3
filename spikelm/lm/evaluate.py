"""Perplexities of the float model, the QANN and the SNN on a text, top-1 agreement, and what
the spiking run cost.

Text is cut into windows of ``window`` tokens (default: the model's context, at most 512);
each window is scored from its second token on. The SNN runs spike by spike on the first
``snn_tokens`` tokens (in windows as well), with its logits checked equal to the QANN's;
its SynOps are compared with the dense model's MACs on the same tokens.

``python -m spikelm.lm.evaluate [--bits 8 6 4] [--snn-chars 1024]`` prints the demo model's
table of docs/lm.md.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np


#: logit rows normalised at a time (the temporaries of a [rows, vocab] block)
NLL_ROWS = 64
#: float logits of a window at least this large: what its forward freed is handed back
TRIM_LOGITS = 32 * 2**20


def _nll(logits: np.ndarray, targets: np.ndarray) -> float:
    """Summed negative log-likelihood of ``targets``; rows are independent, so blocks of
    NLL_ROWS give each row's log-probability as one pass would, summed once at the end."""
    picked = np.empty(len(targets))
    for lo in range(0, len(targets), NLL_ROWS):
        rows = logits[lo : lo + NLL_ROWS]
        z = rows - rows.max(-1, keepdims=True)
        picked[lo : lo + NLL_ROWS] = z[np.arange(len(z)), targets[lo : lo + NLL_ROWS]] - np.log(np.exp(z).sum(-1))
    return float(-picked.sum())


def windows(ids: np.ndarray, size: int):
    return [ids[s : s + size] for s in range(0, len(ids) - 1, size) if len(ids[s : s + size]) >= 2]


def window_size(context: int, window: int | None = None) -> int:
    """Tokens per scoring window: ``window`` (default 512), at most the model's ``context``."""
    return min(context, 512) if window is None else min(int(window), context)


def float_part(logits_of, ids: np.ndarray, size: int, snn_tokens: int = 0, progress: bool = False) -> dict:
    """The float model's share of :func:`evaluate`: ``logits_of(window)`` [len, vocab] on each
    window of ``size`` tokens gives its NLL and its top-1 tokens (kept for the agreement), one
    [window, vocab] array at a time; and the NLL on the SNN's windows (the first ``snn_tokens``)."""
    from tqdm import tqdm

    ids = np.asarray(ids)
    out = {"window": size, "float_nll": 0.0, "top1": [], "snn_float_nll": 0.0, "snn_tokens": snn_tokens}
    ws = windows(ids, size)
    sw = windows(ids[:snn_tokens], size) if snn_tokens else []
    bar = tqdm(total=len(ws) + len(sw), desc="float", unit="window", file=sys.stderr, disable=not progress)
    for w in ws:
        f = logits_of(w)
        out["float_nll"] += _nll(f[:-1], w[1:])
        out["top1"].append(f[:-1].argmax(-1))
        del f  # one [window, vocab] array at a time
        bar.update()
    for w in sw:
        out["snn_float_nll"] += _nll(logits_of(w)[:-1], w[1:])
        bar.update()
    bar.close()
    return out


def float_scores(loaded, ids: np.ndarray, snn_tokens: int = 0, window: int | None = None, sink: bool = True,
                 progress: bool = False) -> dict:
    """:func:`float_part` of a float model read but not yet converted (``loaded``: a
    :class:`~spikelm.lm.load.LoadedModel`), led by the constant prefix conversion gives it (the
    BOS attention sink, with ``sink``): pass it to :func:`evaluate` as ``floats`` once converted
    with ``keep_float=False``, so the float model and the spiking one are never held together
    (SmolLM2's evaluation: 0.5 GiB less at the peak)."""
    from spikelm.lm.quantize import check_tokens
    from spikelm.lm.tensors import return_freed_memory

    cfg, fam, params = loaded.config, loaded.family, loaded.params
    bos = getattr(cfg, "bos_token_id", None)
    prefix = np.array([bos] if sink and bos is not None else [], dtype=np.int64)
    context = cfg.n_positions - len(prefix)
    ids = check_tokens(ids, cfg.vocab_size, "ids")

    large = [False]  # some window's logits were large enough to hand its memory back

    def logits_of(w):
        f = fam.float_logits(cfg, params, np.concatenate([prefix, w]))[len(prefix) :]
        # what the forward of a large window freed goes back to the system: the conversion that
        # follows starts lean (SmolLM2: a peak of 1.40 GiB against 1.46, and 0.12 GiB less held
        # after; a heap fixed at 1 MiB for the whole pass, lean_heap, peaked at 1.27 GiB but
        # took 1.3x as long)
        if f.nbytes >= TRIM_LOGITS:
            large[0] = True
            return_freed_memory()
        return f

    out = float_part(logits_of, ids, window_size(context, window), snn_tokens, progress)
    out["prefix"] = prefix
    if large[0]:
        return_freed_memory()  # (the last window's too)
    return out


def evaluate(snn, ids: np.ndarray, snn_tokens: int = 0, backend: str = "numba", window: int | None = None,
             max_steps: int | None = None, progress: bool = False, floats: dict | None = None) -> dict:
    """Float and QANN perplexity and agreement on ``ids``; the SNN on the first ``snn_tokens``.

    ``floats``: the float model's part, computed before (:func:`float_scores` on the same
    ids, window and snn_tokens); the float model is then not read (``snn`` may have released it).

    Returns tokens, float_ppl, qann_ppl, top1_agreement (and the NLL sums), and, when the SNN
    ran: snn_tokens, snn_ppl, qann_ppl_same_tokens and float_ppl_same_tokens (the QANN and the
    float model on the SNN's tokens: the figures to compare snn_ppl with), snn_logits_exact, synops, macs,
    synops_over_macs, shift_adds, spikes, spikes_per_activation, steps.
    """
    from tqdm import tqdm

    from spikelm.errors import ConfigError
    from spikelm.lm.report import activations
    from spikelm.lm.tensors import return_freed_memory

    size = window_size(snn.context, window)
    ids = np.asarray(ids)
    ws = windows(ids, size)
    if floats is None:
        floats = float_part(snn.float_logits, ids, size, snn_tokens, progress)
    else:
        prefix = snn.graph.prefix.ids if snn.graph.prefix is not None else np.zeros(0, np.int64)
        if floats["window"] != size or len(floats["top1"]) != len(ws) or floats["snn_tokens"] != snn_tokens \
                or not np.array_equal(floats.get("prefix", prefix), prefix):
            raise ConfigError("evaluate: floats were scored on other windows, SNN tokens or prefix than this "
                              f"model's (window {size}, {len(ws)} windows, snn_tokens {snn_tokens}); score them "
                              "with float_scores on the same ids and options")
    out = {"float_nll": floats["float_nll"], "qann_nll": 0.0, "tokens": 0, "agree": 0}
    bar = tqdm(total=len(ws), desc="QANN", unit="window", file=sys.stderr, disable=not progress)
    for w, f_top in zip(ws, floats["top1"]):
        q = snn.reference(w, codes=False).logits
        out["qann_nll"] += _nll(q[:-1], w[1:])
        out["agree"] += int((f_top == q[:-1].argmax(-1)).sum())
        big = q.nbytes >= TRIM_LOGITS
        del q  # one [window, vocab] array at a time
        if big:  # what the reference freed goes back to the system (else the heap keeps ~0.3 GiB)
            return_freed_memory()
        out["tokens"] += len(w) - 1
        bar.update()
    bar.close()
    n = max(out["tokens"], 1)
    res = {"tokens": out["tokens"], "float_ppl": math.exp(out["float_nll"] / n),
           "qann_ppl": math.exp(out["qann_nll"] / n), "top1_agreement": out["agree"] / n,
           "float_nll": out["float_nll"], "qann_nll": out["qann_nll"]}
    sw = windows(ids[:snn_tokens], size) if snn_tokens else []
    if not sw:
        return res
    s = {"snn_nll": 0.0, "qann_nll": 0.0, "float_nll": 0.0, "n": 0, "exact": True, "synops": 0, "macs": 0, "shift_adds": 0,
         "spikes": 0, "act": 0, "steps": 0, "positions": 0}
    bar = tqdm(total=sum(len(w) for w in sw), desc="SNN", unit="token", file=sys.stderr, disable=not progress)
    for w in sw:
        sim = snn.simulate(w, backend=backend, max_steps=max_steps, on_token=lambda *a: bar.update())
        q = snn.reference(w, codes=False).logits
        s["exact"] &= bool(np.array_equal(sim.logits, q))
        s["snn_nll"] += _nll(sim.logits[:-1], w[1:])
        s["qann_nll"] += _nll(q[:-1], w[1:])
        s["n"] += len(w) - 1
        for key in ("synops", "macs", "shift_adds", "spikes"):
            s[key] += int(getattr(sim, key)["total"])
        s["act"] += activations(snn.graph, len(w), snn.graph.n_prefix)
        s["steps"] += int(sim.steps.sum())
        s["positions"] += len(w)
    bar.close()
    s["float_nll"] = floats["snn_float_nll"]  # the float model on the SNN's tokens too
    res.update(snn_tokens=s["n"], snn_ppl=math.exp(s["snn_nll"] / s["n"]),
               qann_ppl_same_tokens=math.exp(s["qann_nll"] / s["n"]), snn_logits_exact=s["exact"],
               float_ppl_same_tokens=math.exp(s["float_nll"] / s["n"]), float_nll_same_tokens=s["float_nll"],
               snn_nll=s["snn_nll"], qann_nll_same_tokens=s["qann_nll"],
               synops=s["synops"], macs=s["macs"], synops_over_macs=s["synops"] / max(s["macs"], 1),
               shift_adds=s["shift_adds"], spikes=s["spikes"], spikes_per_activation=s["spikes"] / max(s["act"], 1),
               steps=s["steps"], steps_per_token=s["steps"] / s["positions"])
    return res


def main(argv=None):
    from spikelm.lm.convert import demo_model_path, load_demo

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bits", type=int, nargs="+", default=[8, 6, 4])
    ap.add_argument("--chars", type=int, default=20000, help="held-out characters scored")
    ap.add_argument("--snn-chars", type=int, default=1024, help="of which simulated spike by spike")
    args = ap.parse_args(argv)
    for bits in args.bits:
        snn, tok = load_demo(bits=bits)
        text = tok.clean((demo_model_path() / "heldout.txt").read_text())[: args.chars]
        r = evaluate(snn, tok.encode(text), args.snn_chars)
        print(f"bits {bits}: tokens {r['tokens']}, float ppl {r['float_ppl']:.3f}, QANN ppl {r['qann_ppl']:.3f}, "
              f"top-1 agreement {100 * r['top1_agreement']:.2f}%; SNN on {r.get('snn_tokens', 0)} tokens: "
              f"ppl {r.get('snn_ppl', float('nan')):.3f} (QANN on the same tokens "
              f"{r.get('qann_ppl_same_tokens', float('nan')):.3f}, logits exact: {r.get('snn_logits_exact')})",
              flush=True)


if __name__ == "__main__":
    main()
