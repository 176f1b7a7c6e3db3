"""Benchmark of the converted demo LM: ``python -m benchmarks.lm [--tokens 65] [--bits 8]``.

In one run, on the shipped demo model (spikelm/data):

- dense float torch forward time (full sequence, and per token);
- dense QANN reference time (NumPy, full sequence);
- event-driven simulation time per token (Numba; numba.set_num_threads 1 and 2);
- synaptic additions per second of the simulation against the machine's row-accumulation
  limit, measured in the same run by a Numba loop that replays the same number of int8 row
  additions per projection (``kernels.row_accumulate``), nothing else;
- the cost of decoding token 64 against token 8 (time and SynOps, median over prompts).
"""

from __future__ import annotations

import argparse
import platform
import time

import numba
import numpy as np
import torch

from spikelm.lm import load_demo
from spikelm.lm.kernels import row_accumulate


# CPU time of this thread: on a shared machine, wall time measures the neighbours too.
# (Every timed section here runs on one thread, except the 2-thread run, which is also
# reported in wall time.)
clock = time.thread_time


def best_of(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t = clock()
        out = fn()
        best = min(best, clock() - t)
    return best, out


def per_token_times(snn, ids, timer=None):
    """Time and SynOps of each token of one simulation."""
    timer = timer or clock
    stamps, synops = [timer()], []

    def on_token(n, logits, counts):
        stamps.append(timer())
        synops.append(counts.synops["total"])

    sim = snn.simulate(ids, backend="numba", on_token=on_token)
    return np.diff(stamps), np.array(synops), sim


def timed_kernel():
    """An instrumented copy of ``kernels.run_token`` that adds the time spent in the
    int8 row additions (the synaptic phase) to ``_phase[0]`` and counts the timed intervals in
    ``_phase[1]``. Built from the kernel's source text, compiled without cache; used only here."""
    import ctypes
    import inspect

    from numba import njit

    import spikelm.lm.kernels as K

    libc = ctypes.CDLL(None)
    gettime = libc.clock_gettime
    gettime.argtypes = [ctypes.c_int, ctypes.c_void_p]
    gettime.restype = ctypes.c_int

    def _now(ts):
        gettime(1, ts.ctypes)  # CLOCK_MONOTONIC (vDSO: cheap); per-token medians drop preemptions
        return ts[0] * 1000000000 + ts[1]

    src = inspect.getsource(K.run_token.py_func)
    src = src.replace("record, clock, ev_step, ev_pop, ev_node, ev_val, ev_n):",
                      "record, clock, ev_step, ev_pop, ev_node, ev_val, ev_n, _ts, _phase):")
    start = "            for e in range(out_ptr[p], out_ptr[p + 1]):\n"
    end = "            tk = tele[p]\n"
    assert start in src and end in src
    src = src.replace(start, "            _t0 = _now(_ts)\n" + start)
    src = src.replace(end, "            _phase[0] += _now(_ts) - _t0\n            _phase[1] += 1\n" + end)
    src = "\n".join(line for line in src.splitlines() if not line.startswith("@njit"))
    ns = dict(vars(K))
    ns["_now"] = njit(_now)
    exec(compile(src, "<timed run_token>", "exec"), ns)
    timed = njit(ns["run_token"])

    @njit
    def overhead(ts, n):
        tot = 0
        for _ in range(n):
            t0 = ns_now(ts)
            tot += ns_now(ts) - t0
        return tot

    ns_now = ns["_now"]
    return timed, overhead


def synaptic_phase_rate(snn, ids):
    """Row SynOps per second inside the synaptic phase of the simulation (median over tokens)."""
    from spikelm.lm.simulate import NumbaRunner

    timed, overhead = timed_kernel()
    ts = np.zeros(2, np.int64)
    phase = np.zeros(2, np.int64)
    per_call = overhead(ts, 100000) / 100000  # the clock's own cost inside each interval
    runner = NumbaRunner(snn.qm)
    qm, C, cfg = snn.qm, runner.counters, snn.config
    rates, raw = [], []
    for n, token in enumerate(ids):
        emb = runner.emb_codes(int(token), n)
        phase[:] = 0
        before = C.synops_proj.sum()
        status = timed(
            True, n, emb, np.iinfo(np.int64).max, runner.st,
            runner.feed, runner.tele, runner.arg, runner.lbase, runner.off, runner.in_ptr, runner.in_idx,
            runner.qmin, runner.qmax, runner.unit, runner.gain, runner.offset,
            runner.out_ptr, runner.out_idx, runner.pj_post, runner.pj_woff, runner.pj_npost, runner.W,
            runner.counts, runner.acc, runner.S, runner.kcache,
            qm.ln_gain, qm.ln_bias, qm.ln_eps, qm.res_gain, qm.res_shift, qm.gelu_lut,
            qm.sm_hi, qm.sm_lo, qm.sm_shift, cfg.n_head, cfg.head_dim, cfg.n_positions,
            C.spikes_pos, C.spikes_neg, C.op_evals, C.synops_proj, C.synops_tele,
            runner.started, runner.done, runner.alist, runner.alen, runner.stepval, runner.sp,
            runner.pstart, runner.pend, runner.scratch, False, 0, *runner.ev, runner.ev_n, ts, phase,
        )
        assert status == 0
        if n == 0:  # the first call compiled
            continue
        rows = C.synops_proj.sum() - before
        rates.append(rows / ((phase[0] - phase[1] * per_call) * 1e-9))
        raw.append(rows / (phase[0] * 1e-9))
    return float(np.median(rates)), float(np.median(raw)), per_call


def row_limit(snn, sim_runner_counts, repeats=1):
    """Additions per second when only the int8 row additions of the run are replayed."""
    rng = np.random.default_rng(0)
    adds, seconds = 0, 0.0
    for k, pr in enumerate(snn.qm.projections):
        rows = int(sim_runner_counts[k] // pr.weights.shape[1])
        if rows == 0:
            continue
        W = pr.weights
        r = rng.integers(0, W.shape[0], rows).astype(np.int64)
        s = rng.choice(np.array([-1, 1], np.int8), rows)
        acc = np.zeros(W.shape[1], np.int32)
        row_accumulate(W, r[:2], s[:2], acc, 1)  # compile
        t, _ = best_of(lambda: row_accumulate(W, r, s, acc, repeats))
        adds += rows * W.shape[1] * repeats
        seconds += t
    return adds / seconds


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=65)
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=3)
    args = ap.parse_args(argv)

    snn, tok = load_demo(bits=args.bits)
    from spikelm.lm.convert import demo_model_path

    text = tok.clean((demo_model_path() / "heldout.txt").read_text())
    L = min(args.tokens, snn.config.n_positions)
    prompts = [tok.encode(text[i * 997 : i * 997 + L]) for i in range(args.prompts)]
    ids = prompts[0]
    print(f"demo model: {snn.config.n_layer} layers, width {snn.config.n_embd}, vocab {snn.config.vocab_size}, "
          f"{args.bits}-bit activations; {L} tokens; {platform.processor() or platform.machine()}, "
          f"numba {numba.__version__}, torch {torch.__version__}")

    # dense float torch forward
    from spikelm.lm.gpt import TinyGPT

    model = TinyGPT(snn.config).eval()
    model.load_state_dict({k: torch.tensor(v, dtype=torch.float32) for k, v in snn.params.items()}, strict=False)
    torch.set_num_threads(1)
    x = torch.tensor(ids)[None]
    with torch.no_grad():
        t_float, _ = best_of(lambda: model(x), 5)
    t_ref, _ = best_of(lambda: snn.reference(ids), 3)

    runs = {}
    for threads in (1, 2):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        per_token_times(snn, ids[:4])  # compile / warm up
        times, syn, sim = [], [], None
        for p in prompts:
            t, s, sim_p = per_token_times(snn, p, time.perf_counter if threads == 2 else clock)
            times.append(t)
            syn.append(s)
            sim = sim if sim is not None else sim_p
        runs[threads] = (np.array(times), np.array(syn), sim)
    numba.set_num_threads(1)

    times1, syn1, sim = runs[1]
    times2, _, _ = runs[2]
    total_t1 = times1.sum(1).min()
    total_syn = syn1[0].sum()
    runner_counts = _proj_synops(snn, prompts[0])
    limit = row_limit(snn, runner_counts)
    row_adds = runner_counts.sum()
    sim_rate = total_syn / total_t1
    phase_rate, raw_rate, clock_ns = synaptic_phase_rate(snn, ids)

    print()
    print(f"{'measure':<58}{'value':>16}")
    print("times are CPU time of the calling thread unless marked wall")
    print(f"{'dense float torch forward, ' + str(L) + ' tokens (1 thread)':<58}{t_float * 1e3:>13.2f} ms")
    print(f"{'dense float torch forward, per token':<58}{t_float / L * 1e3:>13.3f} ms")
    print(f"{'dense QANN reference (NumPy), ' + str(L) + ' tokens':<58}{t_ref * 1e3:>13.2f} ms")
    wall1, _, _ = per_token_times(snn, ids, time.perf_counter)
    print(f"{'event-driven simulation per token, numba 1 thread':<58}{total_t1 / L * 1e3:>13.3f} ms")
    print(f"{'  the same, wall time':<58}{wall1.sum() / L * 1e3:>13.3f} ms")
    print(f"{'event-driven simulation per token, numba 2 threads (wall)':<58}{times2.sum(1).min() / L * 1e3:>13.3f} ms")
    print(f"{'steps to quiescence per token (mean)':<58}{sim.steps.mean():>16.1f}")
    print(f"{'spikes per token (mean)':<58}{sim.spikes['total'] / L:>16,.0f}")
    print(f"{'SynOps per token (mean)':<58}{total_syn / L:>16,.0f}")
    print(f"{'dense MACs per token (mean)':<58}{sim.macs['total'] / L:>16,.0f}")
    print(f"{'SynOps / s, whole simulation (1 thread)':<58}{sim_rate:>16.3e}")
    print(f"{'row-accumulation limit (same rows replayed), additions / s':<58}{limit:>16.3e}")
    print(f"{'int8 row additions / all SynOps':<58}{row_adds / total_syn:>16.3f}")
    print(f"{'simulation SynOps rate / limit':<58}{sim_rate / limit:>16.2f}")
    print(f"{'synaptic phase (row additions, timed inside the kernel) / s':<58}{phase_rate:>16.3e}")
    print(f"{'synaptic phase rate / limit':<58}{phase_rate / limit:>16.2f}")
    print(f"{'  the same, not corrected for the clock reads (' + f'{clock_ns:.0f} ns each' + ')':<58}{raw_rate / limit:>16.2f}")
    n8, n64 = 8, min(64, L - 1)
    t8, t64 = np.median(times1[:, n8]), np.median(times1[:, n64])
    s8, s64 = np.median(syn1[:, n8]), np.median(syn1[:, n64])
    print(f"{f'token {n64} vs token {n8}: time ratio (median of {len(prompts)} prompts)':<58}{t64 / t8:>16.2f}")
    print(f"{f'token {n64} vs token {n8}: SynOps ratio':<58}{s64 / s8:>16.2f}")
    print("energy estimate (synaptic ops vs dense MACs only, 0.9 pJ/AC, 4.6 pJ/MAC): "
          f"SNN {sim.synops['total'] * 0.9e-6:.2f} uJ, dense {sim.macs['total'] * 4.6e-6:.2f} uJ for {L} tokens")


def _proj_synops(snn, ids):
    runner = snn.runner("numba")
    for t in ids:
        runner.step_token(int(t), None)
    return runner.counters.synops_proj.copy()


if __name__ == "__main__":
    main()
