"""``spikelm repair FILE``: make a run file that a killed run left readable by every HDF5 tool.

A run writes ``<out>.partial`` in HDF5 SWMR mode and flushes it after every chunk (a token of
a converted LM), so after a kill -9 it holds everything up to the last flush. But the file
stays marked "open for writing": spikelm's readers open it in SWMR mode, while plain h5py,
libsonata and HDFView refuse it ("file is already open for write"). And the datasets of one
population can differ in length by what the writer appended between two of them.

:func:`repair` copies the readable prefix into a fresh file (every object, raw chunks, no
recompression), cuts each population's spike datasets, each weight series and each state
report to the entries they all hold, records ``repaired = True`` in ``/spikelm`` (the run
stays ``complete = False``), and moves the copy into place. The original is replaced only when
the copy is complete.
"""
from __future__ import annotations

import os

import h5py
import numpy as np

from .hdf5 import open_hdf5, reading
from .outputs import atomic_output
from .sonata_format import LIBVER

__all__ = ["repair"]

EXPECTED = "a SONATA spike file"


def repair(path, out=None) -> dict:
    """Write a plain, consistent copy of the run file ``path`` to ``out`` (default: ``path`` itself).

    Run it only on a file no process writes any more (a killed run's ``.partial``); a file a
    run still writes keeps growing under the copy.

    Returns
    -------
    dict
        ``{"path": out, "was_open": bool, "cut": {dataset: entries dropped}}``: whether the file
        was marked open for writing, and the entries dropped to make datasets agree.
    """
    from .sonata_read import validate

    path = os.fspath(path)
    out = path if out is None else os.fspath(out)
    validate(path)      # damage is refused here, in one line, before anything is written
    was_open = _marked_open(path)
    cut = {}
    src = open_hdf5(path, EXPECTED, live=True)
    with atomic_output(out) as tmp, src, reading(path, EXPECTED):
        with h5py.File(tmp, "w", libver=LIBVER) as dst:
            for key in src.attrs:
                dst.attrs.create(key, src.attrs[key], dtype=src.attrs.get_id(key).dtype)
            for name in src:
                src.copy(src[name], dst, name=name)
            _cut_to_common_length(dst, cut)
            if "spikelm" in dst:
                dst["spikelm"].attrs["repaired"] = True
    return {"path": out, "was_open": was_open, "cut": cut}


def _marked_open(path) -> bool:
    try:
        with h5py.File(path, "r"):
            return False
    except OSError as e:
        return "open for write" in str(e)


def _cut(datasets, cut):
    """Resize 1-D-along-axis-0 datasets to the shortest of them; note what was dropped."""
    n = min(d.shape[0] for d in datasets)
    for d in datasets:
        if d.shape[0] > n:
            cut[d.name] = d.shape[0] - n
            d.resize(n, axis=0)
    return n


def _cut_to_common_length(f, cut):
    for g in (f["spikes"].values() if isinstance(f.get("spikes"), h5py.Group) else ()):
        if isinstance(g, h5py.Group):
            _cut([g[k] for k in ("timestamps", "node_ids", "values") if isinstance(g.get(k), h5py.Dataset)], cut)
    report = f.get("report")
    if not isinstance(report, h5py.Group):
        return
    for g in report.values():
        if not isinstance(g, h5py.Group):
            continue
        if "weights" in g:
            _cut([g[k] for k in ("weights", "steps", "times") if isinstance(g.get(k), h5py.Dataset)], cut)
        frames = [g] + [s for k, s in g.items() if k != "mapping" and isinstance(s, h5py.Group) and "data" in s]
        for r in frames:
            if "data" in r:
                _cut_frames(r, cut)


def _cut_frames(g, cut):
    """A state report's rows and its ``mapping/time`` = [start, stop, dt] must agree."""
    data, t = g["data"], g["mapping"]["time"]
    start, stop, step = (float(x) for x in t[()])
    rows = int(round((stop - start) / step)) if step > 0 else data.shape[0]
    n = min(rows, data.shape[0])
    if data.shape[0] > n:
        cut[data.name] = data.shape[0] - n
        data.resize(n, axis=0)
    if rows != n:
        t[...] = np.array([start, start + n * step, step])
