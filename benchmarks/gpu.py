"""numba (CPU) against cupy (GPU) on the classic networks, plus the GPU's dense-row accumulation limit.

    python -m benchmarks.gpu [--nets cuba,cuba40k,brunel] [--modes atomic,ordered] [--no-graphs] [--json out.json]

Same run, same machine: for each network the numba loop time (compile excluded: one warm-up
step first), the cupy loop time (kernel compile and graph capture excluded the same way),
their ratio, and both mean rates (atomic propagation sums floats in another order, so spikes
drift apart but rates must agree). Then ``row_accumulate``: acc += v_j * W[j, :] for the spiking
rows j, the GPU's own limit for the converted LM's synaptic phase (GB/s and additions/s).
Without CuPy or a CUDA GPU it prints which is missing and exits with status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NETS = {  # name: (scenario, model ms)
    "cuba": ("cuba.toml", 10_000.0),
    "cuba40k": ("cuba40k.toml", 1_000.0),
    "brunel": ("brunel2000.toml", 1_000.0),
}


def run_one(scenario, duration_ms, backend, mode="atomic", graphs=True):
    import spikelm.gpu.backend as gb
    from spikelm.io.scenario import load_scenario
    from spikelm.simulator import Simulator

    gb.set_propagation(mode)
    gb.set_graphs(graphs)
    net = load_scenario(REPO / "scenarios" / scenario).build()
    sim = Simulator(net, backend=backend, record="all")
    t = time.perf_counter()
    sim.run(1)  # compile / load kernels, capture the step graph
    first = time.perf_counter() - t
    steps = int(round(duration_ms / net.dt))
    t = time.perf_counter()
    r = sim.run(steps)
    loop = time.perf_counter() - t
    secs = steps * net.dt * 1e-3
    n = sum(p.n for p in net.populations.values())
    return {"loop_s": loop, "first_call_s": first, "steps": steps, "rate_hz": sum(r.spikes.values()) / n / secs,
            "synops": sum(r.synops.values()), "synops_per_s": sum(r.synops.values()) / loop}


def row_accumulate_limit(n_rows=8192, n_cols=8192, frac=0.1, repeats=20, seed=0):
    """Time the dense-row accumulation kernel: the bandwidth limit of adding W[j, :] rows."""
    import cupy as cp
    import numpy as np

    from spikelm.gpu.kernels import ROW_ACCUMULATE

    rng = np.random.default_rng(seed)
    W = cp.asarray(rng.standard_normal((n_rows, n_cols)))
    rows = cp.asarray(np.sort(rng.choice(n_rows, int(frac * n_rows), replace=False)).astype(np.int64))
    vals = cp.asarray(rng.choice([-1.0, 1.0], rows.size))
    acc = cp.zeros(n_cols)
    k = cp.RawKernel(ROW_ACCUMULATE, "row_accumulate", options=("--fmad=false",))
    args = (W, np.int64(n_cols), rows, vals, np.int64(rows.size), acc)
    grid = ((n_cols + 255) // 256,)
    k(grid, (256,), args)
    cp.cuda.Device().synchronize()
    start, end = cp.cuda.Event(), cp.cuda.Event()
    start.record()
    for _ in range(repeats):
        k(grid, (256,), args)
    end.record()
    end.synchronize()
    s = cp.cuda.get_elapsed_time(start, end) * 1e-3 / repeats
    adds = rows.size * n_cols
    return {"rows": int(rows.size), "cols": n_cols, "s": s, "GB_per_s": adds * 8 / s / 1e9, "adds_per_s": adds / s}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default=",".join(NETS))
    ap.add_argument("--modes", default="atomic", help="cupy propagation modes: atomic, ordered")
    ap.add_argument("--no-graphs", action="store_true", help="launch kernels step by step (no CUDA graph)")
    ap.add_argument("--json", help="write the results here too")
    args = ap.parse_args(argv)
    from spikelm.gpu.backend import unavailable_reason

    reason = unavailable_reason()
    if reason:
        print(f"benchmarks/gpu.py needs a CUDA GPU and CuPy; {reason}", file=sys.stderr)
        return 2
    import cupy as cp

    dev = cp.cuda.Device()
    name = cp.cuda.runtime.getDeviceProperties(dev.id)["name"]
    name = name.decode() if isinstance(name, bytes) else name
    print(f"GPU: {name}")
    results = {"gpu": name, "nets": {}}
    modes = args.modes.split(",")
    header = f"{'network':10s} {'steps':>7s} {'numba s':>9s} " + " ".join(
        f"{'cupy ' + m + ' s':>16s} {'x':>6s}" for m in modes) + f" {'rate numba':>10s} {'rate cupy':>10s}"
    print(header)
    for net in args.nets.split(","):
        scenario, ms = NETS[net]
        row = {"numba": run_one(scenario, ms, "numba")}
        for m in modes:
            row[f"cupy_{m}"] = run_one(scenario, ms, "cupy", m, not args.no_graphs)
        results["nets"][net] = row
        nb = row["numba"]
        cells = " ".join(f"{row[f'cupy_{m}']['loop_s']:16.3f} {nb['loop_s'] / row[f'cupy_{m}']['loop_s']:6.1f}"
                         for m in modes)
        print(f"{net:10s} {nb['steps']:7d} {nb['loop_s']:9.3f} {cells} {nb['rate_hz']:10.2f} "
              f"{row[f'cupy_{modes[0]}']['rate_hz']:10.2f}")
    lim = row_accumulate_limit()
    results["row_accumulate"] = lim
    print(f"row_accumulate: {lim['rows']} rows x {lim['cols']} cols in {lim['s'] * 1e3:.3f} ms: "
          f"{lim['GB_per_s']:.0f} GB/s, {lim['adds_per_s']:.3g} additions/s")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
