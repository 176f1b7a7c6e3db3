"""Reading SONATA spike files: readers and validation (layout in :mod:`spikelm.io.sonata`).

Every reader validates first and reads inside :func:`_reading`, so a damaged or foreign
file raises one :class:`FileFormatError` line naming the file (and the object, where
known) instead of an h5py traceback. A file still being written (or left by a run that was
killed) is opened in HDF5 SWMR mode, so ``spikelm info run.h5.partial`` works during a run.
"""

from __future__ import annotations

import json
import os

import h5py
import numpy as np

from spikelm.errors import ConfigError, FileFormatError
from spikelm.simulator.spike_table import SpikeTable

from .hdf5 import first_line as _first_line
from .hdf5 import open_hdf5, reading
from .sonata_format import SORTING, _SORTING_STRINGS, _TIME_UNITS, _py

# ----------------------------------------------------------------------------------- reading


#: What a reader expects, for messages.
EXPECTED = "a SONATA spike file"


def _reading(path):
    """Turn what h5py or NumPy raise on damaged content into one FileFormatError line."""
    return reading(path, EXPECTED)


def _open_h5(path):
    """Open for reading; a file that a writer holds (or held when it was killed) opens with SWMR."""
    return open_hdf5(path, EXPECTED, live=True)


def _member(group, name, where, kind=None):
    """``group[name]`` or None; links outside the file, broken links and damage are refused."""
    try:
        link = group.get(name, getlink=True)
    except (KeyError, OSError, RuntimeError, ValueError, TypeError) as err:
        raise FileFormatError(f"{where}: damaged ({_first_line(err)})") from None
    if link is None:
        return None
    if isinstance(link, h5py.ExternalLink):
        raise FileFormatError(f"{where}: an external link to {link.filename}:{link.path}; spikelm reads only "
                              "objects stored in the file itself")
    try:
        obj = group[name]
    except (KeyError, OSError, RuntimeError, ValueError, TypeError, RecursionError) as err:
        raise FileFormatError(f"{where}: a broken or circular link ({_first_line(err)})") from None
    if kind is not None and not isinstance(obj, kind):
        raise FileFormatError(f"{where}: is a {'group' if isinstance(obj, h5py.Group) else 'dataset'}; "
                              f"expected a {'group' if kind is h5py.Group else 'dataset'}")
    return obj


def _names(group, where):
    try:
        return list(group.keys())
    except (KeyError, OSError, RuntimeError, ValueError) as err:
        raise FileFormatError(f"{where}: damaged group ({_first_line(err)})") from None


def validate(path):
    """Check that ``path`` is a readable SONATA spike file; raise FileFormatError if not.

    Checks: the file exists and is HDF5; ``/spikes`` is a group of population groups, each
    with 1-D ``timestamps`` (float) and ``node_ids`` (integer) of equal length, an optional
    ``values`` (integer, same length), a known ``sorting`` and time unit; ``/spikelm``, when
    present, has a positive ``dt``; every ``/report`` entry is a frame report or a weight
    snapshot series with consistent shapes; no object is a link to another file.
    """
    path = os.fspath(path)
    f = _open_h5(path)
    with f, _reading(path):
        _validate_open(f, path)


def _dataset(g, name, where, ndim=None, kinds=None, required=True):
    d = _member(g, name, where, h5py.Dataset)
    if d is None:
        if required:
            raise FileFormatError(f"{where}: dataset missing")
        return None
    if ndim is not None and d.ndim != ndim:
        raise FileFormatError(f"{where}: not a {ndim}-D dataset (shape {d.shape})")
    if kinds is not None and d.dtype.kind not in kinds:
        raise FileFormatError(f"{where}: dtype {d.dtype}; expected {'integers' if kinds == 'ui' else 'numbers'}")
    return d


def _live(f):
    """True for a file opened in SWMR mode: being written, or left by a writer that was killed.

    A SWMR reader sees each dataset as it was when it opened that dataset, so the datasets of
    one population can differ in length by what the writer appended in between; every entry
    below the shortest is final (the writer only appends), and readers read that prefix.
    """
    return bool(getattr(f, "swmr_mode", False))


def _validate_open(f, path):
    live = _live(f)
    spikes = _member(f, "spikes", f"{path}: /spikes", h5py.Group)
    if spikes is None:
        raise FileFormatError(f"{path}: /spikes: group missing; expected "
                              "/spikes/<population>/{timestamps,node_ids}")
    for name in _names(spikes, f"{path}: /spikes"):
        where = f"{path}: /spikes/{name}"
        g = _member(spikes, name, where)
        if not isinstance(g, h5py.Group):
            raise FileFormatError(f"{where}: is a dataset; expected a population group with "
                                  "timestamps and node_ids (the pre-population layout is not "
                                  "supported)")
        ts = _dataset(g, "timestamps", f"{where}/timestamps", 1, "f")
        ids = _dataset(g, "node_ids", f"{where}/node_ids", 1, "ui")
        if ts.shape != ids.shape and not live:
            raise FileFormatError(f"{where}: timestamps has {ts.shape[0]} entries, node_ids "
                                  f"{ids.shape[0]}; expected equal lengths")
        v = _dataset(g, "values", f"{where}/values", 1, "ui", required=False)
        if v is not None and v.shape != ts.shape and not live:
            raise FileFormatError(f"{where}/values: shape {v.shape}; expected int8/int16 of shape {ts.shape}")
        _sorting(g, where)
        _time_scale(ts, f"{where}/timestamps")
    meta = _member(f, "spikelm", f"{path}: /spikelm")
    if meta is not None:
        if not isinstance(meta, h5py.Group):
            raise FileFormatError(f"{path}: /spikelm: is a dataset; expected the run metadata group")
        dt = _py(meta.attrs.get("dt"))
        if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not np.isfinite(dt) or not dt > 0:
            raise FileFormatError(f"{path}: /spikelm: attribute dt is {dt!r}; expected a "
                                  "float > 0 (ms)")
    report = _member(f, "report", f"{path}: /report", h5py.Group)
    if report is not None:
        for name in _names(report, f"{path}: /report"):
            _validate_report(report, name, f"{path}: /report/{name}", live)


def _validate_report(report, name, where, live=False):
    g = _member(report, name, where)
    if not isinstance(g, h5py.Group):
        raise FileFormatError(f"{where}: is a dataset; expected a group")
    names = _names(g, where)
    if "data" in names:
        _validate_frames(g, where)
        for sub in names:
            obj = _member(g, sub, f"{where}/{sub}")
            if sub not in ("data", "mapping") and isinstance(obj, h5py.Group) and "data" in obj:
                _validate_frames(obj, f"{where}/{sub}")
    if "weights" in names:
        w = _dataset(g, "weights", f"{where}/weights", 2, "uif")
        steps = _dataset(g, "steps", f"{where}/steps", 1, "ui")
        if steps.shape != (w.shape[0],) and not live:
            raise FileFormatError(f"{where}: weights shape {w.shape}, steps shape {steps.shape}; expected "
                                  "[n_snapshots, n_synapses] and [n_snapshots]")
    if "data" not in names and "weights" not in names:
        raise FileFormatError(f"{where}: neither data nor weights; expected a frame report "
                              "(data, mapping) or weight snapshots (weights, steps)")


def _validate_frames(g, where):
    data = _dataset(g, "data", f"{where}/data", 2, "uif")
    m = _member(g, "mapping", f"{where}/mapping", h5py.Group)
    if m is None:
        raise FileFormatError(f"{where}/mapping: missing; expected a SONATA frame report")
    node_ids = _dataset(m, "node_ids", f"{where}/mapping/node_ids", 1, "ui")
    t = _dataset(m, "time", f"{where}/mapping/time", 1, "uif")
    if t.shape != (3,):
        raise FileFormatError(f"{where}/mapping/time: shape {t.shape}; expected [start, stop, dt]")
    start, stop, step = (float(x) for x in t[()])
    if not (np.isfinite(start) and np.isfinite(stop) and np.isfinite(step)) or not step > 0:
        raise FileFormatError(f"{where}/mapping/time: [{start}, {stop}, {step}]; expected finite [start, stop, dt] "
                              "with dt > 0")
    _time_scale(t, f"{where}/mapping/time")
    pointers = _pointers(m, f"{where}/mapping")
    if pointers is not None and (pointers.size != node_ids.shape[0] + 1
                                 or int(pointers[-1]) != data.shape[1]):
        raise FileFormatError(f"{where}/mapping/index_pointers: {pointers.size} entries ending "
                              f"at {pointers[-1] if pointers.size else None}; expected "
                              f"{node_ids.shape[0] + 1} ending at {data.shape[1]}")
    if pointers is None and node_ids.shape[0] != data.shape[1]:
        raise FileFormatError(f"{where}/mapping/node_ids: {node_ids.shape[0]} nodes for "
                              f"{data.shape[1]} data columns and no index_pointers")


def _pointers(m, where=""):
    for name in ("index_pointers", "index_pointer"):
        if name in m:
            d = _dataset(m, name, f"{where}/{name}", 1, "ui")
            p = d[()]
            if p.size and (p[0] != 0 or np.any(np.diff(p.astype(np.int64)) < 0)):
                raise FileFormatError(f"{where}/{name}: not increasing from 0")
            return p
    return None


def _sorting(g, where):
    """The declared sorting of a population group: enum (SONATA) or string (bmtk)."""
    for obj in (g, g.get("node_ids")):
        if obj is None or "sorting" not in obj.attrs:
            continue
        raw = obj.attrs["sorting"]
        enum = h5py.check_enum_dtype(obj.attrs.get_id("sorting").dtype)
        if enum is not None:
            names = {v: k for k, v in enum.items()}
            if np.ndim(raw) == 0 and int(raw) in names and names[int(raw)] in SORTING:
                return names[int(raw)]
        else:
            raw = _py(raw)
            if isinstance(raw, str) and raw in _SORTING_STRINGS:
                return _SORTING_STRINGS[raw]
            if isinstance(raw, int) and raw in SORTING.values():
                return {v: k for k, v in SORTING.items()}[raw]
        raise FileFormatError(f"{where}: attribute sorting is {_py(raw)!r}; expected the enum "
                              "{none, by_id, by_time} or one of those strings")
    return "none"


def _time_scale(ts, where):
    units = _py(ts.attrs.get("units", "ms"))
    if not isinstance(units, str) or units not in _TIME_UNITS:
        raise FileFormatError(f"{where}: attribute units is {units!r}; expected "
                              f"{sorted(_TIME_UNITS)}")
    return _TIME_UNITS[units]


def _open(path):
    """Validate, then open for reading: every reader starts here (and reads inside ``_reading``)."""
    path = os.fspath(path)
    validate(path)
    return path, _open_h5(path)


def read_spikes(path):
    """Read every population of a SONATA spike file.

    Returns
    -------
    dict[str, SpikeTable]
        Population name -> its spikes (timestamps in ms), in the file's population order.
    """
    path, f = _open(path)
    with f, _reading(path):
        return _spikes(f, _metadata(f, path), path)


def _spikes(f, meta, path=""):
    sizes = meta.get("populations", {})
    out = {}
    for name in f["spikes"].keys():
        g = f["spikes"][name]
        where = f"{path}: /spikes/{name}"
        scale = _time_scale(g["timestamps"], where)
        n = min(g[k].shape[0] for k in ("timestamps", "node_ids", "values") if k in g)   # see _live
        ts = g["timestamps"][:n].astype(np.float64)
        if ts.size and not np.all(np.isfinite(ts)):
            raise FileFormatError(f"{where}/timestamps: NaN or infinite times; expected finite times")
        if scale != 1.0:
            ts = ts * scale
        ids = g["node_ids"][:n]
        if ids.size and ids.dtype.kind == "i" and ids.min() < 0:
            raise FileFormatError(f"{where}/node_ids: negative node id {ids.min()}; expected ids >= 0")
        size = sizes.get(name)
        if size is not None and ids.size and int(ids.max()) >= size:
            raise FileFormatError(f"{where}/node_ids: node id {int(ids.max())} beyond the population's {size} "
                                  "neurons (/spikelm populations)")
        out[name] = SpikeTable(
            timestamps=ts,
            node_ids=ids.astype(np.uint64),
            values=g["values"][:n] if "values" in g else None,
            sorting=_sorting(g, name),
            dt=meta.get("dt"),
            n_nodes=size,
            time_unit="step" if _py(g["timestamps"].attrs.get("units", "ms")) == "step" else "ms",
        )
    return out


def read_metadata(path):
    """Read the run metadata of a spikelm file (``{}`` for files of other SONATA tools).

    Returns what was passed as ``metadata``/``extra_metadata`` (tuples come back as lists,
    ``synops`` as a dict) plus ``dt``, ``time_unit`` ("ms" or "step"), ``version``,
    ``populations``, ``signed``, ``complete`` (False in a ``.partial`` file) and ``format``.
    """
    path, f = _open(path)
    with f, _reading(path):
        return _metadata(f, path)


#: Types of the metadata keys that readers use: checked so a damaged file fails on reading.
_META_TYPES = {"populations": "counts", "not_recorded": "counts", "synops_by_layer": "counts",
               "macs_by_layer": "counts", "signed": dict, "steps": "count", "start_step": "count",
               "tokens": list, "complete": bool, "time_unit": str}


def _metadata(f, path=""):
    if "spikelm" not in f:
        return {}
    meta = f["spikelm"]
    out = {key: _py(value) for key, value in meta.attrs.items()}
    where = f"{path}: /spikelm"
    for sub in ("text", "json", "arrays"):
        g = _member(meta, sub, f"{where}/{sub}", h5py.Group)
        for k in (_names(g, f"{where}/{sub}") if g is not None else ()):
            d = _member(g, k, f"{where}/{sub}/{k}", h5py.Dataset)
            value = _py(d[()])
            if sub == "json":
                try:
                    value = json.loads(value)
                except (TypeError, ValueError):
                    raise FileFormatError(f"{where}/json/{k}: not JSON text") from None
            elif sub == "text" and not isinstance(value, str):
                raise FileFormatError(f"{where}/text/{k}: not a string")
            out[k] = value
    syn = _member(meta, "synops", f"{where}/synops", h5py.Group)
    if syn is not None:
        names = _dataset(syn, "names", f"{where}/synops/names", 1)
        counts = _dataset(syn, "counts", f"{where}/synops/counts", 1, "ui")
        if names.shape != counts.shape:
            raise FileFormatError(f"{where}/synops: {names.shape[0]} names for {counts.shape[0]} counts")
        out["synops"] = {str(_py(n)): int(c) for n, c in zip(names[()], counts[()])}
    out.setdefault("time_unit", "ms")   # files written before the attribute existed
    for key, kind in _META_TYPES.items():
        if key in out and not _meta_ok(out[key], kind):
            raise FileFormatError(f"{where}: {key} is {out[key]!r:.80}; expected "
                                  f"{_META_WORDS.get(kind, getattr(kind, '__name__', kind))}")
    return out


_META_WORDS = {"counts": "a table name -> integer count >= 0", "count": "an integer >= 0"}


def _meta_ok(value, kind):
    count = lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0
    if kind == "counts":
        return isinstance(value, dict) and all(isinstance(k, str) and count(v) for k, v in value.items())
    if kind == "count":
        return count(value)
    return isinstance(value, kind)


def _state_group(f, path, population, variable):
    report = f.get("report")
    if report is None or population not in report or "data" not in report[population]:
        have = sorted(k for k, g in (report or {}).items() if "data" in g)
        raise ConfigError(f"{path}: /report/{population}: no state report; "
                          f"available: {have}")
    base = report[population]
    variables = {_py(base["data"].attrs.get("variable", "")): base}
    variables.update({k: g for k, g in base.items()
                      if isinstance(g, h5py.Group) and k != "mapping" and "data" in g})
    if variable is None:
        return base
    if variable not in variables:
        raise ConfigError(f"{path}: /report/{population}: variable {variable!r} not recorded; "
                          f"available: {sorted(str(v) for v in variables if v)}")
    return variables[variable]


def read_state(path, population, variable=None):
    """Read a state report.

    Parameters
    ----------
    population : str
    variable : str, optional
        Default: the population's first recorded variable (``/report/<population>/data``).

    Returns
    -------
    node_ids : ndarray of uint64
        One per data column (a node with several elements is repeated).
    times : ndarray of float64
        Frame times in ms: ``start + i * dt`` from ``mapping/time``.
    data : ndarray [n_times, n_columns]
    """
    path, f = _open(path)
    with f, _reading(path):
        g = _state_group(f, path, population, variable)
        data = g["data"][()]
        m = g["mapping"]
        ids = m["node_ids"][()].astype(np.uint64)
        pointers = _pointers(m)
        if pointers is not None:
            ids = np.repeat(ids, np.diff(pointers.astype(np.int64)))
        start, _, step_dt = (float(x) for x in m["time"][()])
        scale = _time_scale(m["time"], f"/report/{population}/mapping/time")
        times = (start + np.arange(data.shape[0]) * step_dt) * scale
    return ids, times, data


def read_weights(path, projection):
    """Read the weight snapshots of one projection.

    Returns
    -------
    steps : ndarray of int64
        The step of each snapshot.
    snapshots : ndarray [n_snapshots, n_synapses]
    """
    path, f = _open(path)
    with f, _reading(path):
        report = f.get("report")
        if report is None or projection not in report or "weights" not in report[projection]:
            have = sorted(k for k, g in (report or {}).items() if "weights" in g)
            raise ConfigError(f"{path}: /report/{projection}/weights: not recorded; "
                              f"available: {have}")
        g = report[projection]
        n = min(g["steps"].shape[0], g["weights"].shape[0])     # equal, unless the file is live
        return g["steps"][:n].astype(np.int64), g["weights"][:n]
