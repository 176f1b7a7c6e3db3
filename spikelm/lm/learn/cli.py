"""The learning side of ``spikelm lm``: ``--plasticity`` on generate, evaluate and report;
``--checkpoint`` / ``--resume`` / ``--save-model`` on generate.

``spikelm/lm/cli.py`` adds the options (:func:`add_options`) and hands a command over here
when one of them is given (:func:`wanted`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from spikelm.errors import ConfigError
from spikelm.io.outputs import write_text


def add_options(p, command: str):
    """The learning options of ``spikelm lm <command>``."""
    p.add_argument("--plasticity", default=None, metavar="FILE.toml",
                   help="learn online while running: STDP / BrainGPT rules and neurons from this file "
                        "(docs/lm.md, 'Learning'); the run reports its drift from the exact reference")
    if command == "generate":
        p.add_argument("--checkpoint", default=None, metavar="OUT.h5",
                       help="after generating, save the learned state and the sequence here")
        p.add_argument("--resume", default=None, metavar="CK.h5",
                       help="go on from this checkpoint (same --model/--bits/--coding); --prompt is then optional")
        p.add_argument("--save-model", default=None, metavar="DIR",
                       help="after generating, write a model folder with the learned state (convert reads it back)")


def wanted(args) -> bool:
    return any(getattr(args, k, None) for k in ("plasticity", "checkpoint", "resume", "save_model"))


def generate(args, load) -> int:
    """``lm generate`` with learning: stream tokens, then the text and the drift summary."""
    from spikelm.lm.learn.config import load as load_plasticity
    from spikelm.lm.learn.session import Learning
    from spikelm.lm.report import TokenTable

    if args.tokens < 0:
        raise ConfigError(f"--tokens {args.tokens}; allowed: an integer >= 0")
    out = Path(args.out) if getattr(args, "out", None) else None
    if out is not None and args.resume:
        raise ConfigError("--out with --resume: a resumed run does not write spike files yet; leave out --out "
                          "(the checkpoint holds the learned state), or start the run with --prompt")
    ck = args.checkpoint  # every output was checked by spikelm.lm.cli.check_outputs
    pl = load_plasticity(args.plasticity) if args.plasticity else None
    snn, tok, folder = load(args)
    prompt = tok.encode(args.prompt) if args.prompt else np.zeros(0, np.int64)
    if args.resume:
        run = Learning.resume(snn, args.resume, args.backend, pl)
    else:
        if prompt.size == 0:
            raise ConfigError("--prompt: empty or missing; give at least one character (or --resume)")
        run = Learning(snn, pl, args.backend)
    print(f"model {folder}, activation bits {snn.bits}, {snn.coding} spikes, backend {args.backend}; learning: "
          f"{args.plasticity or (args.resume and 'from ' + args.resume) or 'none (neurons of the model)'}")
    if args.resume and run.runner is not None:  # positions go on where the checkpoint stopped
        lines = TokenTable(tok.decode, prompt, run.runner.n,
                           int(np.argmax(run.logits[-1][-1])) if run.logits else None)
    else:
        lines = TokenTable(tok.decode, prompt, snn.graph.n_prefix)
    print(lines.header())

    def on_token(n, logits, counts):
        print(lines.line(n, logits, counts), flush=True)

    if args.resume:
        gen = run.continue_generation(prompt, args.tokens, args.max_steps, on_token)
        text = repr(tok.decode(gen.tokens[: gen.tokens.size - gen.new_tokens.size]) + "|" + tok.decode(gen.new_tokens))
    elif out is not None:
        gen = _generate_to_file(run, snn, folder, args, prompt, on_token, out)
        text = repr(tok.decode(prompt) + "|" + tok.decode(gen.new_tokens))
    else:
        gen = run.generate(prompt, args.tokens, args.max_steps, on_token)
        text = repr(tok.decode(prompt) + "|" + tok.decode(gen.new_tokens))
    print()
    print("generated:", text)
    print_drift(gen.simulation.drift)
    if ck is not None:
        run.save_checkpoint(ck)
        print(f"checkpoint written to {ck}")
    if args.save_model:
        src = folder if Path(folder).is_dir() else None
        run.save_model(args.save_model, source=src)
        print(f"learned model written to {args.save_model} (spikelm lm ... --model {args.save_model})")
    return 0


def _generate_to_file(run, snn, folder, args, prompt, on_token, out):
    """Generation learning as it goes, its spikes written to ``out`` as ``lm generate --out`` writes
    them (the same layout; flushed after every token, so a kill -9 loses at most the token being
    run), plus the learned state after every token (``learned_state``: statistic -> one value per
    token) in the closing metadata."""
    from spikelm.interrupt import deferred_interrupts
    from spikelm.lm.runfile import spike_file

    plasticity = json.dumps(run.plasticity.to_dict() if run.plasticity else {})
    with spike_file(out, snn, run.graph, folder, args, plasticity=plasticity) as (writer, sink), \
            deferred_interrupts() as ctrl_c:
        try:
            def done(*a):  # as lm generate --out: flush (the token is on disk) before printing it, honour a Ctrl-C
                writer.flush()
                on_token(*a)
                ctrl_c.check()

            gen = run.generate(prompt, args.tokens, args.max_steps, done, record=sink)
        except KeyboardInterrupt:
            print(f"spikelm: the spikes up to the interrupt are kept in {writer.partial_path}", file=sys.stderr)
            raise
        ctrl_c.check()
        sim = gen.simulation
        learned = {k: [float(s[k]) for s in run.stats] for k in (run.stats[0] if run.stats else {})}
        writer.finish({"steps": int(sim.steps.sum()), "tokens": gen.tokens.tolist(),
                       "synops_by_layer": {k: int(v) for k, v in sim.synops.items()},
                       "macs_by_layer": {k: int(v) for k, v in sim.macs.items()}, "learned_state": learned})
    print(f"spikes written to {out}")
    return gen


def print_drift(drift, every: int | None = None):
    s = drift.summary()
    n = s["tokens"]
    print(f"drift from the exact reference over {n} tokens: top-1 agreement {100 * s['top1_agreement']:.1f} %, "
          f"max |logit diff| {s['max_dlogit']:.4g}, perplexity {s['ppl']:.3f} (exact {s['ppl_exact']:.3f}); "
          f"steps per token {s['steps_per_token']:.1f} (exact {s['steps_exact_per_token']:.1f}), "
          f"spikes per token {s['spikes_per_token']:,.0f} (exact {s['spikes_exact_per_token']:,.0f})")
    learned = {k: v for k, v in s.items() if k in drift.stats}
    if learned:
        print("learned state: " + ", ".join(f"{k} {v:.4g}" for k, v in learned.items()))
    print(drift.table(every or max(1, n // 16)))


def _text_ids(args, tok, folder, snn):
    from spikelm.lm import texts
    from spikelm.lm.models import encode_loose, read_text, sample_text

    if getattr(args, "text", None):
        text = read_text(args.text, "--text")
    else:
        text = (sample_text(Path(folder), "heldout.txt") if Path(folder).is_dir() else None) or texts.heldout_text()
    return encode_loose(tok, text)


def evaluate(args, load) -> int:
    """``lm evaluate --plasticity``: learn through a text in windows; perplexity against the exact model."""
    from spikelm.lm.evaluate import windows
    from spikelm.lm.learn.config import load as load_plasticity
    from spikelm.lm.learn.drift import Drift
    from spikelm.lm.learn.session import Learning

    if getattr(args, "docs", None):
        raise ConfigError("--docs with --plasticity: learning runs through one text in order; give --text")
    if args.snn_tokens is not None and args.snn_tokens < 2:
        raise ConfigError(f"--snn-tokens {args.snn_tokens}; allowed: an integer >= 2")
    js = getattr(args, "json", None)
    pl = load_plasticity(args.plasticity)
    snn, tok, folder = load(args)
    ids = _text_ids(args, tok, folder, snn)
    ids = ids[: args.snn_tokens] if args.snn_tokens else ids
    size = min(snn.context, 512) if args.window is None else min(int(args.window), snn.context)
    run = Learning(snn, pl, args.backend)
    parts = []
    from tqdm import tqdm

    ws = windows(ids, size)
    bar = tqdm(total=sum(len(w) for w in ws), desc="SNN, learning", unit="token", file=sys.stderr,
               disable=args.no_progress)
    for w in ws:
        run.new_sequence()
        parts.append(run.feed(w, args.max_steps, on_token=lambda *a: bar.update()).drift)
    bar.close()
    drift = Drift.concat(parts)
    print(f"model {folder}: {snn.config.n_layer} layers, bits {snn.bits}, {snn.coding} spikes; learning from "
          f"{args.plasticity}; {len(ws)} windows of up to {size} tokens")
    print_drift(drift)
    if js is not None:
        write_text(js, json.dumps({"summary": drift.summary(), "per_token": drift_arrays(drift)}, indent=1) + "\n")
        print(f"figures: {js}")
    return 0


def drift_arrays(drift) -> dict:
    out = {k: getattr(drift, k).tolist() for k in ("max_dlogit", "agree", "nll", "nll_exact", "steps", "steps_exact",
                                                   "spikes", "spikes_exact")}
    out["nll"] = [None if np.isnan(v) else v for v in out["nll"]]
    out["nll_exact"] = [None if np.isnan(v) else v for v in out["nll_exact"]]
    out["stats"] = {k: v.tolist() for k, v in drift.stats.items()}
    return out


def report(args, load, ids_of) -> int:
    """``lm report --plasticity``: the drift and steps against tokens as a chart (--out), and the table."""
    from spikelm.lm.learn.config import load as load_plasticity
    from spikelm.lm.learn.drift import chart

    out = Path(args.out)
    pl = load_plasticity(args.plasticity)
    snn, tok, folder = load(args)
    ids = ids_of(snn, tok, folder)
    sim = snn.simulate(ids, backend=args.backend, max_steps=args.max_steps, plasticity=pl)
    print(f"{len(ids)} tokens, activation bits {snn.bits}, {snn.coding} spikes, learning from {args.plasticity}")
    print_drift(sim.drift)
    chart(sim.drift, out, title=f"learning ({Path(args.plasticity).name}) against the exact reference, "
                                f"{len(ids)} tokens")
    if args.json:
        write_text(args.json, json.dumps({"summary": sim.drift.summary(), "per_token": drift_arrays(sim.drift)},
                                         indent=1) + "\n")
    print(f"chart written to {out}")
    return 0
