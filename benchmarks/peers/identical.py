"""Spike for spike: one CUBA network on spikelm, Brian2 and NEST, conventions mapped.

    python -m benchmarks.peers.identical [--duration-ms 1000] [--delay-steps 2] [--naive]

spikelm builds ``scenarios/cuba.toml`` (4,000 LIF neurons, exponential current synapses,
E_L above threshold) with every delay set to ``--delay-steps`` steps, writes the network it
built (parameters, initial V, every synapse) to a file, and runs it. Brian2 and NEST, in the
peers venv (``bash benchmarks/setup_peers.sh``), build that same network from the file with
the mapping of docs/coming-from-brian2-nest.md and run it (``identical_net.py``). The table
gives each simulator's spike counts and how many of its spikes (step, neuron) spikelm also
has. ``--naive`` adds runs without the mapping (``v > v_th``, Brian2 refractory t_ref, delay
d dt), to show what each convention is worth.

NEST's minimum delay is one step, which maps to spikelm's 2 steps: with ``--delay-steps 1``
(Brian2's CUBA example: no delay) NEST is left out and says why.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from . import HERE, REPO, peers_python


def build_cuba(delay_steps: int):
    """spikelm's CUBA with every synapse delayed ``delay_steps`` steps."""
    from spikelm.io.scenario import load_scenario

    sc = load_scenario(REPO / "scenarios" / "cuba.toml")
    for proj in sc.data["projections"].values():
        proj["delay"] = delay_steps * sc.dt
    return sc.build()


def export(net, path) -> dict:
    """Write what a peer needs to build the same network; return {population: global offset}."""
    pops = list(net.populations.values())
    params = {p.name: p.params for p in pops}
    first = params[pops[0].name]
    if any(p.model.name != "lif" or params[p.name] != first for p in pops):
        raise SystemExit("identical.py maps one LIF parameter set; this network has several")
    offset, at = {}, 0
    for p in pops:
        offset[p.name] = at
        at += p.n
    data = {"dt": net.dt, "v0": np.concatenate([p.state["v"] for p in pops]),
            "n_proj": len(net.projections)}
    for name in ("tau_m", "tau_e", "tau_i", "v_th", "v_reset", "e_l", "t_ref"):
        data[name] = getattr(first, name)
    for k, proj in enumerate(net.projections.values()):
        data[f"pre_{k}"] = proj.pre_idx() + offset[proj.pre.name]
        data[f"post_{k}"] = proj.post_idx.astype(np.int64) + offset[proj.post.name]
        data[f"w_{k}"] = np.asarray(proj.w, dtype=np.float64)
        data[f"delay_{k}"] = np.asarray(proj.delay, dtype=np.int64)
        data[f"target_{k}"] = 0 if proj.target == "exc" else 1
    np.savez(path, **data)
    return offset


def _keys(steps, ids, n):
    return np.unique(np.asarray(steps, np.int64) * n + np.asarray(ids, np.int64))


def compare(ref_keys, steps, ids, n, dt):
    """(spikes in common, only in the peer, only in spikelm, time of the first difference in ms or None)."""
    keys = _keys(steps, ids, n)
    common = np.intersect1d(ref_keys, keys, assume_unique=True).size
    differ = np.setxor1d(ref_keys, keys, assume_unique=True)
    first = None if differ.size == 0 else float((differ.min() // n) * dt)
    return common, keys.size - common, ref_keys.size - common, first


def run_peer_net(peer, npz, out, duration_ms, convention, python=None, timeout=1800):
    """Run identical_net.py in the peers venv; its JSON dict, or None after saying why."""
    py = Path(python) if python else peers_python()
    if not py.exists():
        print(f"identical: peers venv not found ({py}); run: bash benchmarks/setup_peers.sh", file=sys.stderr)
        return None
    env = dict(os.environ, PYNEST_QUIET="1")
    env.pop("PYTHONPATH", None)
    cmd = [str(py), str(HERE / "identical_net.py"), "--peer", peer, "--network", str(npz),
           "--spikes-out", str(out), "--duration-ms", repr(float(duration_ms)), "--convention", convention]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=str(REPO))
    except subprocess.TimeoutExpired:
        print(f"identical: {peer} ({convention}) timed out after {timeout} s", file=sys.stderr)
        return None
    if r.returncode != 0:
        tail = "\n".join(r.stderr.strip().splitlines()[-8:])
        print(f"identical: {peer} ({convention}) failed:\n{tail}", file=sys.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration-ms", type=float, default=1000.0)
    ap.add_argument("--delay-steps", type=int, default=2, help="spikelm delay of every synapse (>= 1)")
    ap.add_argument("--naive", action="store_true", help="also run the peers without the mapping")
    ap.add_argument("--python", default=None, help="the peers venv's interpreter")
    args = ap.parse_args(argv)
    if args.delay_steps < 1:
        ap.error("--delay-steps must be >= 1")

    from spikelm.simulator import Simulator

    net = build_cuba(args.delay_steps)
    n = net.n_neurons
    dt = net.dt
    with tempfile.TemporaryDirectory(prefix="spikelm-identical-") as tmp:
        npz = Path(tmp) / "network.npz"
        offset = export(net, npz)
        sim = Simulator(net, backend="numba")
        sim.run(duration=args.duration_ms)
        parts = [sim.spikes.get(name) for name in net.populations]
        steps = np.concatenate([p[0] for p in parts])
        ids = np.concatenate([p[1] + offset[name] for p, name in zip(parts, net.populations)])
        ref = _keys(steps, ids, n)
        n_exc = net.populations["exc"].n
        rows = [("spikelm", "-", int((ids < n_exc).sum()), int((ids >= n_exc).sum()), ref.size, 0, 0, None)]
        runs = [("brian2", "mapped"), ("nest", "mapped")]
        if args.naive:
            runs += [("brian2", "naive"), ("nest", "naive")]
        for peer, convention in runs:
            if peer == "nest" and args.delay_steps - (1 if convention == "mapped" else 0) < 1:
                print(f"identical: NEST left out: its minimum delay (one step) is spikelm's 2 steps, "
                      f"and --delay-steps is {args.delay_steps}", file=sys.stderr)
                continue
            out = Path(tmp) / f"{peer}-{convention}.npz"
            res = run_peer_net(peer, npz, out, args.duration_ms, convention, args.python)
            if res is None:
                continue
            got = np.load(out)
            common, only_peer, only_ref, first = compare(ref, got["steps"], got["ids"], n, dt)
            label = f"{peer} {res['version']}"
            rows.append((label, convention, int((got["ids"] < n_exc).sum()), int((got["ids"] >= n_exc).sum()),
                         int(got["steps"].size), common, only_peer, first))
    print(f"CUBA, {n:,} neurons, every delay {args.delay_steps} spikelm steps "
          f"(Brian2/NEST {args.delay_steps - 1} x dt when mapped), {args.duration_ms:g} ms, dt {dt} ms")
    print(f"  {'simulator':<18}{'convention':<12}{'exc spikes':>12}{'inh spikes':>12}{'total':>10}"
          f"{'same as spikelm':>17}{'first difference':>18}")
    for label, conv, exc, inh, total, common, _only_peer, first in rows:
        same = "-" if label == "spikelm" else f"{common:,}"
        diff = "-" if label == "spikelm" else ("none" if first is None else f"{first:g} ms")
        print(f"  {label:<18}{conv:<12}{exc:>12,}{inh:>12,}{total:>10,}{same:>17}{diff:>18}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
