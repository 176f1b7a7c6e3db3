"""Benchmark of a real Llama-family model, spike by spike:
``python -m benchmarks.lm_llama --model PATH_OR_GGUF [--tokens 64] [--threads 1,2] [--rounds 3] [--speed-only]``.

In one run:

1. quality: float and QANN perplexity on the built-in held-out English text (Python's
   reference topics) and on a text of another domain (the GPL-3), windows of 512 tokens;
2. exactness: a greedy generation of ``--tokens`` new tokens, spike by spike; every token's
   SNN logits compared with the QANN's, bit for bit, and the run at every thread count
   compared with the one-thread run;
3. cost per coding on that generation: SynOps / dense MACs, shift-adds, spikes per
   activation, steps per token, the energy estimate against the dense model;
4. speed, side by side at each thread count of ``--threads``: event-driven decode (tokens/s
   of wall time over the new tokens, compile excluded) against torch's float decode with a
   KV cache of the same model at the same number of threads, alternating SNN and torch for
   ``--rounds`` rounds (each round the SNN at every thread count, then torch's model loaded,
   timed apart, and decoding at every thread count, then dropped: the two are never held at
   once; best round shown, with the process's CPU time over wall time, which shows whether
   the threads ran at once, and the load average: on a shared machine the figures are
   indicative only);
5. the frontier: perplexity against SynOps/MACs for a few precision settings (``--settings``),
   each converted from the calibration of the first conversion (``SpikingLM.calibration``: the
   maxima do not depend on the bits, and the graphs are those calibrating again gives, bit for
   bit), so the frontier runs no calibration pass (SmolLM2: about 10 s and two calibration
   windows' memory saved per setting);
6. peak memory (max RSS of this process), also after conversion and after each section: the
   float model is released once the quality section no longer needs it (before torch's copy is
   loaded for the speed section); the decodes keep their tokens, logits and steps, not their
   spike counts. ``python -m benchmarks.lm_memory`` shows what each phase holds.

``--speed-only`` runs 2 and 4 (and 6) alone.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import time

import numba
import numpy as np

from spikelm.lm import texts
from spikelm.lm.codings import CODINGS
from spikelm.lm.evaluate import evaluate, float_scores
from spikelm.lm.report import coding_summary
from spikelm.lm.tensors import lean_heap, return_freed_memory

#: the held-out text's name in the quality section (its float figures serve the frontier too)
HELDOUT = "held-out English (Python reference topics)"
FRONTIER = ("lin=6,act=8,res=12,att=12,oth=12", "lin=7,act=8,res=12,att=12,oth=12",
            "lin=8,act=8,res=12,att=12,oth=12", "lin=8,act=10,res=16,att=12,oth=12")


def max_rss() -> str:
    """The process's peak resident memory so far (Linux: ru_maxrss in KiB), and what it holds now
    (Linux: /proc/self/statm; the peak alone where that is missing)."""
    peak = f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"
    try:
        with open("/proc/self/statm") as f:
            now = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30
    except (OSError, ValueError, IndexError):
        return peak
    return f"{peak}, {now:.2f} GiB now"


def clocks():
    """(wall, CPU time of the whole process: every thread) now."""
    return time.perf_counter(), time.process_time()


def rate(stamps):
    """tokens/s and CPU/wall over consecutive (wall, cpu) stamps, one per token."""
    st = np.asarray(stamps)
    wall, cpu = st[-1, 0] - st[0, 0], st[-1, 1] - st[0, 1]
    return (len(st) - 1) / wall, cpu / wall


def gguf_header(model_arg):
    """``(metadata without the tokenizer's, config dict)`` of a GGUF file for :func:`torch_model`,
    read before the conversion (transformers' metadata parse of Qwen2.5-0.5B's 151k-token
    vocabulary takes 0.6 GiB for a moment: not beside both models); None for a folder."""
    from spikelm.lm.gguf_file import read_header
    from spikelm.lm.models import resolve

    path = resolve(model_arg)
    if path is None or path.suffix.lower() != ".gguf":
        return None
    meta, raw, _ = read_header(path, tokenizer=False)
    return {k: v for k, v in meta.items() if not k.startswith("tokenizer.")}, raw


def torch_model(model_arg, shared=None, header=None):
    """The float model of ``model_arg`` in transformers (float32, eval). A GGUF file's weights are
    read by spikelm's lean reader one tensor at a time into a model made from the file's config
    (the same float32 values as transformers' own loader, which would hold a dequantized copy of
    the whole file beside the model: 1.2 GiB for SmolLM2, 3.8 for Qwen2.5-0.5B at its peak).
    ``shared``: ``{name: float32 array}`` used in place of reading those tensors (the SNN's
    embedding table, the same values: Qwen2.5-0.5B's is 0.5 GiB); ``header``: what
    :func:`gguf_header` read (None: read here)."""
    import torch
    import transformers

    from spikelm.lm.models import resolve

    path = resolve(model_arg)
    if path.suffix.lower() != ".gguf":
        return transformers.AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()
    from spikelm.lm import families
    from spikelm.lm.gguf_file import iter_tensors, read_header
    from spikelm.lm.tensors import lean_heap

    from accelerate import init_empty_weights

    shared = {k: v for k, v in (shared or {}).items() if isinstance(v, np.ndarray) and v.dtype == np.float32}
    with lean_heap():
        meta, raw = header if header is not None else read_header(path, tokenizer=False)[:2]
        config = transformers.AutoConfig.for_model(**raw)
        # parameters on the meta device (no memory, no random init), buffers (rotary tables) made
        # as usual; each parameter then gets its tensor as it is read: the peak is the model
        # and one tensor, less what is shared
        with init_empty_weights(include_buffers=False):
            model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        tied = config.tie_word_embeddings
        names = [k for k, _ in model.named_parameters(remove_duplicate=False)
                 if not (tied and k == "lm_head.weight")]

        def place(name, values):
            owner, _, attr = name.rpartition(".")
            module = model.get_submodule(owner)
            if tuple(module._parameters[attr].shape) != values.shape:
                raise ValueError(f"{path}: {name} has shape {values.shape}; the model needs "
                                 f"{tuple(module._parameters[attr].shape)}")
            module._parameters[attr] = torch.nn.Parameter(torch.from_numpy(values), requires_grad=False)

        for name in [k for k in names if k in shared]:
            place(name, shared[name])
        change = families.of_config(raw, str(path)).gguf_tensor
        # largest first: the peak is the model and the last tensor's file bytes and dequantized
        # blocks, so that tensor is the smallest one (read last, Qwen2.5-0.5B's 0.5 GiB head
        # peaked 0.15 GiB above the model)
        rest = sorted((k for k in names if k not in shared), key=lambda k: -model.get_parameter(k).numel())
        for name, values in iter_tensors(path, rest, meta, change):
            place(name, values)
        if tied:
            model.tie_weights()
    return model.eval()


def torch_decode(model, prompt_ids, n_new, threads):
    """torch's greedy float decode with a KV cache on ``threads`` threads: (tokens/s, CPU/wall, tokens)."""
    import torch

    torch.set_num_threads(threads)
    ids = torch.tensor([[model.config.bos_token_id, *prompt_ids]])
    with torch.no_grad():
        out = model(ids, use_cache=True)
        past, nxt = out.past_key_values, out.logits[0, -1].argmax()
        tokens, stamps = [int(nxt)], [clocks()]
        for _ in range(n_new - 1):
            out = model(nxt.view(1, 1), past_key_values=past, use_cache=True)
            past, nxt = out.past_key_values, out.logits[0, -1].argmax()
            tokens.append(int(nxt))
            stamps.append(clocks())
    return (*rate(stamps), tokens)


def snn_decode(snn, prompt, n_new, threads):
    """The SNN's greedy decode on ``threads`` threads: (tokens/s, CPU/wall, (tokens, logits,
    steps per token)); the rate over the new tokens only (the prompt's positions excluded).
    The generation's spike counts of every position, its largest result, are not kept: the
    comparisons do not read them."""
    stamps = []
    gen = snn.generate(prompt, n_new, threads=threads, on_token=lambda *a: stamps.append(clocks()))
    return (*rate(stamps[len(prompt) - 1 :]), (gen.tokens, gen.simulation.logits, gen.simulation.steps))


def digest(run) -> str:
    """A fingerprint of arrays (SHA-256 of their types, shapes and bytes): equal runs, equal digests."""
    h = hashlib.sha256()
    for a in run:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def speed(args, snn, tok, prompt, teams, header=None):
    """Section 4: SNN and torch decode side by side at each thread count; returns the tokens
    (prompt and new) of the first run and whether its logits equal the QANN's on every token."""
    print(f"\nload average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    for t in teams:  # compile (or load) each loop variant once, timed apart
        t0 = time.perf_counter()
        snn.generate(prompt, 2, threads=t)
        print(f"compile/load of the {t}-thread loop and a 2-token warm-up: {time.perf_counter() - t0:.1f} s", flush=True)
    shared = {"model.embed_tokens.weight": snn.graph.pops[0].params.wte}
    runs = {t: [] for t in teams}  # (SNN tokens/s, its CPU/wall), (torch tokens/s, its CPU/wall) per round
    # every run is compared with the first by its digest, and the first with the QANN at once:
    # no run's logits are kept (Qwen2.5-0.5B's: 84 MB a run), none beside torch's model
    first = same_as_first = None
    for r in range(args.rounds):
        snn_runs = {}
        for t in teams:
            *snn_runs[t], gen = snn_decode(snn, prompt, args.tokens, t)
            if first is None:
                qann = snn.reference(gen[0][:-1], codes=False).logits
                first = (gen[0], bool(np.array_equal(gen[1], qann)), digest(gen))
                same_as_first = {t: True for t in teams}
                del qann
            same_as_first[t] &= digest(gen) == first[2]
            del gen
        # torch's float model only while torch decodes: the SNN's executor and torch's model are
        # each the largest thing beside the converted SNN, and never needed at once
        return_freed_memory()  # what the SNN's decodes freed, before torch's model takes its place
        t0 = time.perf_counter()
        model = torch_model(args.model, shared, header)
        if r == 0:
            print(f"torch's float model loaded in {time.perf_counter() - t0:.1f} s (once per round, dropped while "
                  f"the SNN decodes): max RSS {max_rss()}", flush=True)
        for t in teams:
            s_tps, s_cpu = snn_runs[t]
            t_tps, t_cpu, torch_tokens = torch_decode(model, prompt.tolist(), args.tokens, t)
            runs[t].append(((s_tps, s_cpu), (t_tps, t_cpu)))
        del model
        return_freed_memory()
    best = {t: (max(r[0] for r in runs[t]), max(r[1] for r in runs[t])) for t in teams}
    new_tokens = first[0][len(prompt):]
    same = int(np.sum(np.array(torch_tokens[: len(new_tokens)]) == new_tokens))
    print(f"\n{'threads':<9}{'SNN tokens/s':>13}{'CPU/wall':>9}{'torch tokens/s':>15}{'CPU/wall':>9}"
          f"{'SNN/torch':>10}{'SNN vs 1 thread':>16}")
    for t in teams:
        (s, sc), (tt, tc) = best[t]
        print(f"{t:<9}{s:>13.2f}{sc:>9.2f}{tt:>15.2f}{tc:>9.2f}{s / tt:>10.2f}{s / best[teams[0]][0][0]:>16.2f}")
    for t in teams:
        print(f"{t} thread(s), every round == the first {teams[0]}-thread run (tokens, logits, steps per token): "
              f"{same_as_first[t]}")
    print(f"(best of {args.rounds} rounds, each the SNN then torch at every thread count; {args.tokens} new tokens after a "
          f"{len(prompt)}-token prompt; greedy tokens equal to float's: {same}/{len(new_tokens)})")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    return first[:2]


def frontier(model, settings, calibration, held, held_floats, ids):
    """Section 5: each precision setting converted from ``calibration`` (the main conversion's:
    the maxima do not depend on the bits, and the graph is the one calibrating again gives, bit
    for bit; None: each conversion calibrates), its QANN perplexity on ``held`` against the
    float model's figures ``held_floats`` and its SynOps/MACs on the generation ``ids``."""
    from spikelm.lm.models import open_for_cli

    print()
    if calibration is not None:
        print(f"every setting converted from the first conversion's calibration ({calibration.ids.size:,} tokens): "
              "no calibration pass", flush=True)
    print(f"{'bits':<36}{'QANN ppl vs float':>18}{'SynOps/MACs (signed digit)':>28}")
    for setting in settings:
        t0 = time.perf_counter()
        s, _, _ = open_for_cli(model, bits=setting, keep_float=False, calibration=calibration)
        took = time.perf_counter() - t0
        r = evaluate(s, held, floats=held_floats)
        run = s.simulate(ids)
        print(f"{setting:<36}{100 * (r['qann_ppl'] / r['float_ppl'] - 1):>+17.2f}%"
              f"{run.synops['total'] / run.macs['total']:>28.3f}   converted in {took:.1f} s, max RSS {max_rss()}",
              flush=True)
        del s, run  # one converted setting at a time
        return_freed_memory()


def main(argv=None):
    from spikelm.lm.models import encode_loose, open_for_cli

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", type=int, default=64, help="new tokens generated spike by spike")
    ap.add_argument("--prompt", default="The Python language reference describes")
    ap.add_argument("--chars", type=int, default=20000, help="characters of each perplexity text")
    ap.add_argument("--settings", nargs="*", default=list(FRONTIER), help="precision settings of the frontier")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--speed-only", action="store_true", help="exactness, speed and peak memory alone")
    ap.add_argument("--threads", default="1,2", help="thread counts to compare, comma-separated (default 1,2)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the speed comparison (default 3)")
    args = ap.parse_args(argv)
    teams = sorted({int(t) for t in args.threads.split(",")})
    numba.set_num_threads(1)  # (numba's own parallel pool: the LM loop's threads are its own)

    header = gguf_header(args.model)  # torch's float model is made from it in the speed section
    t0 = time.perf_counter()
    # the float model is scored before conversion (the quality section's and the frontier's
    # float figures), then each weight is dropped once folded: never both models at once
    texts_scored = [] if args.speed_only else [(HELDOUT, texts.heldout_text(args.chars))]
    if not (args.skip_quality or args.speed_only):
        texts_scored.append(("other domain (GPL-3)", texts.other_domain_text(args.chars)))
    floats, scoring = {}, [0.0]

    def score_float(loaded, tok):
        t = time.perf_counter()
        for name, text in texts_scored:
            if text is not None:
                ids = encode_loose(tok, text)
                floats[name] = (ids, float_scores(loaded, ids))
        scoring[0] = time.perf_counter() - t
        print(f"float model scored on {len(floats)} text(s) in {scoring[0]:.1f} s (max RSS {max_rss()})", flush=True)

    snn, tok, label = open_for_cli(args.model, keep_float=False, before_convert=score_float)
    print(f"model {label}: loaded and converted in {time.perf_counter() - t0 - scoring[0]:.1f} s (max RSS {max_rss()}); "
          f"activation bits {snn.bits}, weight bits {snn.graph.meta.get('weight_bits')}, context {snn.context}, "
          f"coding {snn.coding}", flush=True)

    if not (args.skip_quality or args.speed_only):
        for name, _ in texts_scored:
            if name not in floats:
                print(f"{name}: not on this machine")
                continue
            r = evaluate(snn, floats[name][0], floats=floats[name][1])
            print(f"{name}: {r['tokens']:,} tokens, float ppl {r['float_ppl']:.3f}, QANN ppl {r['qann_ppl']:.3f} "
                  f"({100 * (r['qann_ppl'] / r['float_ppl'] - 1):+.2f} %), top-1 agreement "
                  f"{100 * r['top1_agreement']:.1f} %; max RSS {max_rss()}", flush=True)

    prompt = tok.encode(args.prompt)
    tokens, exact = speed(args, snn, tok, prompt, teams, header)
    print(f"max RSS after the speed section (torch's float model loaded there): {max_rss()}", flush=True)
    ids = tokens[:-1]
    print(f"generation of {args.tokens} tokens: SNN logits == QANN logits on every token: {exact}; "
          f"text: {tok.decode(tokens[len(prompt):])!r}", flush=True)
    if args.speed_only:
        print(f"\npeak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
        return

    print()
    print(f"{'coding':<14}{'SynOps/MACs':>12}{'shift-adds':>11}{'spikes/act':>11}{'steps/token':>12}{'energy vs dense':>16}")
    for coding in CODINGS:
        with lean_heap():  # one coding's run at a time, handed back before the next
            s = snn.with_coding(coding)
            run = s.simulate(ids[: min(len(ids), 32)]) if coding == "unit" else s.simulate(ids)
            c = coding_summary(run, s.graph)
            del s, run
        print(f"{coding:<14}{c['synops_over_macs']:>12.3f}{c['shift_add_share']:>11.2f}"
              f"{c['spikes_per_activation']:>11.3f}{c['steps_per_token']:>12.1f}{c['energy_ratio']:>16.3f}"
              f"   max RSS {max_rss()}", flush=True)
    print(f"(unit coding on the first 32 positions only: it needs ~40x the steps); max RSS {max_rss()}", flush=True)
    calibration = snn.calibration  # the frontier's settings are converted from it, without a float pass
    del snn  # the frontier converts each setting on its own
    return_freed_memory()

    if args.settings and HELDOUT not in floats:
        print(f"\nthe frontier needs the {HELDOUT} text, which is not on this machine")
    elif args.settings:
        frontier(args.model, args.settings, calibration, *floats[HELDOUT], ids)
    print(f"\npeak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
