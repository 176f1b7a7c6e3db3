"""Reading SONATA spike files: readers, validation and the run summary (layout in :mod:`spikelm.io.sonata`)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import h5py
import numpy as np

from spikelm.errors import ConfigError, FileFormatError
from .sonata_format import SORTING, _SORTING_STRINGS, _TIME_UNITS, _py

# ----------------------------------------------------------------------------------- reading


@dataclass(eq=False)
class SpikeTable:
    """The spikes of one population, in file order.

    Attributes
    ----------
    timestamps : ndarray of float64
        Spike times in ms.
    node_ids : ndarray of uint64
    values : ndarray of int8/int16, or None
        Spike values of signed populations; None when the file has none.
    sorting : str
        ``"none"``, ``"by_id"`` or ``"by_time"``, as the file declares.
    dt : float or None
        Step width (ms) from the file's ``/spikelm`` metadata; None for other tools' files.
    n_nodes : int or None
        Neuron count from the metadata; None when unknown.
    time_unit : str
        ``"ms"`` (timestamps in ms), or ``"step"`` for converted LMs, whose timestamps are
        step indices (a step there is a round of spike propagation, not a duration).
    """

    timestamps: np.ndarray
    node_ids: np.ndarray
    values: np.ndarray | None = None
    sorting: str = "none"
    dt: float | None = None
    n_nodes: int | None = None
    time_unit: str = "ms"

    def __len__(self):
        return self.timestamps.size

    def steps(self, dt=None):
        """Step of each spike: ``round(timestamp / dt)`` as int64 (dt defaults to the file's)."""
        dt = self.dt if dt is None else dt
        if dt is None or not dt > 0:
            raise ConfigError(f"SpikeTable.steps: dt: got {dt!r}; allowed: a float > 0 (ms); "
                              "this file records none, so pass it")
        return np.rint(self.timestamps / dt).astype(np.int64)


def validate(path):
    """Check that ``path`` is a readable SONATA spike file; raise FileFormatError if not.

    Checks: the file exists and is HDF5; ``/spikes`` is a group of population groups, each
    with 1-D ``timestamps`` (float) and ``node_ids`` (integer) of equal length, an optional
    ``values`` (integer, same length), a known ``sorting`` and time unit; ``/spikelm``, when
    present, has a positive ``dt``; every ``/report`` entry is a frame report or a weight
    snapshot series with consistent shapes.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileFormatError(f"{path}: not a file (it does not exist)")
    if not os.path.isfile(path):
        raise FileFormatError(f"{path}: not a file (it is a directory or special file)")
    if not h5py.is_hdf5(path):
        raise FileFormatError(f"{path}: not an HDF5 file (no HDF5 signature); expected a "
                              "SONATA spike file")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        reason = " ".join(str(err).split())
        raise FileFormatError(f"{path}: unreadable HDF5 file ({reason}); expected a complete "
                              "SONATA spike file") from None
    with f:
        _validate_open(f, path)


def _validate_open(f, path):
    if "spikes" not in f:
        raise FileFormatError(f"{path}: /spikes: group missing; expected "
                              "/spikes/<population>/{timestamps,node_ids}")
    spikes = f["spikes"]
    if not isinstance(spikes, h5py.Group):
        raise FileFormatError(f"{path}: /spikes: is a dataset; expected a group")
    for name, g in spikes.items():
        where = f"{path}: /spikes/{name}"
        if not isinstance(g, h5py.Group):
            raise FileFormatError(f"{where}: is a dataset; expected a population group with "
                                  "timestamps and node_ids (the pre-population layout is not "
                                  "supported)")
        for field in ("timestamps", "node_ids"):
            if field not in g:
                raise FileFormatError(f"{where}/{field}: dataset missing; expected timestamps "
                                      "(float64, ms) and node_ids (uint64)")
            if not isinstance(g[field], h5py.Dataset) or g[field].ndim != 1:
                raise FileFormatError(f"{where}/{field}: not a 1-D dataset")
        ts, ids = g["timestamps"], g["node_ids"]
        if ts.dtype.kind != "f":
            raise FileFormatError(f"{where}/timestamps: dtype {ts.dtype}; expected float64")
        if ids.dtype.kind not in "ui":
            raise FileFormatError(f"{where}/node_ids: dtype {ids.dtype}; expected uint64")
        if ts.shape != ids.shape:
            raise FileFormatError(f"{where}: timestamps has {ts.shape[0]} entries, node_ids "
                                  f"{ids.shape[0]}; expected equal lengths")
        if "values" in g:
            v = g["values"]
            if not isinstance(v, h5py.Dataset) or v.dtype.kind not in "ui" \
                    or v.shape != ts.shape:
                raise FileFormatError(f"{where}/values: dtype {getattr(v, 'dtype', None)}, "
                                      f"shape {getattr(v, 'shape', None)}; expected int8/int16 "
                                      f"of shape {ts.shape}")
        _sorting(g, where)
        _time_scale(ts, f"{where}/timestamps")
    if "spikelm" in f:
        meta = f["spikelm"]
        dt = meta.attrs.get("dt") if isinstance(meta, h5py.Group) else None
        if dt is None or not np.isscalar(dt) or not float(dt) > 0:
            raise FileFormatError(f"{path}: /spikelm: attribute dt is {dt!r}; expected a "
                                  "float > 0 (ms)")
    if "report" in f:
        for name, g in f["report"].items():
            _validate_report(g, f"{path}: /report/{name}")


def _validate_report(g, where):
    if not isinstance(g, h5py.Group):
        raise FileFormatError(f"{where}: is a dataset; expected a group")
    if "data" in g:
        _validate_frames(g, where)
        for name, sub in g.items():
            if name not in ("data", "mapping") and isinstance(sub, h5py.Group):
                _validate_frames(sub, f"{where}/{name}")
    if "weights" in g:
        w, steps = g["weights"], g.get("steps")
        if w.ndim != 2 or steps is None or steps.shape != (w.shape[0],):
            raise FileFormatError(f"{where}: weights shape {w.shape}, steps shape "
                                  f"{getattr(steps, 'shape', None)}; expected "
                                  "[n_snapshots, n_synapses] and [n_snapshots]")
    if "data" not in g and "weights" not in g:
        raise FileFormatError(f"{where}: neither data nor weights; expected a frame report "
                              "(data, mapping) or weight snapshots (weights, steps)")


def _validate_frames(g, where):
    if "data" not in g or "mapping" not in g:
        raise FileFormatError(f"{where}: data or mapping missing; expected a SONATA frame "
                              "report")
    data, m = g["data"], g["mapping"]
    if data.ndim != 2:
        raise FileFormatError(f"{where}/data: shape {data.shape}; expected [n_times, n_values]")
    for field in ("node_ids", "time"):
        if field not in m:
            raise FileFormatError(f"{where}/mapping/{field}: missing")
    if m["time"].shape != (3,):
        raise FileFormatError(f"{where}/mapping/time: shape {m['time'].shape}; expected "
                              "[start, stop, dt]")
    pointers = _pointers(m)
    if pointers is not None and (pointers.size != m["node_ids"].shape[0] + 1
                                 or int(pointers[-1]) != data.shape[1]):
        raise FileFormatError(f"{where}/mapping/index_pointers: {pointers.size} entries ending "
                              f"at {pointers[-1] if pointers.size else None}; expected "
                              f"{m['node_ids'].shape[0] + 1} ending at {data.shape[1]}")
    if pointers is None and m["node_ids"].shape[0] != data.shape[1]:
        raise FileFormatError(f"{where}/mapping/node_ids: {m['node_ids'].shape[0]} nodes for "
                              f"{data.shape[1]} data columns and no index_pointers")


def _pointers(m):
    for name in ("index_pointers", "index_pointer"):
        if name in m:
            return m[name][()]
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
            if int(raw) in names and names[int(raw)] in SORTING:
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
    if units not in _TIME_UNITS:
        raise FileFormatError(f"{where}: attribute units is {units!r}; expected "
                              f"{sorted(_TIME_UNITS)}")
    return _TIME_UNITS[units]


def _open(path):
    """Validate, then open for reading: every reader starts here."""
    path = os.fspath(path)
    validate(path)
    return path, h5py.File(path, "r")


def read_spikes(path):
    """Read every population of a SONATA spike file.

    Returns
    -------
    dict[str, SpikeTable]
        Population name -> its spikes (timestamps in ms), in the file's population order.
    """
    path, f = _open(path)
    with f:
        return _spikes(f, _metadata(f))


def _spikes(f, meta):
    sizes = meta.get("populations", {})
    out = {}
    for name, g in f["spikes"].items():
        scale = _time_scale(g["timestamps"], name)
        ts = g["timestamps"][()].astype(np.float64)
        if scale != 1.0:
            ts = ts * scale
        out[name] = SpikeTable(
            timestamps=ts,
            node_ids=g["node_ids"][()].astype(np.uint64),
            values=g["values"][()] if "values" in g else None,
            sorting=_sorting(g, name),
            dt=meta.get("dt"),
            n_nodes=sizes.get(name),
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
    with f:
        return _metadata(f)


def _metadata(f):
    if "spikelm" not in f:
        return {}
    meta = f["spikelm"]
    out = {key: _py(value) for key, value in meta.attrs.items()}
    if "text" in meta:
        out.update({k: _py(d[()]) for k, d in meta["text"].items()})
    if "json" in meta:
        out.update({k: json.loads(_py(d[()])) for k, d in meta["json"].items()})
    if "arrays" in meta:
        out.update({k: d[()] for k, d in meta["arrays"].items()})
    if "synops" in meta:
        names = [_py(n) for n in meta["synops"]["names"][()]]
        counts = meta["synops"]["counts"][()]
        out["synops"] = {n: int(c) for n, c in zip(names, counts)}
    out.setdefault("time_unit", "ms")   # files written before the attribute existed
    return out


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
                          f"available: {sorted(v for v in variables if v)}")
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
    with f:
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
    with f:
        report = f.get("report")
        if report is None or projection not in report or "weights" not in report[projection]:
            have = sorted(k for k, g in (report or {}).items() if "weights" in g)
            raise ConfigError(f"{path}: /report/{projection}/weights: not recorded; "
                              f"available: {have}")
        g = report[projection]
        return g["steps"][()].astype(np.int64), g["weights"][()]


# ----------------------------------------------------------------------------------- summary


def span(meta):
    """The steps a run file covers: ``(first_step, n_steps)`` from its metadata, or None.

    ``start_step`` is where a resumed run began (0 otherwise); ``steps`` is how many steps
    this file's run advanced, so spikes lie in ``[first_step, first_step + n_steps)``.
    """
    steps = meta.get("steps")
    if not isinstance(steps, int) or isinstance(steps, bool):
        return None
    start = meta.get("start_step", 0)
    return (start if isinstance(start, int) and not isinstance(start, bool) else 0), steps


def rate_label(time_unit):
    """Column title of a population rate: Hz, or spikes per neuron per 1,000 steps."""
    return "rate (Hz)" if time_unit == "ms" else "per 1k steps"


def rate_of(n_spikes, n_neurons, length):
    """Spikes per neuron per second (ms files) or per 1,000 steps (step files); ``length`` in ms or steps."""
    if not n_neurons or not length:
        return 0.0
    return n_spikes / n_neurons / (length / 1000.0)


def summary(path):
    """The text ``spikelm info FILE.h5`` prints: populations, rates, SynOps and run facts.

    Rates and SynOps cover the steps of this file's run: a resumed run's file starts at its
    ``start_step``, and its rates are those the run printed.
    """
    path, f = _open(path)
    with f:
        meta = _metadata(f)
        spikes = _spikes(f, meta)
        reports = _report_lines(f)
    lines = [f"file: {path}"]
    dt = meta.get("dt")
    unit = meta.get("time_unit", "ms")
    if any(t.time_unit == "step" for t in spikes.values()):
        unit = "step"
    covered = span(meta)
    length = None
    if meta:
        state = "complete" if meta.get("complete") else "incomplete (run did not finish)"
        lines.append(f"written by: spikelm {meta.get('version', '?')}, {state}")
        if unit == "step":
            lines.append("time unit: step (timestamps count rounds of spike propagation, not milliseconds)")
            run = []
        else:
            run = [f"dt: {dt:g} ms"]
        if meta.get("converted_lm"):
            tokens = meta.get("tokens")
            lines.append(f"converted LM: {meta.get('model', '?')}, {meta.get('bits', '?')}-bit activations"
                         + (f", {len(tokens)} tokens" if isinstance(tokens, list) else ""))
        if covered is not None:
            first, n = covered
            length = n * dt if unit == "ms" else n
            text = f"steps: {n}" + (f" ({length:g} ms)" if unit == "ms" else "")
            if first:
                text += f", from step {first} (resumed" + (
                    f": {first * dt:g} .. {(first + n) * dt:g} ms)" if unit == "ms" else ")")
            run.append(text)
        else:
            run.append("steps: not recorded")
        run.append(f"backend: {meta.get('backend', 'not recorded')}")
        if not meta.get("converted_lm"):   # a converted LM draws no random numbers
            run.append(f"seed: {meta.get('seed', 'not recorded')}")
        lines.append("   ".join(run))
    else:
        lines.append("written by: another SONATA tool (no /spikelm group: dt, steps, seed, "
                     "backend and neuron counts unknown; rates use the spiking neurons and "
                     "0 .. last spike)")
    lines.append("populations:")
    where_col = "time span (ms)" if unit == "ms" else "step span"
    lines.append(f"  {'name':<16}{'neurons':>9}{'spikes':>12}{rate_label(unit):>13}   {where_col}")
    for name, table in spikes.items():
        n = table.n_nodes
        label = str(n) if n is not None else f"{np.unique(table.node_ids).size} active"
        n_rate = n if n is not None else np.unique(table.node_ids).size
        t_len = length if length is not None else (
            float(table.timestamps.max()) + (dt or 0) if len(table) else 0.0)
        rate = rate_of(len(table), n_rate, t_len)
        where = (f"{table.timestamps.min():g} .. {table.timestamps.max():g}" if len(table)
                 else "no spikes")
        signed = ""
        if table.values is not None and len(table):
            signed = f"   (+: {int((table.values > 0).sum())}, -: {int((table.values < 0).sum())})"
        lines.append(f"  {name:<16}{label:>9}{len(table):>12}{rate:>13.3f}   {where}{signed}")
    for name, n in (meta.get("not_recorded") or {}).items():
        lines.append(f"  {name:<16}{n:>9}{'not recorded':>12}")
    synops = meta.get("synops")
    by_layer = meta.get("synops_by_layer")
    if isinstance(by_layer, dict) and by_layer:     # a converted LM: per layer, against dense MACs
        macs = meta.get("macs_by_layer") or {}
        lines.append("SynOps per layer:")
        lines.append(f"  {'layer':<16}{'SynOps':>16}{'dense MACs':>16}")
        for name, count in by_layer.items():
            lines.append(f"  {name:<16}{count:>16,}{macs.get(name, 0):>16,}")
    elif synops:
        lines.append("SynOps per projection" + (" (this file's steps)" if covered and covered[0] else "") + ":")
        for name, count in synops.items():
            lines.append(f"  {name:<28}{count:>16,}")
        lines.append(f"  {'total':<28}{sum(synops.values()):>16,}")
    elif meta:
        lines.append("SynOps: not recorded")
    lines.extend(reports)
    return "\n".join(lines)


def _report_lines(f):
    lines = []
    for name, g in f.get("report", {}).items():
        frames = [g] if "data" in g else []
        frames += [s for k, s in g.items() if isinstance(s, h5py.Group) and "data" in s]
        for s in frames:
            var = _py(s["data"].attrs.get("variable", "")) or "?"
            units = _py(s["data"].attrs.get("units", ""))
            shape = s["data"].shape
            lines.append(f"state {name}/{var}: {shape[1]} nodes x {shape[0]} frames"
                         + (f" ({units})" if units else ""))
        if "weights" in g:
            shape = g["weights"].shape
            lines.append(f"weights {name}: {shape[0]} snapshots x {shape[1]} synapses")
    return lines
