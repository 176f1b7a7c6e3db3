"""Checkpoints: the whole simulation state in one HDF5 file, to stop and resume exactly.

Saved: the step counter, every state variable, the synaptic weights, the event queue (ring
buffer and counters), SynOp counters, EI-IF window starts and the plasticity state (traces,
adapted thresholds). Random numbers are a pure function of (seed, step), so no generator
state is needed. A checkpoint records the network's fingerprint (populations, models,
sizes, projections) and refuses to load into a different network. Writing goes to
``<path>.partial`` and is renamed when complete, so a failed save never clobbers a good file.
"""
from __future__ import annotations

import contextlib
import json
import os

import h5py
import numpy as np

import spikelm
from spikelm.errors import CheckpointMismatchError, FileFormatError, SpikelmError

from .hdf5 import first_line as _first_line
from .hdf5 import open_hdf5
from .stored import MAX_CLOCK, stored_array, stored_int

FORMAT = "spikelm-checkpoint"
#: What a checkpoint reader expects, for messages.
EXPECTED = "a spikelm checkpoint (written by spikelm run --checkpoint)"


@contextlib.contextmanager
def written_atomically(path):
    """An HDF5 file to write ``path`` through: opened as ``<path>.partial``, renamed to ``path``
    when the block ends, removed if anything fails (so a good file is never clobbered)."""
    path = str(path)
    tmp = path + ".partial"
    try:
        with h5py.File(tmp, "w") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save(sim, path) -> str:
    """Write the state of ``sim`` (a :class:`~spikelm.simulator.Simulator`) to ``path``."""
    path = str(path)
    plan = sim.plan
    with written_atomically(path) as f:
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
    return path


def _arrays(sim):
    plan, q = sim.plan, sim.plan.queue
    return {"S": plan.S, "w": plan.w, "qbuf": q.buf, "qcount": q.count, "qtotals": q.totals,
            "synops": plan.synops}


def check_file(path) -> None:
    """Refuse at once a file that is not a readable spikelm checkpoint (before any network is built)."""
    with _open(str(path)):
        pass


@contextlib.contextmanager
def _open(path):
    """Open a checkpoint for reading; damaged content raises one FileFormatError line."""
    f = open_hdf5(path, EXPECTED)
    try:
        with f:
            g = f.get("checkpoint")
            if not isinstance(g, h5py.Group) or _attr(g, "format") != FORMAT:
                raise FileFormatError(f"{path}: not a spikelm checkpoint (no /checkpoint group with format={FORMAT!r})")
            yield g
    except SpikelmError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError) as err:
        raise FileFormatError(f"{path}: damaged checkpoint ({_first_line(err)})") from None


def json_object(text):
    """The dict a stored JSON text holds; None when it is not a str, not JSON (nesting too deep
    counts) or not an object. For attributes written by spikelm, which callers then refuse in
    their own words."""
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _attr(g, name):
    value = g.attrs.get(name)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value.item() if isinstance(value, np.generic) else value


def load(sim, path) -> None:
    """Restore ``sim`` from a checkpoint written for the same network.

    Everything is checked before anything is changed: the fingerprint, the step counter
    (an integer in [0, 2**62)), every array's shape, and the plasticity state, which must be
    there exactly when the network has rules (a checkpoint without it would resume with
    fresh traces and silently differ from the uninterrupted run).
    """
    path = str(path)
    with _open(path) as g:
        theirs = json_object(_attr(g, "fingerprint"))
        if theirs is None:
            raise FileFormatError(f"{path}: checkpoint/fingerprint: missing or not the JSON network summary")
        mine = json.loads(sim.network.fingerprint())
        if mine != theirs:
            raise CheckpointMismatchError(f"{path}: checkpoint of another network: {_difference(theirs, mine)}")
        t = stored_int(_attr(g, "t"), f"{path}: checkpoint/t (the step counter)", 0, MAX_CLOCK - 1)
        arrays = _arrays(sim)
        arrays["window_start"] = np.zeros(len(sim.plan.pops), dtype=np.int64)
        learn = sim.learn if sim.learn is not None and hasattr(sim.learn, "state_dict") else None
        wanted = learn.state_dict() if learn is not None else {}
        has = isinstance(g.get("plasticity"), h5py.Group)
        if bool(wanted) != has:
            raise CheckpointMismatchError(
                f"{path}: checkpoint/plasticity: {'missing' if wanted else 'present'}, but this network "
                f"{'has' if wanted else 'has no'} plasticity rules; resuming would not continue the same run")
        values = {name: _dataset(g, name, arr, path) for name, arr in arrays.items()}
        state = {k: _dataset(g["plasticity"], k, v, path, "checkpoint/plasticity") for k, v in wanted.items()}
        if has and sorted(g["plasticity"]) != sorted(wanted):
            extra = sorted(set(g["plasticity"]) - set(wanted))
            raise CheckpointMismatchError(f"{path}: checkpoint/plasticity: unexpected {', '.join(extra)}")
        if values["window_start"].min(initial=0) < 0 or values["window_start"].max(initial=0) > t:
            raise FileFormatError(f"{path}: checkpoint/window_start: outside [0, t = {t}]")
        for name in ("qcount", "qtotals", "synops"):     # counters: never negative
            stored_array(values[name], f"{path}: checkpoint/{name}", "int", lo=0)
        pushed, delivered = (int(x) for x in values["qtotals"])
        if pushed != delivered + int(values["qcount"].sum()):
            raise FileFormatError(f"{path}: checkpoint/qtotals: {pushed:,} events pushed, {delivered:,} delivered and "
                                  f"{int(values['qcount'].sum()):,} pending; expected pushed = delivered + pending")
    for name, arr in _arrays(sim).items():
        arr[...] = values[name]
    for p, ws in zip(sim.plan.pops, values["window_start"]):
        p.window_start = int(ws)
    sim.plan.set_windows()
    sim.t = t
    if learn is not None:
        learn.load_state_dict(state)


def _dataset(g, name, like, path, where="checkpoint"):
    """Read ``g[name]``, which must have ``like``'s shape and kind of dtype."""
    d = g.get(name)
    if not isinstance(d, h5py.Dataset) or d.shape != like.shape:
        raise FileFormatError(f"{path}: {where}/{name}: missing or of shape "
                              f"{getattr(d, 'shape', None)}, expected {like.shape}")
    kinds = "biu" if like.dtype.kind in "biu" else "biuf"
    if d.dtype.kind not in kinds:
        raise FileFormatError(f"{path}: {where}/{name}: dtype {d.dtype}, expected {like.dtype}")
    return d[()]


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
