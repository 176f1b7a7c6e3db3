"""Side-by-side timings of the classic scenarios: spikelm (numba) against Brian2 and NEST.

    python -m benchmarks.classic [--nets cuba,izhikevich,cuba40k,brunel] [--no-peers] [--json out.json]

For each network: spikelm's loop time (compile excluded), its start-up (first call of the
compiled loop: cold = empty Numba cache, cached = second process), the mean rate, and the
same figures from each installed peer (``bash benchmarks/setup_peers.sh``), all in this one
run, then the ratio peer loop / spikelm loop (> 1: spikelm faster). Every measurement runs
in its own subprocess, one at a time. Delays are one step everywhere (Brian2's CUBA example
has none, NEST's minimum is one step); Brunel's is 1.5 ms in every simulator.
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
}
PEER_RUNS = [("brian2", "cpp_standalone"), ("brian2", "cython"), ("nest", None)]

_ONE = r"""
import json, sys, time
t0 = time.perf_counter()
from spikelm.io.scenario import load_scenario
from spikelm.simulator import Simulator
t_import = time.perf_counter() - t0
sc = load_scenario(sys.argv[1]); t = time.perf_counter(); net = sc.build(); build = time.perf_counter() - t
sim = Simulator(net, backend="numba", record="all")
t = time.perf_counter(); sim.run(1); first = time.perf_counter() - t
steps = int(round(float(sys.argv[2]) / net.dt))
t = time.perf_counter(); c = time.process_time(); r = sim.run(steps); loop = time.perf_counter() - t
cpu = time.process_time() - c
secs = steps * net.dt * 1e-3
rates = {p: r.spikes[p] / net.populations[p].n / secs for p in r.spikes}
print(json.dumps({"loop_s": loop, "cpu_s": cpu, "first_call_s": first, "import_s": t_import, "build_s": build,
                  "rate_hz": rates, "n_spikes": sum(r.spikes.values()), "synops": sum(r.synops.values())}))
"""


def spikelm_run(scenario, duration_ms, cache_dir=None):
    env = dict(os.environ)
    if cache_dir:
        env["NUMBA_CACHE_DIR"] = cache_dir
    r = subprocess.run([sys.executable, "-c", _ONE, str(REPO / "scenarios" / scenario), str(duration_ms)],
                       capture_output=True, text=True, env=env, cwd=REPO)
    if r.returncode != 0:
        print(r.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", default=",".join(NETS))
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--json", help="also write all figures to this file")
    args = ap.parse_args(argv)
    nets = [n.strip() for n in args.nets.split(",") if n.strip()]
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
    print("(each simulator draws its own connectivity: counts agree in distribution; for the same network "
          "spike for spike run python -m benchmarks.peers identical)")
    for net in nets:
        scen, dur, peer_net = NETS[net]
        rows = {}
        # one row: the compiled time loop is serial, more Numba threads change nothing
        rows["spikelm numba"] = spikelm_run(scen, dur)
        if not args.no_peers:
            from benchmarks.peers import run_peer

            for peer, device in PEER_RUNS:
                label = f"{peer} {device or ''}".strip()
                rows[label] = run_peer(peer, device, peer_net, dur, threads=1)
        results[net] = rows
        base = rows["spikelm numba"]
        print(f"\n{net}: {dur / 1000:g} s of model time")
        print(f"  {'simulator':<26}{'loop s':>10}{'setup s':>10}{'rate Hz':>10}{'spikes':>12}{'peer/spikelm':>14}")
        for label, r in rows.items():
            if r is None:
                print(f"  {label:<26}{'(not available)':>30}")
                continue
            loop = r["loop_s"]
            setup = r.get("setup_s", r.get("build_s", 0.0) + r.get("first_call_s", 0.0))
            rate = r["rate_hz"]
            mean = sum(rate.values()) / len(rate) if isinstance(rate, dict) else rate
            ratio = f"{loop / base['loop_s']:.2f}" if base and not label.startswith("spikelm") else ""
            spikes = f"{r['n_spikes']:,}" if "n_spikes" in r else "-"
            print(f"  {label:<26}{loop:>10.3f}{setup:>10.2f}{mean:>10.2f}{spikes:>12}{ratio:>14}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
