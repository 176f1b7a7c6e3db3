"""``spikelm lm``: generate, check and report on converted language models.

Hooked into the top-level command by ``spikelm/cli.py``, which also hands over the corpus
evaluator (``spikelm lm evaluate`` runs in :mod:`spikelm.scaleout`, which imports lm, so lm
does not import it)::

    from spikelm.lm import cli as lm_cli
    from spikelm.scaleout import cli as scaleout_cli
    lm_cli.main(["lm", *argv], evaluate=scaleout_cli)   # generate / check / report / evaluate

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

from spikelm.errors import ConfigError
from spikelm.interrupt import deferred_interrupts
from spikelm.io.outputs import OVERWRITE_HELP

def add_parser(subparsers, evaluate=None) -> argparse.ArgumentParser:
    """Add the ``lm`` command (and its sub-commands) to an argparse sub-parser collection.

    ``evaluate``: what runs ``lm evaluate`` (an object with ``add_evaluate_options(parser)``
    and ``run_evaluate(args)``: :mod:`spikelm.scaleout.cli`); without it there is no
    ``evaluate`` sub-command."""
    lm = subparsers.add_parser(
        "lm", help="converted language models: generate, check, report",
        description="Run a converted language model spike by spike.",
    )
    from spikelm.lm import backends, families
    from spikelm.lm.codings import CODINGS, DEFAULT as DEFAULT_CODING
    from spikelm.lm.learn import cli as learn_cli

    lm.set_defaults(func=run, lm_command=None)
    sub = lm.add_subparsers(dest="lm_command", metavar="{generate,check,report,evaluate}")

    fams = families.all_families()

    def takers(option):
        return " and ".join(f.label for f in fams if option in f.options) or "no"

    def common(p):
        p.add_argument("--model", default=None,
                       help="a model folder (config.json + safetensors, sharded or not, or pytorch_model.bin) or a "
                            f".gguf file, of a known family ({', '.join(f.label for f in fams)}: model_type "
                            f"{', '.join(m for f in fams for m in f.model_types)}); default: the shipped demo")
        p.add_argument("--bits", default=None,
                       help="activation bits: one width 2-16 for every point, or per point group, e.g. "
                            "lin=8,act=8,res=12,att=12,oth=8 (groups: lin, act, res, att, oth; default: the "
                            f"family's: {'; '.join(f'{f.default_bits} for {f.label}' for f in fams)})")
        p.add_argument("--context", type=int, default=None,
                       help=f"{takers('context')} models: positions to build neurons for (default: the family's)")
        p.add_argument("--weight-bits", type=int, default=None,
                       help=f"{takers('weight_bits')} models: bits of the folded integer weights, 4-16 "
                            "(default: the family's)")
        p.add_argument("--clamp", default=None,
                       help=f"{takers('clamp')} models: code range over the calibration maximum, one integer "
                            "1-1024 or per point group, e.g. lin=32,act=64,res=8,oth=8 (default: the family's)")
        p.add_argument("--calibration", default=None, metavar="FILE",
                       help="calibration text (UTF-8; default: the model folder's calibration.txt, else the "
                            "built-in text)")
        p.add_argument("--methods", default=None,
                       help=f"{takers('methods')} models: conversion methods, comma-separated, among "
                            "fisher, row-exponents, rotate, or none (default: the family's; docs/lm-llama.md)")
        p.add_argument("--budget", type=float, default=None,
                       help=f"{takers('budget')} models: SynOps per dense MAC to set the fisher steps to "
                            "(estimated on the calibration text) instead of the lin/act bits")
        if p.prog.split()[-1] != "report":
            p.add_argument("--coding", default=DEFAULT_CODING, choices=CODINGS,
                           help=f"spike coding (default {DEFAULT_CODING}: fewest SynOps; the logits do not depend on it)")
        p.add_argument("--backend", default=backends.DEFAULT, choices=backends.names(),
                       help=f"executor (default {backends.DEFAULT})")
        p.add_argument("--max-steps", type=int, default=None, help="steps allowed per token (default: no limit)")
        if p.prog.split()[-1] != "evaluate":  # (evaluate: its own --no-progress; $SPIKELM_THREADS, also on Dask)
            p.add_argument("--no-progress", action="store_true",
                           help="no progress on stderr (loading, converting, compiling, running)")
            p.add_argument("--threads", type=int, default=None,
                           help="threads per token, numba backend (default: $SPIKELM_THREADS, else every idle core, at "
                                "most one per 4 M weights); any number gives the same results; learning runs use one")
        p.set_defaults(func=run)

    g = sub.add_parser("generate", help="generate text token by token, every spike simulated")
    common(g)
    g.add_argument("--prompt", default=None, help="prompt text (required unless --resume)")
    g.add_argument("--tokens", type=int, required=True, help="number of tokens to generate")
    g.add_argument("--out", default=None, help="write the spikes to this SONATA HDF5 file")
    g.add_argument("--compression", choices=("scaleoffset", "deflate", "none"), default="scaleoffset",
                   help="filter of the spike datasets: scaleoffset (default: lossless, 8x smaller, libsonata reads "
                        "it), deflate (33x smaller; libsonata's PyPI build cannot read it), none")
    learn_cli.add_options(g, "generate")
    g.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)

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
    r.add_argument("--e-shift", type=float, default=0.0,
                   help="extra energy of a shifted addition (spike value other than ±1), pJ (default 0)")
    r.add_argument("--weights-in", choices=("sram", "dram"), default="sram",
                   help="where the data-movement estimate reads weights from (default sram: on chip)")
    r.add_argument("--codings", default=",".join(CODINGS),
                   help=f"spike codings to compare, comma-separated (default {','.join(CODINGS)})")
    r.add_argument("--json", default=None, help="also write the counts to this JSON file")
    learn_cli.add_options(r, "report")
    r.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP + "; the --out chart is always redrawn")

    if evaluate is not None:
        e = sub.add_parser("evaluate", help="float/QANN/SNN perplexity of a text (--text) or a corpus (--docs, on Dask)")
        common(e)
        evaluate.add_evaluate_options(e)
        learn_cli.add_options(e, "evaluate")
        e.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
        e.set_defaults(run_evaluate=evaluate.run_evaluate)
    return lm


# ---------------------------------------------------------------- model and tokenizer


def _load(args, keep_float=True):
    """The converted model of the common options, its tokenizer and its label (path);
    ``keep_float=False``: without its float model (dropped weight by weight as it is folded)."""
    from spikelm.lm.methods import parse_methods
    from spikelm.lm.models import open_for_cli, read_calibration
    from spikelm.lm.precision import parse_bits, parse_clamp

    bits = None if args.bits is None else parse_bits(args.bits, "--bits")
    if args.max_steps is not None and args.max_steps < 1:
        raise ConfigError(f"--max-steps {args.max_steps}; allowed: a positive integer")
    coding = getattr(args, "coding", None) or _codings(args)[0]
    if args.clamp is not None:  # checked here to name the option; the family applies it
        parse_clamp(args.clamp, option="--clamp")
    if args.methods is not None:
        parse_methods(args.methods, option="--methods")
    calibration = None if args.calibration is None else read_calibration(args.calibration)
    return open_for_cli(args.model, bits, coding, context=args.context, weight_bits=args.weight_bits,
                        calibration_text=calibration, clamp=args.clamp, methods=args.methods, budget=args.budget,
                        keep_float=keep_float)


def _codings(args) -> list[str]:
    from spikelm.lm.codings import CODINGS

    names = [c.strip() for c in str(args.codings).split(",") if c.strip()]
    bad = [c for c in names if c not in CODINGS]
    if bad or not names:
        raise ConfigError(f"--codings {args.codings!r}: {bad[0] if bad else 'empty'!r} is not a coding; "
                          f"allowed: {', '.join(CODINGS)}")
    return list(dict.fromkeys(names))


def _heldout(tok, folder: str, length: int, vocab: int) -> np.ndarray:
    """Token ids of the model folder's heldout.txt, else of Python's reference topics."""
    from spikelm.lm import texts
    from spikelm.lm.models import encode_loose, sample_text

    held = sample_text(Path(folder), "heldout.txt") if Path(folder).is_dir() else None
    ids = encode_loose(tok, held or texts.heldout_text())
    return ids if ids.size >= 2 else np.random.default_rng(0).integers(0, vocab, length)


# ---------------------------------------------------------------- outputs

#: The options of each command that write a file (--save-model, a folder, is checked apart).
OUTPUTS = {"generate": ("--out", "--checkpoint"), "evaluate": ("--out", "--json"), "report": ("--out", "--json")}
#: What each command reads besides the model: option -> attribute.
READS = {"--text": "text", "--docs": "docs", "--plasticity": "plasticity", "--resume": "resume"}


def check_outputs(args) -> None:
    """Every option of the command that writes, checked before the model is read or anything runs
    (:func:`spikelm.io.outputs.check_output`): none may be a file the command reads (the model's
    files, --text, --docs, --plasticity, --resume) or another output; an existing result is kept
    unless --overwrite (a chart is redrawn); ``--save-model`` names a new or empty folder."""
    from spikelm.io.outputs import PLOT_SUFFIXES, check_output
    from spikelm.lm.models import model_files

    cmd = args.lm_command
    inputs = dict(model_files(args.model))
    for flag, attr in READS.items():
        value = getattr(args, attr, None)
        if value:
            inputs[flag] = value
            if Path(value).is_dir():  # a corpus folder: its documents
                inputs.update({f"{flag} document {p.name}": p for p in sorted(Path(value).glob("*.txt"))})
    outputs = {}
    for flag in OUTPUTS[cmd]:
        value = getattr(args, flag[2:], None)
        if value is None:
            continue
        chart = cmd == "report" and flag == "--out"
        check_output(value, flag, inputs={**inputs, **outputs}, suffixes=PLOT_SUFFIXES if chart else None,
                     overwrite=args.overwrite or chart)
        if cmd == "generate" and flag == "--out":  # written as OUT.partial, kept there if the run stops
            check_output(f"{value}.partial", flag, inputs={**inputs, **outputs}, overwrite=args.overwrite)
        outputs[flag] = value
    if getattr(args, "save_model", None) is not None:
        check_folder_output(args.save_model, "--save-model")


def check_folder_output(path, flag: str) -> None:
    """A folder an option writes: new (its parent exists and is writable) or empty."""
    import os

    text = os.fspath(path)
    if not text.strip():
        raise ConfigError(f"{flag}: an empty folder name; give a folder name")
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{flag} {text}: exists and is not a folder; give the name of a new folder")
    if p.is_dir() and any(p.iterdir()):
        raise ConfigError(f"{flag} {text}: exists and is not empty; give the name of a new (or empty) folder")
    parent = p.absolute().parent
    if not parent.is_dir():
        raise ConfigError(f"{flag} {text}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {text}: directory {parent} is not writable")


# ---------------------------------------------------------------- commands


def run(args) -> int:
    cmd = getattr(args, "lm_command", None)
    if cmd is None:
        print("usage: spikelm lm {generate,check,report,evaluate} ...  (spikelm lm -h for help)", file=sys.stderr)
        return 2
    from spikelm.lm import progress

    if cmd in OUTPUTS:
        check_outputs(args)
    with progress.shown(not getattr(args, "no_progress", False)):
        return {"generate": _generate, "check": _check, "report": _report, "evaluate": _evaluate}[cmd](args)


def _evaluate(args) -> int:
    from spikelm.lm.learn import cli as learn_cli

    if learn_cli.wanted(args):
        return learn_cli.evaluate(args, _load)
    return args.run_evaluate(args)


def _generate(args) -> int:
    from spikelm.lm.learn import cli as learn_cli
    from spikelm.lm.report import TokenTable, table
    from spikelm.timing import CompileClock

    if learn_cli.wanted(args):
        return learn_cli.generate(args, _load)
    if args.prompt is None:
        raise ConfigError("--prompt: missing; give the prompt text")
    if args.tokens < 0:
        raise ConfigError(f"--tokens {args.tokens}; allowed: an integer >= 0")
    snn, tok, folder = _load(args, keep_float=False)  # generation runs the integer graph alone
    prompt = tok.encode(args.prompt)
    if prompt.size == 0:
        if args.prompt:
            raise ConfigError(f"--prompt {args.prompt!r}: the tokenizer of {folder} maps it to no tokens")
        raise ConfigError("--prompt: empty; give at least one character")
    ctx = snn.context
    if prompt.size > ctx:
        raise ConfigError(f"--prompt: {prompt.size} tokens exceed the model's context of {ctx}")
    if prompt.size + max(args.tokens - 1, 0) > ctx:
        raise ConfigError(f"--prompt: {prompt.size} tokens + --tokens {args.tokens} exceed the model's context of {ctx}")
    out = Path(args.out) if args.out else None

    print(f"model {folder} ({snn.config.n_layer} layers, width {snn.config.n_embd}), "
          f"activation bits {snn.bits}, {snn.coding} spikes, backend {args.backend}")
    lines = TokenTable(tok.decode, prompt, snn.graph.n_prefix)
    print(lines.header())

    def on_token(n, logits, counts):
        print(lines.line(n, logits, counts), flush=True)

    # Numba's first compile of the token loop is timed apart from the simulation
    with CompileClock() as compiling:
        t0 = time.perf_counter()
        gen = _run_generate(args, snn, prompt, folder, out, on_token)
        seconds = time.perf_counter() - t0
    sim = gen.simulation
    print()
    print("generated:", repr(tok.decode(prompt) + "|" + tok.decode(gen.new_tokens)))
    # the last new token is read off the logits of the position before it, so it is not run
    print(f"{prompt.size} prompt + {len(gen.new_tokens)} new tokens: {len(sim.steps)} positions simulated in "
          f"{max(seconds - compiling.seconds, 0.0):.2f} s{_compile_note(compiling)}, {int(sim.steps.sum()):,} steps, "
          f"{sim.spikes['total']:,} spikes")
    print(f"SynOps {sim.synops['total']:,} vs dense MACs {sim.macs['total']:,} "
          f"(ratio {sim.synops['total'] / max(sim.macs['total'], 1):.2f})")
    print(table(sim, legend=True))
    if out is not None:
        print(f"spikes written to {out}")
    return 0


def _compile_note(compiling) -> str:
    """What Numba's compiler took apart from the run (:class:`spikelm.timing.CompileClock`), or nothing."""
    if compiling.seconds < 0.005:
        return ""
    what = "compiling" if compiling.compiled > compiling.seconds / 2 else "loading compiled code"
    return f" (besides {compiling.seconds:.2f} s {what}: once per kind of model, cached for later runs)"


def _run_generate(args, snn, prompt, folder, out, on_token):
    """``snn.generate`` with the spikes streamed to ``--out`` (if given) and Ctrl-C honoured between tokens."""
    from spikelm.lm.runner import QuiescenceError

    if out is None:
        with deferred_interrupts() as ctrl_c:
            return snn.generate(prompt, args.tokens, backend=args.backend, max_steps=args.max_steps,
                                threads=args.threads, on_token=_token_done(on_token, None, ctrl_c))
    from spikelm.lm.runfile import spike_file

    with spike_file(out, snn, snn.graph, folder, args) as (writer, sink), deferred_interrupts() as ctrl_c:
        try:
            gen = snn.generate(prompt, args.tokens, backend=args.backend, max_steps=args.max_steps,
                               threads=args.threads, record=sink, on_token=_token_done(on_token, writer, ctrl_c))
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
    return gen


def _token_done(on_token, writer, ctrl_c):
    """After every token: the spike file flushed, then ``on_token`` (the printed line), then a
    deferred Ctrl-C honoured.

    Flushing first keeps the crash-safety promise: every token whose line was printed is on
    disk, so a kill -9 loses only the token being run; Ctrl-C, deferred by ``ctrl_c`` so that no
    finalizer can swallow it (spikelm.interrupt), stops the run here and leaves ``<out>.partial``.
    """
    def done(*a):
        if writer is not None:
            writer.flush()
        on_token(*a)
        ctrl_c.check()

    return done


def _check(args) -> int:
    from tqdm import tqdm

    from spikelm.lm import progress

    if args.prompts < 1 or args.length < 1:
        raise ConfigError("--prompts and --length must be >= 1")
    snn, tok, folder = _load(args, keep_float=False)  # the check compares the SNN with the QANN alone
    L = min(args.length, snn.context)
    held = _heldout(tok, folder, L, snn.graph.vocab_size)
    rng = np.random.default_rng(0)
    prompts = []
    for _ in range(args.prompts):
        s = int(rng.integers(0, max(1, held.size - L)))
        prompts.append(held[s : s + L])
    all_ok, worst = True, 0
    for i, ids in enumerate(progress.bar("check", len(prompts), "prompt", iterable=prompts)):
        ref = snn.reference(ids)
        sim = snn.simulate(ids, backend=args.backend, max_steps=args.max_steps, threads=args.threads)
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
    from spikelm.lm import progress
    from spikelm.lm.energy import Widths, describe, sim_data_movement
    from spikelm.lm.report import bar_chart, coding_summary, compare_table, sim_energy, table

    codings = _codings(args)
    _report_options(args)
    out = Path(args.out)

    def ids_of(snn, tok, folder):
        if args.prompt:
            return tok.encode(args.prompt)
        L = min(args.length, snn.context)
        return _heldout(tok, folder, L, snn.graph.vocab_size)[:L]

    if args.plasticity:
        from spikelm.lm.learn import cli as learn_cli

        return learn_cli.report(args, _load, ids_of)
    snn, tok, folder = _load(args)
    ids = ids_of(snn, tok, folder)
    energies = dict(e_ac_pj=args.e_ac, e_mac_pj=args.e_mac, e_shift_pj=args.e_shift)
    sims, summaries, widths = {}, {}, Widths.from_graph(snn.graph)  # codings share the graph's weights
    for coding in codings:
        s = snn.with_coding(coding)
        with progress.bar(f"report: {coding} spikes", len(ids), "token") as bar:
            sims[coding] = s.simulate(ids, backend=args.backend, max_steps=args.max_steps, threads=args.threads,
                                      on_token=lambda *a: bar.update())
        summaries[coding] = coding_summary(sims[coding], s.graph, **energies, weights_in=args.weights_in,
                                           widths=widths)
    moved = {c: sim_data_movement(sim, snn.graph, args.weights_in, widths) for c, sim in sims.items()}
    print(f"{len(ids)} tokens, activation bits {snn.bits}")
    for coding, sim in sims.items():
        print(f"\n{coding} coding: {int(sim.steps.sum()):,} steps")
        print(table(sim, **energies))
        print(describe(moved[coding]))
    print("\ncodings side by side (per token; energy vs dense: an estimate, synaptic ops vs dense MACs only; "
          "DM: the estimate with data movement)")
    print(compare_table(summaries))
    bar_chart(sims, out, title=f"SynOps per coding vs dense MACs per layer ({len(ids)} tokens, bits {snn.bits})",
              **energies)
    if args.json:
        from spikelm.io.outputs import write_text

        write_text(args.json, json.dumps({
            "tokens": len(ids), "bits": snn.bits.to_dict(), "codings": {c: {
                "steps": sim.steps.tolist(), "synops": sim.synops, "shift_adds": sim.shift_adds, "macs": sim.macs,
                "spikes_pos": sim.spikes_pos, "spikes_neg": sim.spikes_neg, "op_evals": sim.op_evals,
                "summary": summaries[c], "energy_estimate_j": sim_energy(sim, **energies),
                "data_movement_estimate": moved[c]}
                for c, sim in sims.items()}}, indent=1) + "\n")
    print(f"chart written to {out}")
    return 0


def _report_options(args):
    """The numbers of ``lm report``, checked before the model is converted and run (its outputs are
    checked by :func:`check_outputs`)."""
    import math

    for flag, value in (("--e-ac", args.e_ac), ("--e-mac", args.e_mac)):
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{flag} {value}: allowed: a finite energy > 0 (pJ)")
    if not (math.isfinite(args.e_shift) and args.e_shift >= 0):
        raise ConfigError(f"--e-shift {args.e_shift}: allowed: a finite energy >= 0 (pJ)")


def main(argv=None, evaluate=None) -> int:
    """``spikelm lm ...`` (``spikelm/cli.py`` calls it with ``evaluate``, see :func:`add_parser`;
    ``python -m spikelm.lm.cli lm ...`` runs it without ``lm evaluate``)."""
    from spikelm.errors import SpikelmError, UsageParser

    ap = UsageParser(prog="spikelm")
    add_parser(ap.add_subparsers(dest="command"), evaluate)
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
