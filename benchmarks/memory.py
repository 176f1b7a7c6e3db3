"""Peak memory of a long run against a short one: does memory stay flat with model time?

    python -m benchmarks.memory [--short 10] [--long 600] [--scenario scenarios/cuba.toml]

Runs ``spikelm run SCENARIO --duration ... --out FILE`` for the short and the long model
time (seconds), each in its own process, and prints each process's peak resident set size
(``resource.getrusage``) and the ratio long / short. Before issue 12 every spike and a count
per step per population stayed in memory: CUBA's peak was 192 MB at 10 s and 505 MB at
600 s. A run that streams its record to the file should not grow.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# the run in a child process, which prints its own peak RSS (Linux: kB; macOS: bytes)
_CHILD = r"""
import resource, sys
from spikelm.cli import main
rc = main(sys.argv[1:])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("PEAK", peak * (1 if sys.platform == "darwin" else 1024), rc)
"""


def peak_rss(argv, cwd=REPO):
    """Run ``spikelm ARGV`` in a fresh process; return (peak RSS in bytes, exit code)."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", _CHILD, *map(str, argv)], cwd=cwd, env=env,
                          capture_output=True, text=True)
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("PEAK ")]
    if not line:
        raise RuntimeError(f"spikelm {' '.join(map(str, argv))} failed:\n{proc.stderr[-2000:]}")
    _, peak, rc = line[-1].split()
    return int(peak), int(rc)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default=str(REPO / "scenarios" / "cuba.toml"))
    ap.add_argument("--short", type=float, default=10.0, help="model seconds of the short run")
    ap.add_argument("--long", type=float, default=600.0, help="model seconds of the long run")
    args = ap.parse_args(argv)
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, seconds in (("short", args.short), ("long", args.long)):
            out = Path(tmp) / f"{label}.h5"
            peak, rc = peak_rss(["run", args.scenario, "--duration", seconds * 1000, "--out", out, "--no-progress"])
            figures[label] = peak
            print(f"{Path(args.scenario).name}, {seconds:g} s model time with --out: peak RSS {peak / 1e6:.1f} MB "
                  f"(exit {rc}, file {out.stat().st_size / 1e6:.1f} MB)", flush=True)
    print(f"long / short: {figures['long'] / figures['short']:.3f}")


if __name__ == "__main__":
    main()
