"""Benchmark of a real Llama-family model, spike by spike:
``python -m benchmarks.lm --model PATH_OR_GGUF [--tokens 64] [--settings ...]``.

In one run, on one core (numba and torch both set to one thread):

1. quality: float and QANN perplexity on the built-in held-out English text (Python's
   reference topics) and on a text of another domain (the GPL-3), windows of 512 tokens;
2. exactness: a greedy generation of ``--tokens`` new tokens, spike by spike; every token's
   SNN logits compared with the QANN's, bit for bit;
3. cost per coding on that generation: SynOps / dense MACs, shift-adds, spikes per
   activation, steps per token, the energy estimate against the dense model;
4. speed: event-driven decode (tokens/s, CPU time of this thread, compile excluded) against
   torch's float decode with a KV cache of the same model on the same core, same run;
5. the frontier: perplexity against SynOps/MACs for a few precision settings (``--settings``);
6. peak memory (max RSS of this process).
"""

from __future__ import annotations

import argparse
import resource
import time

import numba
import numpy as np

from spikelm.lm import texts
from spikelm.lm.codings import CODINGS
from spikelm.lm.evaluate import evaluate
from spikelm.lm.report import coding_summary

clock = time.thread_time
FRONTIER = ("lin=6,act=8,res=12,att=12,oth=12", "lin=7,act=8,res=12,att=12,oth=12",
            "lin=8,act=8,res=12,att=12,oth=12", "lin=8,act=10,res=16,att=12,oth=12")


def torch_decode(model_arg, prompt_ids, n_new):
    """tokens/s of torch's float decode with a KV cache (1 thread), and its tokens."""
    import torch
    import transformers

    from spikelm.lm.models import resolve

    path = resolve(model_arg)
    if path.suffix.lower() == ".gguf":
        model = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    else:
        model = transformers.AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    model.eval()
    bos = model.config.bos_token_id
    ids = torch.tensor([[bos, *prompt_ids]])
    with torch.no_grad():
        out = model(ids, use_cache=True)
        past, nxt = out.past_key_values, out.logits[0, -1].argmax()
        tokens, t0 = [int(nxt)], clock()
        for _ in range(n_new - 1):
            out = model(nxt.view(1, 1), past_key_values=past, use_cache=True)
            past, nxt = out.past_key_values, out.logits[0, -1].argmax()
            tokens.append(int(nxt))
        dt = clock() - t0
    return (n_new - 1) / dt, tokens


def main(argv=None):
    from spikelm.lm.models import encode_loose, open_for_cli

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", type=int, default=64, help="new tokens generated spike by spike")
    ap.add_argument("--prompt", default="The Python language reference describes")
    ap.add_argument("--chars", type=int, default=20000, help="characters of each perplexity text")
    ap.add_argument("--settings", nargs="*", default=list(FRONTIER), help="precision settings of the frontier")
    ap.add_argument("--skip-quality", action="store_true")
    args = ap.parse_args(argv)
    numba.set_num_threads(1)
    import torch

    torch.set_num_threads(1)

    t0 = time.perf_counter()
    snn, tok, label = open_for_cli(args.model)
    print(f"model {label}: converted in {time.perf_counter() - t0:.1f} s; activation bits {snn.bits}, weight bits "
          f"{snn.graph.meta.get('weight_bits')}, context {snn.context}, coding {snn.coding}", flush=True)

    if not args.skip_quality:
        for name, text in (("held-out English (Python reference topics)", texts.heldout_text(args.chars)),
                           ("other domain (GPL-3)", texts.other_domain_text(args.chars))):
            if text is None:
                print(f"{name}: not on this machine")
                continue
            r = evaluate(snn, encode_loose(tok, text))
            print(f"{name}: {r['tokens']:,} tokens, float ppl {r['float_ppl']:.3f}, QANN ppl {r['qann_ppl']:.3f} "
                  f"({100 * (r['qann_ppl'] / r['float_ppl'] - 1):+.2f} %), top-1 agreement "
                  f"{100 * r['top1_agreement']:.1f} %", flush=True)

    prompt = tok.encode(args.prompt)
    gen = snn.generate(prompt, 2)  # compile / load the loop
    stamps = []
    gen = snn.generate(prompt, args.tokens, on_token=lambda *a: stamps.append(clock()))
    sim = gen.simulation
    per_token = np.diff(stamps)[len(prompt) - 1 :]  # the positions of new tokens (not the prompt)
    ids = gen.tokens[:-1]
    ref = snn.reference(ids)
    exact = bool(np.array_equal(sim.logits, ref.logits))
    print(f"generation of {args.tokens} tokens: SNN logits == QANN logits on every token: {exact}; "
          f"text: {tok.decode(gen.new_tokens)!r}", flush=True)
    snn_tps = 1.0 / per_token.mean()
    torch_tps, torch_tokens = torch_decode(args.model, prompt.tolist(), args.tokens)
    same = int(np.sum(np.array(torch_tokens[: len(gen.new_tokens)]) == gen.new_tokens))
    print(f"decode, 1 core: SNN {snn_tps:.2f} tokens/s (median {1 / np.median(per_token):.2f}), torch float with KV "
          f"cache {torch_tps:.2f} tokens/s: ratio {snn_tps / torch_tps:.2f}; greedy tokens equal to float's: "
          f"{same}/{len(gen.new_tokens)}", flush=True)

    print()
    print(f"{'coding':<14}{'SynOps/MACs':>12}{'shift-adds':>11}{'spikes/act':>11}{'steps/token':>12}{'energy vs dense':>16}")
    for coding in CODINGS:
        s = snn.with_coding(coding)
        run = s.simulate(ids[: min(len(ids), 32)]) if coding == "unit" else s.simulate(ids)
        c = coding_summary(run, s.graph)
        print(f"{coding:<14}{c['synops_over_macs']:>12.3f}{c['shift_add_share']:>11.2f}"
              f"{c['spikes_per_activation']:>11.3f}{c['steps_per_token']:>12.1f}{c['energy_ratio']:>16.3f}", flush=True)
    print("(unit coding on the first 32 positions only: it needs ~40x the steps)")

    if args.settings:
        print()
        print(f"{'bits':<36}{'QANN ppl vs float':>18}{'SynOps/MACs (signed digit)':>28}")
        held = encode_loose(tok, texts.heldout_text(args.chars))
        for setting in args.settings:
            s, _, _ = open_for_cli(args.model, bits=setting)
            r = evaluate(s, held)
            run = s.simulate(ids)
            print(f"{setting:<36}{100 * (r['qann_ppl'] / r['float_ppl'] - 1):>+17.2f}%"
                  f"{run.synops['total'] / run.macs['total']:>28.3f}", flush=True)
    print(f"\npeak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
