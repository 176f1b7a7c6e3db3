"""Throughput of ``spikelm sweep`` on a LocalCluster against one process.

    python -m benchmarks.scaleout [--points 8] [--workers 2] [--duration 1000] [--json out.json]

A sweep of ``--points`` CUBA points (seeds 1..N: equal work per point) runs twice through the
same code (:func:`spikelm.scaleout.sweep.sweep`): in this process (``serial``) and on a
LocalCluster of ``--workers`` single-threaded worker processes. Printed: both wall times, the
throughput ratio serial / cluster (the figure of issue 15; target >= 1.7 with 2 workers on 2
cores), the cluster's start-up, and whether every point gave the same figures both ways.

What would spoil the ratio is kept out of the timed part, and said so: Numba's compile (the
disk cache is warmed first, and every worker loads the compiled loop and runs one short point
through the scheduler before the clock starts, as a long-lived cluster has), and the cluster start-up (timed apart; the ratio
including it is printed too). Workers are single-threaded processes (no GIL contention, no
oversubscribed BLAS threads); what crosses to a worker is the scenario text and the point's
overrides, a few kB, and what comes back is one row.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "scenarios" / "cuba.toml"


def _warm(text):
    """Build the scenario and run a few steps: loads the compiled loop from Numba's disk cache."""
    from spikelm.io.scenario import loads_scenario
    from spikelm.simulator import Simulator

    sc = loads_scenario(text, "warm-up")
    net = sc.build()
    Simulator(net, backend="numba", record=sc.record_spikes()).run(10, progress=False)
    return True


def _warm_tasks(client, text, out):
    """One short point through the scheduler on every worker: the whole task path, imports included."""
    from spikelm.io.scenario import loads_scenario
    from spikelm.scaleout.overrides import parse_set
    from spikelm.scaleout.sweep import RunOptions, run_point

    out.mkdir()
    seed = parse_set("seed=0", loads_scenario(text, SCENARIO.name).data)
    futures = [client.submit(run_point, text, "warm-up", ((seed, 0),), RunOptions(steps=10), str(out / f"{i}.h5"),
                             "warm-up", workers=[w], pure=False)
               for i, w in enumerate(client.scheduler_info()["workers"])]
    client.gather(futures)


def _same(a, b):
    skip = ("wall_s", "build_s", "status")
    for ra, rb in zip(a, b):
        for k in ra:
            if k in skip:
                continue
            x, y = ra[k], rb[k]
            if not (x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))):
                return False
    return len(a) == len(b)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=8, help="points in the sweep (default 8)")
    ap.add_argument("--workers", type=int, default=2, help="local worker processes (default 2)")
    ap.add_argument("--duration", type=float, default=None, help="model ms per point (default: the scenario's)")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)

    from distributed import Client

    from spikelm.scaleout.cluster import local_cluster
    from spikelm.scaleout.sweep import RunOptions, sweep

    sets = [f"seed=1..{args.points}"]
    opts = RunOptions(duration=args.duration)
    text = SCENARIO.read_text()
    quiet = dict(progress=False, echo=lambda *a: None)
    tmp = Path(tempfile.mkdtemp(prefix="spikelm-scaleout-"))
    try:
        _warm(text)
        sweep(str(SCENARIO), ["seed=0"], str(tmp / "warm"), "serial", opts, **quiet)

        t = time.perf_counter()
        serial = sweep(str(SCENARIO), sets, str(tmp / "serial"), "serial", opts, **quiet)
        t_serial = time.perf_counter() - t

        t = time.perf_counter()
        with local_cluster(args.workers) as cluster, Client(cluster) as client:
            client.wait_for_workers(args.workers)
            client.run(_warm, text)
            _warm_tasks(client, text, tmp / "warm-cluster")
            t_start = time.perf_counter() - t
            t = time.perf_counter()
            dist = sweep(str(SCENARIO), sets, str(tmp / "cluster"), client, opts, **quiet)
            t_dist = time.perf_counter() - t
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    failed = [r for r in serial.rows + dist.rows if r["status"] == "error"]
    same = _same(serial.rows, dist.rows)
    point_s = sum(r["build_s"] + r["wall_s"] for r in serial.rows) / len(serial.rows)
    point_dist_s = sum(r["build_s"] + r["wall_s"] for r in dist.rows) / len(dist.rows)
    res = {"points": args.points, "workers": args.workers, "scenario": SCENARIO.name,
           "duration_ms": args.duration, "serial_s": t_serial, "cluster_s": t_dist,
           "throughput_ratio": t_serial / t_dist, "cluster_start_s": t_start,
           "ratio_with_start": t_serial / (t_dist + t_start), "mean_point_build_run_s": point_s,
           "mean_point_build_run_s_on_workers": point_dist_s,
           "identical": same, "failed": len(failed)}
    from spikelm.io.scenario import loads_scenario

    ms = args.duration or serial.rows[0]["steps"] * loads_scenario(text, SCENARIO.name).dt
    print(f"sweep of {args.points} {SCENARIO.name} points (seeds 1..{args.points}), {ms:g} ms each; "
          f"build + run per point {point_s:.2f} s in one process, {point_dist_s:.2f} s on a worker")
    print(f"  one process:              {t_serial:7.2f} s  ({args.points / t_serial:.2f} points/s)")
    print(f"  LocalCluster {args.workers} workers:   {t_dist:7.2f} s  ({args.points / t_dist:.2f} points/s)")
    print(f"  throughput ratio:         {res['throughput_ratio']:7.2f} x   (cluster start-up {t_start:.1f} s "
          f"not included; with it {res['ratio_with_start']:.2f} x)")
    print(f"  same figures both ways:   {'yes' if same else 'NO'}; failed points: {len(failed)}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    return 0 if same and not failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
