"""``spikelm lm``: generate, check and report on converted language models.

Hooked into the top-level command by ``spikelm/cli.py``::

    from spikelm.lm import cli as lm_cli
    lm_cli.add_parser(subparsers)        # adds "lm" with generate / check / report
    ...
    return args.func(args)               # lm_cli.run, returns the exit code

Errors are :mod:`spikelm.errors` exceptions; the top-level command prints them as one line
and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from spikelm.errors import ConfigError, FileFormatError
from spikelm.interrupt import deferred_interrupts

SAMPLE_PROMPTS = ("Return the ", "The default value is ", "If the file ", "This module provides ")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``lm`` command (and its sub-commands) to an argparse sub-parser collection."""
    lm = subparsers.add_parser(
        "lm", help="converted language models: generate, check, report",
        description="Run a converted GPT-2-style language model spike by spike.",
    )
    from spikelm.lm import backends

    lm.set_defaults(func=run, lm_command=None)
    sub = lm.add_subparsers(dest="lm_command", metavar="{generate,check,report}")

    def common(p):
        p.add_argument("--model", default=None,
                       help="model folder (config.json + model.safetensors/pytorch_model.bin); default: the shipped demo")
        p.add_argument("--bits", type=int, default=8, help="activation bits, 2-8 (default 8)")
        p.add_argument("--backend", default=backends.DEFAULT, choices=backends.names(),
                       help=f"executor (default {backends.DEFAULT})")
        p.add_argument("--max-steps", type=int, default=None, help="steps allowed per token (default: no limit)")
        p.set_defaults(func=run)

    g = sub.add_parser("generate", help="generate text token by token, every spike simulated")
    common(g)
    g.add_argument("--prompt", required=True, help="prompt text")
    g.add_argument("--tokens", type=int, required=True, help="number of tokens to generate")
    g.add_argument("--out", default=None, help="write the spikes to this SONATA HDF5 file")
    g.add_argument("--compression", choices=("scaleoffset", "deflate", "none"), default="scaleoffset",
                   help="filter of the spike datasets: scaleoffset (default: lossless, 8x smaller, libsonata reads "
                        "it), deflate (33x smaller; libsonata's PyPI build cannot read it), none")

    c = sub.add_parser("check", help="spiking network vs dense reference on sample prompts")
    common(c)
    c.add_argument("--prompts", type=int, default=4, help="number of sample prompts (default 4)")
    c.add_argument("--length", type=int, default=32, help="tokens per sample prompt (default 32)")

    r = sub.add_parser("report", help="per-layer SynOps, spikes and MACs, energy estimate, bar chart")
    common(r)
    r.add_argument("--out", required=True, help="bar chart of SynOps vs MACs (.png, .pdf, .svg)")
    r.add_argument("--prompt", default=None, help="text to run (default: the start of the held-out text)")
    r.add_argument("--length", type=int, default=64, help="tokens to run when no prompt is given (default 64)")
    r.add_argument("--e-ac", type=float, default=0.9, help="energy per accumulate, pJ (default 0.9)")
    r.add_argument("--e-mac", type=float, default=4.6, help="energy per multiply-accumulate, pJ (default 4.6)")
    r.add_argument("--json", default=None, help="also write the counts to this JSON file")
    return lm


# ---------------------------------------------------------------- model and tokenizer


class _HFTokenizer:
    def __init__(self, tok):
        self.tok = tok

    def encode(self, text):
        return np.array(self.tok.encode(text), dtype=np.int64)

    def decode(self, ids):
        return self.tok.decode([int(i) for i in ids])


#: Files a tokenizer is read from: spikelm's character tokenizer or a Hugging Face one.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json + merges.txt", "tokenizer.model")


def _tokenizer(folder: Path):
    from spikelm.lm.tokenizer import CharTokenizer

    path = folder / "tokenizer.json"
    if path.exists():
        try:
            raw = json.loads(path.read_text())
        except ValueError as exc:
            raise FileFormatError(f"{path}: not valid JSON ({exc})") from None
        if isinstance(raw, dict) and raw.get("type") == "char":
            return CharTokenizer.load(path)
    present = [name for name in TOKENIZER_FILES if all((folder / f).exists() for f in name.split(" + "))]
    if not present:
        # without this check transformers may hand back a tokenizer that maps every prompt to
        # no tokens at all, and the user reads "--prompt: empty"
        raise FileFormatError(f"{folder}: no tokenizer in the model folder; looked for "
                              f"{', '.join(TOKENIZER_FILES)}")
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise ConfigError(f"{folder}: {present[0]} is a Hugging Face tokenizer, which needs transformers; "
                          "install the lm extra: pip install 'spikelm[lm]'") from None
    try:
        return _HFTokenizer(AutoTokenizer.from_pretrained(str(folder), local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - any failure means: no usable tokenizer here
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FileFormatError(f"{folder}: {present[0]} could not be read as a Hugging Face tokenizer: "
                              f"{first}") from None


def _sample_text(folder: Path) -> str | None:
    for name in ("calibration.txt", "heldout.txt"):
        if (folder / name).exists():
            return _read_text(folder / name)
    return None


def _read_text(path: Path) -> str:
    """A text file of the model folder, as UTF-8; anything else is one FileFormatError line."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _load(args):
    from spikelm.lm.convert import convert, demo_model_path

    folder = Path(args.model) if args.model else demo_model_path()
    if not (folder / "config.json").exists():
        raise ConfigError(f"--model {folder}: not a model folder (config.json missing)")
    if not 2 <= args.bits <= 8:
        raise ConfigError(f"--bits {args.bits}; allowed: 2 to 8")
    if args.max_steps is not None and args.max_steps < 1:
        raise ConfigError(f"--max-steps {args.max_steps}; allowed: a positive integer")
    tok = _tokenizer(folder)
    text = _sample_text(folder)
    from spikelm.lm.load import from_folder

    cfg, _ = from_folder(folder)
    if text:
        calib = _encode_loose(tok, text[:4000])
    else:
        calib = np.random.default_rng(0).integers(0, cfg.vocab_size, size=512)
    return convert(folder, calibration=calib, bits=args.bits), tok, folder


def _encode_loose(tok, text):
    clean = getattr(tok, "clean", None)
    return tok.encode(clean(text) if clean else text)


def _heldout(folder: Path) -> str | None:
    path = folder / "heldout.txt"
    return _read_text(path) if path.exists() else None


# ---------------------------------------------------------------- commands


def run(args) -> int:
    cmd = getattr(args, "lm_command", None)
    if cmd is None:
        print("usage: spikelm lm {generate,check,report} ...  (spikelm lm -h for help)", file=sys.stderr)
        return 2
    return {"generate": _generate, "check": _check, "report": _report}[cmd](args)


def _generate(args) -> int:
    from spikelm.lm.report import table
    from spikelm.lm.runner import QuiescenceError

    if args.tokens < 0:
        raise ConfigError(f"--tokens {args.tokens}; allowed: an integer >= 0")
    snn, tok, folder = _load(args)
    prompt = tok.encode(args.prompt)
    if prompt.size == 0:
        if args.prompt:
            raise ConfigError(f"--prompt {args.prompt!r}: the tokenizer of {folder} maps it to no tokens")
        raise ConfigError("--prompt: empty; give at least one character")
    ctx = snn.config.n_positions
    if prompt.size > ctx:
        raise ConfigError(f"--prompt: {prompt.size} tokens exceed the model's context of {ctx}")
    if prompt.size + max(args.tokens - 1, 0) > ctx:
        raise ConfigError(f"--prompt: {prompt.size} tokens + --tokens {args.tokens} exceed the model's context of {ctx}")
    out = Path(args.out) if args.out else None
    if out is not None:
        from spikelm.io.outputs import check_output

        check_output(out, "--out")

    print(f"model {folder} ({snn.config.n_layer} layers, width {snn.config.n_embd}), "
          f"{snn.bits}-bit activations, backend {args.backend}")
    print(f"{'pos':>4} {'token':>7} {'steps':>7} {'spikes':>10} {'SynOps':>13}")
    n_prompt = prompt.size

    def on_token(n, logits, counts):
        shown = repr(tok.decode([int(np.argmax(logits))])) if n >= n_prompt - 1 else ""
        print(f"{n:>4} {shown:>7} {counts.steps:>7} {counts.spikes['total']:>10,} {counts.synops['total']:>13,}",
              flush=True)

    t0 = time.perf_counter()
    if out is None:
        with deferred_interrupts() as ctrl_c:
            gen = snn.generate(prompt, args.tokens, backend=args.backend, max_steps=args.max_steps,
                               on_token=_token_done(on_token, None, ctrl_c))
    else:
        from spikelm import __version__
        from spikelm.io.sonata import SpikeWriter

        names = [p.name for p in snn.graph.pops]
        meta = {"backend": args.backend, "model": str(folder), "bits": snn.bits,
                "prompt": args.prompt, "converted_lm": True, "spikelm_version": __version__}
        # a converted LM's steps are rounds of spike propagation, not ms: time_unit "step"
        with SpikeWriter(out, snn.population_sizes(), dt=1.0, metadata=meta, signed=True,
                         compress=args.compression, time_unit="step") as writer, deferred_interrupts() as ctrl_c:
            def sink(steps, pops, nodes, values):
                for p in np.unique(pops):
                    m = pops == p
                    writer.append(names[p], steps[m], nodes[m], values[m])

            try:
                gen = snn.generate(prompt, args.tokens, backend=args.backend, max_steps=args.max_steps,
                                   record=sink, on_token=_token_done(on_token, writer, ctrl_c))
            except QuiescenceError as exc:
                raise QuiescenceError(f"{exc} (--max-steps); the spikes up to there are kept in "
                                      f"{writer.partial_path} (marked incomplete)") from None
            except KeyboardInterrupt:
                print(f"spikelm: the spikes up to the interrupt are kept in {writer.partial_path}", file=sys.stderr)
                raise
            ctrl_c.check()      # a Ctrl-C after the last token still leaves the file unfinished
            sim = gen.simulation
            writer.finish({"steps": int(sim.steps.sum()), "tokens": gen.tokens.tolist(),
                           "synops_by_layer": {k: int(v) for k, v in sim.synops.items()},
                           "macs_by_layer": {k: int(v) for k, v in sim.macs.items()}})
    seconds = time.perf_counter() - t0
    sim = gen.simulation
    print()
    print("generated:", repr(tok.decode(prompt) + "|" + tok.decode(gen.new_tokens)))
    # the last new token is read off the logits of the position before it, so it is not run
    print(f"{n_prompt} prompt + {len(gen.new_tokens)} new tokens: {len(sim.steps)} positions simulated in "
          f"{seconds:.2f} s, {int(sim.steps.sum()):,} steps, {sim.spikes['total']:,} spikes")
    print(f"SynOps {sim.synops['total']:,} vs dense MACs {sim.macs['total']:,} "
          f"(ratio {sim.synops['total'] / max(sim.macs['total'], 1):.2f})")
    print(table(sim))
    if out is not None:
        print(f"spikes written to {out}")
    return 0


def _token_done(on_token, writer, ctrl_c):
    """``on_token``, then the spike file flushed and a deferred Ctrl-C honoured, after every token.

    After the flush the file on disk holds every spike so far (a kill -9 loses at most the
    token being run); Ctrl-C, deferred by ``ctrl_c`` so that no finalizer can swallow it
    (spikelm.interrupt), stops the run here and leaves ``<out>.partial``.
    """
    def done(*a):
        on_token(*a)
        if writer is not None:
            writer.flush()
        ctrl_c.check()

    return done


def _check(args) -> int:
    from tqdm import tqdm

    if args.prompts < 1 or args.length < 1:
        raise ConfigError("--prompts and --length must be >= 1")
    snn, tok, folder = _load(args)
    held = _heldout(folder)
    L = min(args.length, snn.config.n_positions)
    rng = np.random.default_rng(0)
    prompts = []
    for i in range(args.prompts):
        if held:
            ids = _encode_loose(tok, held)
            s = int(rng.integers(0, max(1, ids.size - L)))
            prompts.append(ids[s : s + L])
        else:
            prompts.append(rng.integers(0, snn.config.vocab_size, size=L))
    all_ok, worst = True, 0
    for i, ids in enumerate(tqdm(prompts, desc="check", unit="prompt", file=sys.stderr)):
        ref = snn.reference(ids)
        sim = snn.simulate(ids, backend=args.backend, max_steps=args.max_steps)
        diff = max(int(np.abs(sim.counts[k] - ref.codes[k]).max()) for k in ref.codes)
        same = bool(np.array_equal(sim.logits, ref.logits))
        all_ok &= same and diff == 0
        worst = max(worst, diff)
        text = tok.decode(ids)[:24]
        tqdm.write(f"prompt {i} {text!r}: logits exact={same}, largest code difference {diff}, "
                   f"max |logit diff| {float(np.abs(sim.logits - ref.logits).max()):.3g}", file=sys.stdout)
    print(f"exact agreement: {'yes' if all_ok else 'NO'} on {len(prompts)} prompts of {L} tokens; "
          f"largest code difference {worst}")
    return 0 if all_ok else 1


def _report(args) -> int:
    from spikelm.lm.report import bar_chart, energy, table

    _report_options(args)
    snn, tok, folder = _load(args)
    out = Path(args.out)
    if args.prompt:
        ids = tok.encode(args.prompt)
    else:
        held = _heldout(folder)
        L = min(args.length, snn.config.n_positions)
        ids = _encode_loose(tok, held)[:L] if held else np.random.default_rng(0).integers(0, snn.config.vocab_size, L)
    sim = snn.simulate(ids, backend=args.backend, max_steps=args.max_steps)
    print(f"{len(ids)} tokens, {int(sim.steps.sum()):,} steps, {snn.bits}-bit activations")
    print(table(sim, args.e_ac, args.e_mac))
    bar_chart(sim, out, title=f"SynOps vs dense MACs per layer ({len(ids)} tokens, {snn.bits} bits)",
              e_ac_pj=args.e_ac, e_mac_pj=args.e_mac)
    if args.json:
        e = energy(sim.synops["total"], sim.macs["total"], args.e_ac, args.e_mac)
        Path(args.json).write_text(json.dumps({
            "tokens": len(ids), "bits": snn.bits, "steps": sim.steps.tolist(), "synops": sim.synops,
            "macs": sim.macs, "spikes_pos": sim.spikes_pos, "spikes_neg": sim.spikes_neg,
            "op_evals": sim.op_evals, "energy_estimate_j": e}, indent=1) + "\n")
    print(f"chart written to {out}")
    return 0


def _report_options(args):
    """Every output and number of ``lm report``, checked before the model is converted and run."""
    import math

    from spikelm.io.outputs import PLOT_SUFFIXES, check_output

    check_output(args.out, "--out", suffixes=PLOT_SUFFIXES)
    if args.json:
        check_output(args.json, "--json", inputs={"--out": args.out})
    for flag, value in (("--e-ac", args.e_ac), ("--e-mac", args.e_mac)):
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{flag} {value}: allowed: a finite energy > 0 (pJ)")


def main(argv=None) -> int:
    """Stand-alone entry (``python -m spikelm.lm.cli lm ...``) until the top-level command hooks it."""
    from spikelm.errors import SpikelmError

    ap = argparse.ArgumentParser(prog="spikelm")
    add_parser(ap.add_subparsers(dest="command"))
    args = ap.parse_args(argv)
    if not hasattr(args, "func"):
        ap.print_usage()
        return 2
    try:
        return args.func(args)
    except SpikelmError as exc:
        print(f"spikelm: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
