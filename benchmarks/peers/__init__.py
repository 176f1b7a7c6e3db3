"""Peer simulators (Brian2, NEST) for spikelm's benchmark, run in their own venv.

    from benchmarks.peers import run_peer
    r = run_peer("brian2", "cpp_standalone", "cuba", 10_000.0)   # dict, or None
    r = run_peer("nest", None, "brunel", 1_000.0)

The peers live in a separate virtual environment made by benchmarks/setup_peers.sh
(default <repo>/.venv-peers, or $SPIKELM_PEERS_VENV); each run is one subprocess that
builds the network, runs it and prints one JSON line, which run_peer parses and returns.
run_peer never raises for a missing or failing peer: it prints why and returns None.
This module imports neither brian2 nor nest and needs only the standard library.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

__all__ = ["PEERS", "NETS", "run_peer", "run_microcircuit", "peers_python", "available_peers"]

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

#: peer -> (script, devices it accepts; the first is the default)
PEERS = {
    "brian2": ("brian2_net.py", ("cpp_standalone", "cython", "numpy")),
    "nest": ("nest_net.py", ("nest",)),
}
NETS = ("cuba", "cuba40k", "izhikevich", "brunel")

_MODULE = {"brian2": "brian2", "nest": "nest"}


def peers_python() -> Path:
    """The peers venv's interpreter ($SPIKELM_PEERS_PYTHON, else $SPIKELM_PEERS_VENV/bin/python,
    else <repo>/.venv-peers/bin/python). It may not exist."""
    py = os.environ.get("SPIKELM_PEERS_PYTHON")
    if py:
        return Path(py)
    venv = Path(os.environ.get("SPIKELM_PEERS_VENV", REPO / ".venv-peers"))
    return venv / "bin" / "python"


def _say(msg: str) -> None:
    print(f"run_peer: {msg}", file=sys.stderr)


def available_peers(python: str | os.PathLike | None = None) -> dict[str, bool]:
    """Which peers import in the peers venv (one subprocess per peer)."""
    py = Path(python) if python else peers_python()
    out = {}
    for peer, mod in _MODULE.items():
        if not py.exists():
            out[peer] = False
            continue
        r = subprocess.run([str(py), "-c", f"import {mod}"], capture_output=True,
                           env=dict(os.environ, PYNEST_QUIET="1"), timeout=120)
        out[peer] = r.returncode == 0
    return out


def run_peer(
    peer: str,
    device: str | None,
    net: str,
    duration_ms: float,
    threads: int = 1,
    python: str | None = None,
    timeout: float = 900,
    seed: int = 1,
) -> dict | None:
    """Run one peer on one benchmark network in the peers venv; return its JSON result.

    peer: "brian2" or "nest". device: for brian2 "cpp_standalone" (None means that),
    "cython" or "numpy"; for nest None (or "nest"). net: "cuba", "cuba40k", "izhikevich"
    or "brunel". duration_ms: simulated time. threads: peer threads (1 for the benchmark).
    python: the interpreter to use (default: peers_python()). timeout: seconds.

    Returns the dict the script printed: peer, device, net, n_neurons, n_synapses,
    duration_ms, dt_ms, setup_s, loop_s, rate_hz {pop: Hz}, cv_isi, ... (see
    docs/benchmarks.md), or None, after printing the reason on stderr, when the venv or the
    peer is missing, the run fails or it times out.
    """
    if peer not in PEERS:
        _say(f"unknown peer {peer!r} (known: {', '.join(PEERS)})")
        return None
    if net not in NETS:
        _say(f"unknown net {net!r} (known: {', '.join(NETS)})")
        return None
    script, devices = PEERS[peer]
    if device is None:
        device = devices[0]
    if device not in devices:
        _say(f"{peer} has no device {device!r} (known: {', '.join(devices)})")
        return None
    py = Path(python) if python else peers_python()
    if not py.exists():
        _say(f"peers venv not found ({py}); run: bash benchmarks/setup_peers.sh")
        return None
    cmd = [str(py), str(HERE / script), "--net", net, "--duration-ms", repr(float(duration_ms)),
           "--threads", str(int(threads)), "--seed", str(int(seed))]
    if peer == "brian2":
        cmd += ["--device", device]
    return _run_script(cmd, f"{peer}/{device} {net}", peer, py, timeout)


#: peer -> its microcircuit script (the model comes from spikelm's scenario, as a JSON file)
MICROCIRCUIT = {"nest": "microcircuit_nest.py", "brian2": "microcircuit_brian2.py"}


def run_microcircuit(peer: str, params: str, spikes_out: str, duration_ms: float, presim_ms: float = 500.0,
                     threads: int = 1, seed: int = 1, device: str | None = None, python: str | None = None,
                     timeout: float = 7200) -> dict | None:
    """Run the microcircuit (``params``: the JSON model written by ``benchmarks.microcircuit``) on
    ``peer``; its spikes go to ``spikes_out`` (npz). Returns its JSON line, or None (reason on stderr)."""
    if peer not in MICROCIRCUIT:
        _say(f"no microcircuit for peer {peer!r} (known: {', '.join(MICROCIRCUIT)})")
        return None
    py = Path(python) if python else peers_python()
    if not py.exists():
        _say(f"peers venv not found ({py}); run: bash benchmarks/setup_peers.sh")
        return None
    cmd = [str(py), str(HERE / MICROCIRCUIT[peer]), "--params", str(params), "--spikes-out", str(spikes_out),
           "--duration-ms", repr(float(duration_ms)), "--presim-ms", repr(float(presim_ms)),
           "--threads", str(int(threads)), "--seed", str(int(seed))]
    if peer == "brian2" and device:
        cmd += ["--device", device]
    return _run_script(cmd, f"{peer} microcircuit", peer, py, timeout)


def _run_script(cmd, label, peer, py, timeout):
    env = dict(os.environ, PYNEST_QUIET="1")
    # the peers venv must not see spikelm's environment's packages
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONHOME", None)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                           cwd=str(REPO))
    except subprocess.TimeoutExpired:
        _say(f"{label}: timed out after {timeout:g} s")
        return None
    except OSError as e:
        _say(f"{label}: could not start {py}: {e}")
        return None
    if r.returncode != 0:
        tail = "\n".join(r.stderr.strip().splitlines()[-15:])
        if f"No module named '{_MODULE[peer]}'" in r.stderr:
            _say(f"{peer} is not installed in {py}; run: bash benchmarks/setup_peers.sh")
        else:
            _say(f"{label} failed (exit {r.returncode}):\n{tail}")
        return None
    for line in reversed(r.stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
    _say(f"{label}: no JSON line in its output:\n{r.stdout[-2000:]}")
    return None
