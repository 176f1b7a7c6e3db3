"""One PyNN script on pyNN.nest and on spikelm.pynn: rates, identical spikes, timing side by side.

    python -m benchmarks.pynn [--n 4000] [--duration-ms 1000] [--repeats 3] [--python PEERS_PYTHON]

Runs ``benchmarks/pynn_cuba.py`` (CUBA written in PyNN: PyNN draws the connectivity and the
initial values with one seeded NumpyRNG, so both simulators get the same network) once per
repeat on each simulator, alternating, each in a fresh process: spikelm in this environment,
NEST in the peers venv (``bash benchmarks/setup_peers.sh`` installs NEST and PyNN there).
pyNN.nest runs with ``spike_precision="on_grid"``, the convention spikelm.pynn maps to
(docs/pynn.md). The table gives rates, how many spikes (step, neuron) the two share, and
the median of the wall-clock times: build (populations, connectivity) and run.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .peers import REPO, peers_python

SCRIPT = Path(__file__).resolve().parent / "pynn_cuba.py"


def run_one(simulator, out, n, duration_ms, python=None):
    """One run of the script; its JSON dict, or None after saying why."""
    env = dict(os.environ, PYNEST_QUIET="1")
    if simulator == "nest":
        py = Path(python) if python else peers_python()
        if not py.exists():
            print(f"pynn: peers venv not found ({py}); run: bash benchmarks/setup_peers.sh", file=sys.stderr)
            return None
        env.pop("PYTHONPATH", None)
    else:
        py = Path(sys.executable)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    cmd = [str(py), str(SCRIPT), "--simulator", simulator, "--out", str(out), "--n", str(n),
           "--duration-ms", repr(float(duration_ms))]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO), timeout=3600)
    if r.returncode != 0:
        tail = "\n".join(r.stderr.strip().splitlines()[-8:])
        print(f"pynn: {simulator} failed:\n{tail}", file=sys.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def spike_keys(path, n):
    d = np.load(path)
    return np.unique(d["steps"].astype(np.int64) * n + d["ids"].astype(np.int64))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--duration-ms", type=float, default=1000.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--python", default=None, help="the peers venv's interpreter")
    args = ap.parse_args(argv)
    results = {"spikelm": [], "nest": []}
    with tempfile.TemporaryDirectory(prefix="spikelm-pynn-") as tmp:
        keys = {}
        for r in range(args.repeats):
            for simulator in ("spikelm", "nest"):       # alternating, so load on the machine hits both
                out = Path(tmp) / f"{simulator}-{r}.npz"
                res = run_one(simulator, out, args.n, args.duration_ms, args.python)
                if res is not None:
                    results[simulator].append(res)
                    keys[simulator] = spike_keys(out, args.n)
    print(f"CUBA in PyNN (benchmarks/pynn_cuba.py), {args.n:,} IF_curr_exp neurons, {args.duration_ms:g} ms, "
          f"dt 0.1 ms, median of {args.repeats} fresh processes each")
    print(f"  {'simulator':<22}{'exc Hz':>8}{'inh Hz':>8}{'spikes':>9}{'same spikes':>13}{'build s':>9}{'run s':>8}")
    ref = keys.get("spikelm")
    for simulator, runs in results.items():
        if not runs:
            print(f"  {simulator:<22}(did not run: see above)")
            continue
        last = runs[-1]
        same = "-" if simulator == "spikelm" or ref is None else f"{np.intersect1d(ref, keys[simulator]).size:,}"
        build = statistics.median(x["build_s"] for x in runs)
        run = statistics.median(x["run_s"] for x in runs)
        label = f"{'spikelm.pynn' if simulator == 'spikelm' else 'pyNN.nest'} {last['version']}"
        print(f"  {label:<22}{last['rate_exc_hz']:>8.3f}{last['rate_inh_hz']:>8.3f}{last['spikes']:>9,}{same:>13}"
              f"{build:>9.2f}{run:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
