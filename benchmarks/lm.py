"""Benchmark of the converted demo LM: ``python -m benchmarks.lm [--tokens 65] [--bits 8] [--codings ...]``
(``--model PATH_OR_GGUF`` benchmarks a Llama-family model instead: :mod:`benchmarks.lm_llama`; with
``--frontier``, its perplexity against SynOps per conversion method: :mod:`benchmarks.lm_frontier`).

In one run, on the shipped demo model (spikelm/data):

- dense float torch forward time (full sequence, and per token) and the dense QANN reference;
- per spike coding: SynOps / dense MACs, the share of shifted additions, spikes per
  activation, steps per token, event-driven time per token (Numba, 1 thread, CPU time of
  the calling thread, best of the prompts) and its ratio to unit coding's, and the energy
  estimate against the dense model's (SynOps x E_AC vs MACs x E_MAC: an estimate);
- the machine's row-accumulation limit (a Numba loop that replays the run's row additions,
  nothing else) against the rate of the synaptic phase inside the simulation (timed by a
  compile-time flag of the generated loop), for the first coding given;
- the cost of decoding token 64 against token 8 (time and SynOps, median over prompts).
"""

from __future__ import annotations

import argparse
import platform
import time

import numba
import numpy as np
import torch

from spikelm.lm import convert, demo_model_path
from spikelm.lm.codings import CODINGS
from spikelm.lm.rows import row_accumulate
from spikelm.lm.numba_runner import NumbaRunner
from spikelm.lm.report import E_AC_PJ, E_MAC_PJ, activations as report_activations
from spikelm.lm.tokenizer import CharTokenizer

# CPU time of this thread: on a shared machine, wall time measures the neighbours too.
clock = time.thread_time


def best_of(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t = clock()
        out = fn()
        best = min(best, clock() - t)
    return best, out


def per_token_times(snn, ids):
    """CPU time and SynOps of each token of one simulation."""
    stamps, synops = [clock()], []

    def on_token(n, logits, counts):
        stamps.append(clock())
        synops.append(counts.synops["total"])

    sim = snn.simulate(ids, backend="numba", on_token=on_token)
    return np.diff(stamps), np.array(synops), sim


def activations(snn, L):
    """Activation elements of L tokens (attention probabilities: heads x (n + 1) at position n)."""
    return report_activations(snn.graph, L)


def synaptic_phase_rate(snn, ids):
    """Row SynOps per second inside the synaptic phase (median over tokens), and the clock's cost."""
    runner = NumbaRunner(snn.graph, timed=True)
    C = runner.counters
    rates = []
    for n, token in enumerate(ids):
        runner.timing[:] = 0
        before = C.synops.sum()
        runner.step_token(int(token), None)
        if n == 0:  # the first call compiled
            continue
        rows = C.synops.sum() - before
        rates.append(rows / (runner.timing[0] * 1e-9))
    return float(np.median(rates)), int(runner.timing[1])


def row_limit(snn, proj_synops, repeats=1):
    """Additions per second when only the run's int8 row additions are replayed (unit values)."""
    rng = np.random.default_rng(0)
    adds, seconds = 0, 0.0
    for k, pr in enumerate(snn.graph.projections):
        rows = int(proj_synops[k] // pr.weights.shape[1])
        if rows == 0:
            continue
        W = pr.weights
        r = rng.integers(0, W.shape[0], rows).astype(np.int64)
        v = rng.choice(np.array([-1, 1], np.int32), rows)
        acc = np.zeros(W.shape[1], np.int32)
        row_accumulate(W, r[:2], v[:2], acc, 1)  # compile
        t, _ = best_of(lambda: row_accumulate(W, r, v, acc, repeats))
        adds += rows * W.shape[1] * repeats
        seconds += t
    return adds / seconds


def main(argv=None):
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    if "--frontier" in argv:  # perplexity against SynOps per method: benchmarks/lm_frontier.py
        from benchmarks import lm_frontier

        return lm_frontier.main(argv)
    if "--model" in argv or any(a.startswith("--model=") for a in argv):  # a real model: its own benchmark
        from benchmarks import lm_llama

        return lm_llama.main(argv)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=65)
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=3)
    ap.add_argument("--codings", nargs="+", default=list(CODINGS), choices=CODINGS)
    args = ap.parse_args(argv)
    numba.set_num_threads(1)
    torch.set_num_threads(1)

    folder = demo_model_path()
    tok = CharTokenizer.load(folder / "tokenizer.json")
    calib = tok.encode(tok.clean((folder / "calibration.txt").read_text())[:4000])
    text = tok.clean((folder / "heldout.txt").read_text())
    snns = {c: convert(folder, calibration=calib, bits=args.bits, coding=c) for c in args.codings}
    snn = snns[args.codings[0]]
    L = min(args.tokens, snn.graph.n_positions)
    prompts = [tok.encode(text[i * 997 : i * 997 + L]) for i in range(args.prompts)]
    ids = prompts[0]
    print(f"demo model: {snn.config.n_layer} layers, width {snn.config.n_embd}, vocab {snn.config.vocab_size}, "
          f"{args.bits}-bit activations; {L} tokens x {len(prompts)} prompts; "
          f"{platform.processor() or platform.machine()}, numba {numba.__version__}, torch {torch.__version__}")

    from spikelm.lm import TinyGPT

    model = TinyGPT(snn.config).eval()
    model.load_state_dict({k: torch.tensor(v, dtype=torch.float32) for k, v in snn.params.items()}, strict=False)
    x = torch.tensor(ids)[None]
    with torch.no_grad():
        t_float, _ = best_of(lambda: model(x), 5)
    t_ref, _ = best_of(lambda: snn.reference(ids), 3)
    print(f"dense float torch forward: {t_float * 1e3:.2f} ms for {L} tokens ({t_float / L * 1e3:.3f} ms per token); "
          f"dense QANN reference (NumPy): {t_ref * 1e3:.2f} ms")
    print("times are CPU time of the calling thread, 1 thread")
    print()

    rows, times_by = [], {}
    for coding, s in snns.items():
        per_token_times(s, ids[:4])  # compile or load the loop
        runs = [per_token_times(s, p) for p in prompts]
        times = np.array([r[0] for r in runs])
        syn = np.array([r[1] for r in runs])
        sim = runs[0][2]
        times_by[coding] = (times, syn)
        ref = s.reference(ids)
        nonzero = sum(int(np.count_nonzero(c)) for c in ref.codes.values())
        spikes = sim.spikes["total"]
        e_snn, e_ann = sim.synops["total"] * E_AC_PJ, sim.macs["total"] * E_MAC_PJ
        rows.append((coding, sim.synops["total"] / sim.macs["total"], sim.shift_adds["total"] / sim.synops["total"],
                     spikes / activations(s, L), spikes / max(nonzero, 1), sim.steps.mean(),
                     times.sum(1).min() / L * 1e3, e_snn / e_ann))
    t_unit = dict((r[0], r[6]) for r in rows).get("unit")
    head = f"{'coding':<14}{'SynOps/MACs':>12}{'shift-adds':>11}{'spikes/act':>11}{'spikes/nz':>10}" \
           f"{'steps/token':>12}{'ms/token':>10}{'vs unit':>8}{'energy vs dense':>16}"
    print(head)
    for coding, ratio, shift, spa, spnz, steps, ms, energy in rows:
        vs = f"{ms / t_unit:.2f}" if t_unit else "-"
        print(f"{coding:<14}{ratio:>12.3f}{shift:>11.2f}{spa:>11.3f}{spnz:>10.3f}{steps:>12.1f}{ms:>10.3f}{vs:>8}{energy:>16.3f}")
    print(f"(energy estimate: SynOps x {E_AC_PJ} pJ against dense MACs x {E_MAC_PJ} pJ; operators, memory and "
          "control left out of both sides)")
    print()

    coding = args.codings[0]
    s = snns[coding]
    runner = s.runner("numba")
    for t in prompts[0]:
        runner.step_token(int(t), None)
    limit = row_limit(s, runner.counters.synops)
    phase_rate, _ = synaptic_phase_rate(s, ids)
    times, syn = times_by[coding]
    total_syn = syn[0].sum()
    print(f"{'measure (' + coding + ' coding)':<62}{'value':>14}")
    print(f"{'row-accumulation limit (the run rows replayed), additions/s':<62}{limit:>14.3e}")
    print(f"{'synaptic phase inside the simulation, additions/s':<62}{phase_rate:>14.3e}")
    print(f"{'synaptic phase rate / limit':<62}{phase_rate / limit:>14.2f}")
    print(f"{'whole simulation SynOps/s':<62}{total_syn / times[0].sum():>14.3e}")
    n8, n64 = 8, min(64, L - 1)
    print(f"{f'token {n64} vs token {n8}: time ratio (median of {len(prompts)} prompts)':<62}"
          f"{np.median(times[:, n64]) / np.median(times[:, n8]):>14.2f}")
    print(f"{f'token {n64} vs token {n8}: SynOps ratio':<62}{np.median(syn[:, n64]) / np.median(syn[:, n8]):>14.2f}")


if __name__ == "__main__":
    main()
