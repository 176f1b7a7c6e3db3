"""CUBA written in PyNN: one script for pyNN.nest and spikelm.pynn (run by benchmarks/pynn.py).

    python benchmarks/pynn_cuba.py --simulator nest|spikelm --out spikes.npz [--n 4000] [--duration-ms 1000]

The Vogels-Abbott CUBA network as PyNN's VAbenchmarks example sets it up (Brette et al. 2007,
benchmark 2): 4,000 IF_curr_exp neurons (80 % excitatory), E_leak = -49 mV above threshold so
the network drives itself, 2 % connectivity drawn by PyNN with a seeded NumpyRNG, the same
for every backend, initial V uniform in [v_reset, v_thresh), delays 0.2 ms, dt 0.1 ms.
Written here against PyNN's API only, so it runs unchanged in the peers venv (pyNN.nest,
with ``spike_precision="on_grid"``, the mapping docs/pynn.md describes) and in spikelm's.
It prints one JSON line (timings, rates) and writes every spike (step, global index).
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time

import numpy as np


def build(sim, n, seed):
    """The network; returns (exc, inh) populations."""
    from pyNN.random import NumpyRNG, RandomDistribution

    n_exc = int(round(n * 0.8))
    area = 20000e-8                        # cm2
    cm = 1.0 * area * 1000                 # nF: 0.2
    tau_m, v_mean = 20.0, -60.0
    cell = sim.IF_curr_exp(tau_m=tau_m, tau_syn_E=5.0, tau_syn_I=10.0, v_rest=-49.0, v_reset=-60.0,
                           v_thresh=-50.0, cm=cm, tau_refrac=5.0)
    w_exc = 1e-3 * 0.27 * (0.0 - v_mean)   # nA, from the COBA conductances at V = -60 mV
    w_inh = 1e-3 * 4.5 * (-80.0 - v_mean)
    exc = sim.Population(n_exc, cell, label="exc")
    inh = sim.Population(n - n_exc, cell, label="inh")
    rng = NumpyRNG(seed=seed, parallel_safe=True)
    v0 = RandomDistribution("uniform", low=-60.0, high=-50.0, rng=rng)
    exc.initialize(v=v0)
    inh.initialize(v=v0)
    conn = sim.FixedProbabilityConnector(0.02, rng=rng)
    for pre, w, receptor in ((exc, w_exc, "excitatory"), (inh, w_inh, "inhibitory")):
        syn = sim.StaticSynapse(weight=w, delay=0.2)
        for post in (exc, inh):
            sim.Projection(pre, post, conn, syn, receptor_type=receptor)
    exc.record("spikes")
    inh.record("spikes")
    return exc, inh


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--simulator", choices=("nest", "spikelm"), required=True)
    ap.add_argument("--out", required=True, help="npz file for the spikes")
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--duration-ms", type=float, default=1000.0)
    ap.add_argument("--seed", type=int, default=98765)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    if args.simulator == "nest":
        sim = importlib.import_module("pyNN.nest")
        sim.setup(timestep=0.1, min_delay=0.2, max_delay=1.0, spike_precision="on_grid", threads=1)
        version = sim.nest.__version__ if hasattr(sim.nest, "__version__") else "?"
    else:
        sim = importlib.import_module("spikelm.pynn")
        sim.setup(timestep=0.1, min_delay=0.2, max_delay=1.0)
        import spikelm
        version = spikelm.__version__
    t1 = time.perf_counter()
    exc, inh = build(sim, args.n, args.seed)
    t2 = time.perf_counter()
    sim.run(args.duration_ms)
    t3 = time.perf_counter()
    steps, ids = [], []
    offset = 0
    for pop in (exc, inh):
        for st in pop.get_data("spikes").segments[0].spiketrains:
            times = np.asarray(st.rescale("ms").magnitude, float)
            steps.append(np.rint(times / 0.1).astype(np.int64))
            ids.append(np.full(times.size, offset + int(st.annotations["source_index"]), np.int64))
        offset += pop.size
    steps = np.concatenate(steps) if steps else np.zeros(0, np.int64)
    ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    np.savez(args.out, steps=steps, ids=ids)
    n_exc = exc.size
    out = {"simulator": args.simulator, "version": str(version), "n": args.n, "duration_ms": args.duration_ms,
           "import_setup_s": round(t1 - t0, 4), "build_s": round(t2 - t1, 4), "run_s": round(t3 - t2, 4),
           "rate_exc_hz": float((ids < n_exc).sum() / n_exc / (args.duration_ms / 1000)),
           "rate_inh_hz": float((ids >= n_exc).sum() / (args.n - n_exc) / (args.duration_ms / 1000)),
           "spikes": int(steps.size)}
    sim.end()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
