"""Checkpoints: the whole simulation state in one HDF5 file, to stop and resume exactly.

Saved: the step counter, every state variable, the synaptic weights, the event queue (ring
buffer and counters), SynOp counters, EI-IF window starts and the plasticity state (traces,
adapted thresholds). Random numbers are a pure function of (seed, step), so no generator
state is needed. A checkpoint records the network's fingerprint (populations, models,
sizes, projections) and refuses to load into a different network. Writing goes to
``<path>.partial`` and is renamed when complete, so a failed save never clobbers a good file.
"""
from __future__ import annotations

import json
import os

import h5py
import numpy as np

import spikelm
from spikelm.errors import CheckpointMismatchError, FileFormatError

FORMAT = "spikelm-checkpoint"


def save(sim, path) -> str:
    """Write the state of ``sim`` (a :class:`~spikelm.simulator.Simulator`) to ``path``."""
    path = str(path)
    tmp = path + ".partial"
    plan = sim.plan
    try:
        with h5py.File(tmp, "w") as f:
            g = f.create_group("checkpoint")
            g.attrs["format"] = FORMAT
            g.attrs["version"] = spikelm.__version__
            g.attrs["fingerprint"] = sim.network.fingerprint()
            g.attrs["t"] = int(sim.t)
            g.attrs["backend"] = sim.backend_name
            for name, arr in _arrays(sim).items():
                g.create_dataset(name, data=arr)
            g.create_dataset("window_start", data=np.array([p.window_start for p in plan.pops], dtype=np.int64))
            if sim.learn is not None and hasattr(sim.learn, "state_dict"):
                pg = g.create_group("plasticity")
                for k, v in sim.learn.state_dict().items():
                    pg.create_dataset(k, data=np.asarray(v))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def _arrays(sim):
    plan, q = sim.plan, sim.plan.queue
    return {"S": plan.S, "w": plan.w, "qbuf": q.buf, "qcount": q.count, "qtotals": q.totals,
            "synops": plan.synops}


def load(sim, path) -> None:
    """Restore ``sim`` from a checkpoint written for the same network."""
    path = str(path)
    if not os.path.isfile(path):
        raise FileFormatError(f"{path}: no such checkpoint file")
    if not h5py.is_hdf5(path):
        raise FileFormatError(f"{path}: not an HDF5 file; a checkpoint is written by spikelm.io.checkpoint.save")
    with h5py.File(path, "r") as f:
        g = f.get("checkpoint")
        if g is None or g.attrs.get("format") != FORMAT:
            raise FileFormatError(f"{path}: not a spikelm checkpoint (no /checkpoint group with format={FORMAT!r})")
        mine = json.loads(sim.network.fingerprint())
        theirs = json.loads(g.attrs["fingerprint"])
        if mine != theirs:
            raise CheckpointMismatchError(f"{path}: checkpoint of another network: {_difference(theirs, mine)}")
        arrays = _arrays(sim)
        for name, arr in arrays.items():
            if name not in g or g[name].shape != arr.shape:
                raise FileFormatError(f"{path}: checkpoint/{name}: missing or of shape "
                                      f"{g[name].shape if name in g else None}, expected {arr.shape}")
        for name, arr in arrays.items():
            arr[...] = g[name][...]
        for p, ws in zip(sim.plan.pops, g["window_start"][...]):
            p.window_start = int(ws)
        sim.plan.set_windows()
        sim.t = int(g.attrs["t"])
        if "plasticity" in g and sim.learn is not None and hasattr(sim.learn, "load_state_dict"):
            sim.learn.load_state_dict({k: g["plasticity"][k][...] for k in g["plasticity"]})


def _difference(theirs, mine):
    for key in ("dt_ms", "seed"):
        if theirs.get(key) != mine.get(key):
            return f"{key} is {theirs.get(key)} there, {mine.get(key)} here"
    for kind in ("populations", "projections"):
        a, b = theirs.get(kind, {}), mine.get(kind, {})
        for name in sorted(set(a) | set(b)):
            if a.get(name) != b.get(name):
                return f"{kind[:-1]} '{name}' is {a.get(name)} there, {b.get(name)} here"
    return "the stimuli differ"
