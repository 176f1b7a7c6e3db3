"""Side-by-side timings of the classic scenarios: spikelm (numba) against Brian2 and NEST.

    python -m benchmarks.classic [--nets cuba,izhikevich,cuba40k,brunel,microcircuit] [--threads 1,2]
        [--microcircuit-scale 1.0] [--peer-microcircuit-scale S] [--no-peers] [--json out.json]

For each network and thread count: spikelm's loop time (compile excluded), its start-up (first
call of the compiled loop: cold = empty Numba cache, cached = second process), the mean rate,
and the same figures from each installed peer (``bash benchmarks/setup_peers.sh``) on the same
number of threads, all in this one run, then the ratio peer loop / spikelm loop at equal
threads (> 1: spikelm faster) and each simulator's speed-up over its own one-thread run. Every
measurement runs in its own subprocess, one at a time. Delays are one step everywhere (Brian2's
CUBA example has none, NEST's minimum is one step); Brunel's is 1.5 ms in every simulator.
The microcircuit (scenarios/microcircuit.toml, DC background) runs 500 ms of presimulation,
then the timed second (benchmarks/microcircuit.py, which also compares its statistics).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NETS = {  # name: (scenario, model ms, peer net name)
    "cuba": ("cuba.toml", 10_000.0, "cuba"),
    "izhikevich": ("izhikevich2003.toml", 1_000.0, "izhikevich"),
    "cuba40k": ("cuba40k.toml", 1_000.0, "cuba40k"),
    "brunel": ("brunel2000.toml", 1_000.0, "brunel"),
    "microcircuit": ("microcircuit.toml", 1_000.0, None),
}
PEER_RUNS = [("brian2", "cpp_standalone"), ("brian2", "cython"), ("nest", None)]

_ONE = r"""
import json, sys, time
t0 = time.perf_counter()
from spikelm.io.scenario import load_scenario
from spikelm.simulator import Simulator
t_import = time.perf_counter() - t0
sc = load_scenario(sys.argv[1]); t = time.perf_counter(); net = sc.build(); build = time.perf_counter() - t
sim = Simulator(net, backend="numba", record="all", threads=int(sys.argv[3]))
t = time.perf_counter(); sim.run(1); first = time.perf_counter() - t
steps = int(round(float(sys.argv[2]) / net.dt))
t = time.perf_counter(); c = time.process_time(); r = sim.run(steps); loop = time.perf_counter() - t
cpu = time.process_time() - c
secs = steps * net.dt * 1e-3
rates = {p: r.spikes[p] / net.populations[p].n / secs for p in r.spikes}
print(json.dumps({"loop_s": loop, "cpu_s": cpu, "first_call_s": first, "import_s": t_import, "build_s": build,
                  "rate_hz": rates, "n_spikes": sum(r.spikes.values()), "synops": sum(r.synops.values())}))
"""


def spikelm_run(scenario, duration_ms, cache_dir=None, threads=1):
    env = dict(os.environ)
    if cache_dir:
        env["NUMBA_CACHE_DIR"] = cache_dir
        env["SPIKELM_CACHE_DIR"] = cache_dir   # the generated loop module too: a cold start
    r = subprocess.run([sys.executable, "-c", _ONE, str(REPO / "scenarios" / scenario), str(duration_ms),
                        str(threads)], capture_output=True, text=True, env=env, cwd=REPO)
    if r.returncode != 0:
        print(r.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def microcircuit_rows(threads, scale, peer_scale, peers):
    """The microcircuit's rows (benchmarks/microcircuit.py): spikelm and NEST per thread count."""
    import tempfile

    from benchmarks import microcircuit as mc

    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        sp = mc.run_spikelm(scale, "dc", 1, 500.0, 1000.0, threads, Path(tmp) / "s.npz")
        for r in (sp["runs"] if sp else []):
            rows[("spikelm numba", r["threads"])] = {
                "loop_s": r["loop_s"], "build_s": sp["build_with_simulator_s"], "first_call_s": r["first_call_s"],
                "rate_hz": None, "n_spikes": None, "peak_rss_gb": sp["peak_rss_gb"]}
        if peers:
            from benchmarks.peers import run_microcircuit

            (Path(tmp) / "p.json").write_text(json.dumps(mc.peer_params(peer_scale, "dc")))
            for th in threads:
                r = run_microcircuit("nest", Path(tmp) / "p.json", Path(tmp) / "n.npz", 1000.0, 500.0, threads=th)
                if r is not None and peer_scale != scale:
                    r["label_note"] = f"@{peer_scale:g}"
                rows[("nest", th)] = r
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", default=",".join(NETS))
    ap.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2 (every simulator)")
    ap.add_argument("--microcircuit-scale", type=float, default=1.0)
    ap.add_argument("--peer-microcircuit-scale", type=float, default=None,
                    help="NEST's microcircuit scale (default: --microcircuit-scale)")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--json", help="also write all figures to this file")
    args = ap.parse_args(argv)
    nets = [n.strip() for n in args.nets.split(",") if n.strip()]
    threads = [int(x) for x in args.threads.split(",") if x.strip()]
    for n in nets:
        if n not in NETS:
            ap.error(f"unknown net {n!r}; choose from {', '.join(NETS)}")
    results = {}
    with tempfile.TemporaryDirectory() as cache:
        cold = spikelm_run(NETS["izhikevich"][0], 1.0, cache)
        cached = spikelm_run(NETS["izhikevich"][0], 1.0, cache)
    results["startup"] = {"cold_first_call_s": cold and cold["first_call_s"],
                          "cached_first_call_s": cached and cached["first_call_s"],
                          "import_s": cached and cached["import_s"]}
    print(f"start-up: first compiled call {results['startup']['cold_first_call_s']:.2f} s cold (empty Numba cache), "
          f"{results['startup']['cached_first_call_s']:.2f} s cached; import {results['startup']['import_s']:.2f} s")
    print(f"threads {threads}; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(default)')}")
    print("(each simulator draws its own connectivity: counts agree in distribution; for the same network "
          "spike for spike run python -m benchmarks.peers identical)")
    for net in nets:
        scen, dur, peer_net = NETS[net]
        if net == "microcircuit":
            rows = microcircuit_rows(threads, args.microcircuit_scale,
                                     args.peer_microcircuit_scale or args.microcircuit_scale, not args.no_peers)
        else:
            rows = {}
            for th in threads:
                rows[("spikelm numba", th)] = spikelm_run(scen, dur, threads=th)
            if not args.no_peers:
                from benchmarks.peers import run_peer

                for th in threads:
                    for peer, device in PEER_RUNS:
                        if device == "cython" and th > 1:
                            continue   # Brian2's runtime targets are single-threaded
                        label = f"{peer} {device or ''}".strip()
                        rows[(label, th)] = run_peer(peer, device, peer_net, dur, threads=th)
        results[net] = {f"{k[0]} x{k[1]}": v for k, v in rows.items()}
        _table(net, dur, rows)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


def _table(net, dur, rows):
    print(f"\n{net}: {dur / 1000:g} s of model time")
    print(f"  {'simulator':<26}{'threads':>8}{'loop s':>10}{'setup s':>10}{'rate Hz':>10}{'spikes':>12}"
          f"{'peer/spikelm':>14}{'vs 1 thread':>13}")
    for (label, th), r in rows.items():
        if r is None:
            print(f"  {label:<26}{th:>8}{'(not available)':>30}")
            continue
        loop = r["loop_s"]
        setup = r.get("setup_s", r.get("build_s", 0.0) + r.get("first_call_s", 0.0))
        rate = r.get("rate_hz")
        mean = (sum(rate.values()) / len(rate) if isinstance(rate, dict) else rate) if rate is not None else None
        base = rows.get(("spikelm numba", th))
        ratio = f"{loop / base['loop_s']:.2f}" if base and not label.startswith("spikelm") else ""
        one = rows.get((label, 1))
        speed = f"{one['loop_s'] / loop:.2f}" if one and th > 1 else ""
        spikes = f"{r['n_spikes']:,}" if r.get("n_spikes") is not None else "-"
        mean_s = f"{mean:.2f}" if mean is not None else "-"
        name = label + (f" {r['label_note']}" if r.get("label_note") else "")
        print(f"  {name:<26}{th:>8}{loop:>10.3f}{setup:>10.2f}{mean_s:>10}{spikes:>12}{ratio:>14}{speed:>13}")


if __name__ == "__main__":
    sys.exit(main())
