"""Writing SONATA spike files: :class:`SpikeWriter` (layout in :mod:`spikelm.io.sonata`)."""

from __future__ import annotations

import os
import time

import h5py
import numpy as np

from spikelm import __version__
from spikelm.errors import ConfigError
from .sonata_format import FORMAT, LIBVER, SONATA_MAGIC, SONATA_VERSION, SORTING, SORTING_DTYPE, _RESERVED_VARIABLES
from .sonata_args import _check_name, _int_array, _signed_map, _sizes
from .sonata_meta import check_metadata, write_meta_value

# ----------------------------------------------------------------------------------- writing


#: Filters of the spike datasets, by the name ``compress`` takes. Measured on the main job's
#: output (``lm generate --prompt "Return the " --tokens 32``, 6.9 M spikes; the table and the
#: script are in docs/files.md and benchmarks/sonata_layouts.py): none 134 MB, scaleoffset
#: 16.5 MB, deflate 4.0 MB. libsonata's PyPI wheel carries an HDF5 with shuffle, fletcher32,
#: nbit and scaleoffset but without deflate, so only "none" and "scaleoffset" files open there;
#: h5py, bmtk and HDFView read all three.
#:
#: scaleoffset stores each chunk's minimum and the values minus it in as few bits as their
#: range needs: lossless for integers, and for float timestamps when they are whole numbers
#: (``D = 0``), which holds when dt is a whole number (converted LMs: dt = 1 step). With any
#: other dt the timestamps are stored plain, so they stay exactly step * dt.
COMPRESSION = {
    "none": {},
    "scaleoffset": {"scaleoffset": 0},
    "deflate": {"compression": "gzip", "compression_opts": 1, "shuffle": True},
}
#: HDF5 chunk length (spikes) of scaleoffset datasets: a chunk's range sets its bits, and short
#: chunks span few steps and few neurons (1,024: 16.5 MB above, 65,536: 29.5 MB).
SCALEOFFSET_CHUNK = 1024
#: What a timestamp counts: ms (a simulation in time) or step (a converted LM, whose steps are
#: rounds of spike propagation, not a duration).
TIME_UNITS = ("ms", "step")


class SpikeWriter:
    """Write spikes, sampled state and weight snapshots of one run to a SONATA HDF5 file.

    The file is crash-safe and readable while it grows: ``flush()`` (the simulator calls it
    after every chunk of steps, ``spikelm lm generate`` after every token) writes what was
    appended and switches the file to HDF5 single-writer/multiple-reader (SWMR) mode, in
    which the file on disk is consistent at every moment. A reader opens it with
    ``h5py.File(path, "r", swmr=True)`` (spikelm's readers do that by themselves), and after
    a kill -9 the ``.partial`` file holds everything up to the last flush. Adding a new
    dataset (a state report or weight series that starts late) briefly leaves SWMR mode.

    Parameters
    ----------
    path : str or os.PathLike
        Final file name. During the run the file is ``<path>.partial``; ``finish`` renames it.
    populations : dict[str, int]
        Population name -> number of neurons (node ids are 0 .. n-1) of the populations whose
        spikes are written (may be empty: a run that records only state).
    dt : float
        Step width in ms; a spike at step ``s`` gets timestamp ``s * dt``.
    metadata : dict, optional
        Run metadata stored under ``/spikelm`` at once (so a ``.partial`` file describes its run):
        ``seed``, ``backend``, ``scenario``, ``network``, ``steps``, ``synops``
        (dict projection -> SynOp count), or anything else that is a bool, int, float, str,
        NumPy array, or JSON-serialisable list/dict/None.
    signed : bool or dict[str, bool | int]
        Populations whose spikes carry a value (+1/-1 or a signed power of two): they get a
        ``values`` dataset, int8 at first and widened to int16 by the first value beyond
        int8 (which closes and reopens the file). An int instead of True is the largest
        |value| the population will carry: above 127 its dataset is int16 from the start, so
        a reader of the live file never meets the file closed for a widening.
    chunk : int
        Spikes buffered per population before the writer flushes by itself (a bound on
        memory); also the HDF5 chunk length. A hard crash loses what was appended since the
        last flush: at most ``chunk`` spikes per population, or less when ``flush()`` is
        called more often.
    compress : {"none", "scaleoffset", "deflate"} or bool
        Filter of the spike datasets (see :data:`COMPRESSION`): "scaleoffset" is lossless and
        readable by libsonata; "deflate" is smallest but libsonata's PyPI build cannot read
        it. ``True`` means "deflate" and ``False`` "none" (the older bool form).
    time_unit : {"ms", "step"}
        What timestamps count. "step" is for converted LMs: ``dt`` is then 1 (step), the
        timestamps are step indices and carry ``units = "step"``, which SONATA readers pass
        through (libsonata's ``time_units``).
    state_populations : dict[str, int], optional
        Neuron counts of further populations whose state (not spikes) is written with
        ``add_state``.
    """

    def __init__(self, path, populations, dt, metadata=None, signed=False, chunk=65536, compress=False,
                 time_unit="ms", state_populations=None):
        self.path = os.fspath(path)
        self.partial_path = self.path + ".partial"
        src = f"SpikeWriter({self.path})"
        self.populations = _sizes(populations, src, "populations")
        # every population add_state may name: the spiking ones and the state-only ones
        self._sizes = {**_sizes(state_populations or {}, src, "state_populations"), **self.populations}
        if isinstance(dt, bool) or not isinstance(dt, (int, float, np.number)) \
                or not np.isfinite(dt) or dt <= 0:
            raise ConfigError(f"{src}: dt: got {dt!r}; allowed: a finite float > 0 (ms)")
        self.dt = float(dt)
        if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
            raise ConfigError(f"{src}: chunk: got {chunk!r}; allowed: an int >= 1")
        self.chunk = int(chunk)
        self.signed, self._value_top = _signed_map(signed, self.populations, src)
        if isinstance(compress, (bool, np.bool_)):
            compress = "deflate" if compress else "none"
        if compress not in COMPRESSION:
            raise ConfigError(f"{src}: compress: got {compress!r}; allowed: {', '.join(COMPRESSION)}")
        self.compress = compress
        if time_unit not in TIME_UNITS:
            raise ConfigError(f"{src}: time_unit: got {time_unit!r}; allowed: {', '.join(TIME_UNITS)}")
        if time_unit == "step" and self.dt != 1.0:
            raise ConfigError(f"{src}: dt: got {self.dt!r} with time_unit 'step'; allowed: 1.0 (one step)")
        self.time_unit = time_unit
        meta = dict(metadata or {})
        check_metadata(meta, src, self.dt)
        parent = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(parent):
            raise ConfigError(f"{src}: directory {parent} does not exist; "
                              "allowed: a path in an existing directory")

        hchunk = (min(self.chunk, 1 << 20),)     # HDF5 chunk: bounded whatever the buffer size
        if compress == "scaleoffset":
            hchunk = (SCALEOFFSET_CHUNK,)
        # appends touch one partial chunk per dataset: a cache of two float64 chunks each holds
        # it (HDF5's default, 8 MB per dataset, grows a long run's memory and an LM's 160 datasets)
        self._cache = 16 * hchunk[0]
        try:
            self._file = self._open("w")
        except OSError as err:
            raise ConfigError(f"{src}: cannot create {self.partial_path} ({err}); allowed: a "
                              "writable path") from None
        self._file.attrs["magic"] = np.uint32(SONATA_MAGIC)
        self._file.attrs["version"] = np.array(SONATA_VERSION, dtype=np.uint32)
        spikes = self._file.create_group("spikes", track_order=True)  # keep population order
        zip_opts = self._zip = COMPRESSION[compress]
        # scaleoffset on floats rounds to 10^-D: lossless only for whole-number timestamps
        ts_opts = zip_opts if compress != "scaleoffset" or float(self.dt).is_integer() else {}
        self._buffers = {name: [] for name in self.populations}
        self._buffered = dict.fromkeys(self.populations, 0)
        self._last_step = dict.fromkeys(self.populations, -1)
        for name in self.populations:
            g = spikes.create_group(name)
            g.attrs.create("sorting", SORTING["by_time"], dtype=SORTING_DTYPE)
            ts = g.create_dataset("timestamps", shape=(0,), maxshape=(None,), dtype=np.float64,
                                  chunks=hchunk, **ts_opts)
            ts.attrs["units"] = self.time_unit
            g.create_dataset("node_ids", shape=(0,), maxshape=(None,), dtype=np.uint64,
                             chunks=hchunk, **zip_opts)
            if self.signed[name]:
                g.create_dataset("values", shape=(0,), maxshape=(None,), chunks=hchunk, **zip_opts,
                                 dtype=np.int16 if self._value_top.get(name, 1) > 127 else np.int8)
        self._states = {}    # (population, variable) -> group path, node_ids, first, stride, last, n
        self._weights = {}   # projection -> last step
        m = self._file.create_group("spikelm")
        m.attrs["format"] = FORMAT
        m.attrs["dt"] = self.dt
        m.attrs["time_unit"] = self.time_unit
        m.attrs["version"] = __version__
        m.attrs["complete"] = False
        write_meta_value(m, "populations", self.populations)
        write_meta_value(m, "signed", self.signed)
        for key, value in meta.items():
            write_meta_value(m, key, value)
        self._swmr = False
        self._finished = False
        self._datasets = {}
        self.flush()

    # -- context manager
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            if not self._finished:
                self.finish()
        else:
            self._abort()
        return False

    # -- spikes
    def append(self, population, steps, node_ids, values=None):
        """Add spikes of one population, in time order.

        Parameters
        ----------
        population : str
        steps : array of int
            Step index of each spike (non-decreasing, and not before earlier calls).
        node_ids : array of int
            Neuron index in ``0 .. n-1``.
        values : array of int, optional
            Spike values (signed populations only; default +1). Must fit int16.
        """
        self._check_open()
        src = f"{self.partial_path}: append({population!r})"
        if population not in self.populations:
            raise ConfigError(f"{src}: population: unknown; allowed: {sorted(self.populations)}")
        steps = _int_array(steps, src, "steps")
        node_ids = _int_array(node_ids, src, "node_ids")
        if steps.shape != node_ids.shape:
            raise ConfigError(f"{src}: node_ids: {node_ids.size} entries for {steps.size} steps; "
                              "allowed: one node id per step")
        if steps.size == 0:
            return
        if steps[0] < self._last_step[population] or np.any(np.diff(steps) < 0):
            raise ConfigError(f"{src}: steps: not in time order (after step "
                              f"{self._last_step[population]}); allowed: non-decreasing steps")
        if steps[0] < 0:
            raise ConfigError(f"{src}: steps: found {steps[0]}; allowed: steps >= 0")
        n = self.populations[population]
        if node_ids.min() < 0 or node_ids.max() >= n:
            bad = node_ids[(node_ids < 0) | (node_ids >= n)][0]
            raise ConfigError(f"{src}: node_ids: found {bad}; allowed: 0 .. {n - 1}")
        if values is not None:
            values = _int_array(values, src, "values")
            if values.shape != steps.shape:
                raise ConfigError(f"{src}: values: {values.size} entries for {steps.size} "
                                  "spikes; allowed: one value per spike")
            if values.min() < -32768 or values.max() > 32767:
                raise ConfigError(f"{src}: values: found {values.min()}..{values.max()}; "
                                  "allowed: int16 range -32768..32767")
            if not self.signed[population]:
                if np.any(values != 1):
                    raise ConfigError(f"{src}: values: population is not signed; allowed: "
                                      "values only for populations given in signed=")
                values = None
        if self.signed[population] and values is None:
            values = np.ones(steps.shape, dtype=np.int16)
        self._last_step[population] = int(steps[-1])
        self._buffers[population].append((steps, node_ids, values))
        self._buffered[population] += steps.size
        if self._buffered[population] >= self.chunk:
            self.flush()

    def flush(self):
        """Write everything appended so far and make the file on disk consistent (SWMR).

        After it returns, a kill -9 loses nothing appended before the call, and a reader
        opening the ``.partial`` file with SWMR sees it all.
        """
        self._check_open()
        for name in self.populations:
            self._flush(name)
        if not self._swmr:
            self._file.swmr_mode = True   # every object exists now; from here on only appends
            self._swmr = True
        self._file.flush()

    def _open(self, mode):
        f = h5py.File(self.partial_path, mode, libver=LIBVER, rdcc_nbytes=self._cache, rdcc_w0=1.0)
        config = f.id.get_mdc_config()      # HDF5 lets the metadata cache grow to 32 MB
        config.max_size = METADATA_CACHE
        config.initial_size = min(config.initial_size, METADATA_CACHE)
        config.set_initial_size = True
        f.id.set_mdc_config(config)
        return f

    def _restructure(self):
        """Leave SWMR mode (close and reopen) so that new datasets can be created."""
        self._datasets = {}
        if self._swmr:
            self._file.close()
            # a reader may open the file in the moment it is closed, and hold its lock for a read:
            # wait for it (up to 40 s) rather than lose the run
            for wait in [0.01 * 2**k for k in range(12)] + [None]:
                try:
                    self._file = self._open("a")
                    break
                except BlockingIOError:
                    if wait is None:
                        raise
                    time.sleep(wait)
            self._swmr = False

    def _flush(self, population):
        parts = self._buffers[population]
        if not parts:
            return
        steps = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        ids = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
        ts_ds, id_ds, val_ds = self._spike_datasets(population)
        _append(ts_ds, steps.astype(np.float64) * self.dt)
        _append(id_ds, ids.astype(np.uint64))
        if val_ds is not None:
            values = np.concatenate([p[2] for p in parts])
            if val_ds.dtype == np.int8 and (values.min() < -128 or values.max() > 127):
                self._restructure()
                g = self._file["spikes"][population]
                old = g["values"][()]
                del g["values"]
                g.create_dataset("values", data=old.astype(np.int16), maxshape=(None,),
                                 chunks=g["timestamps"].chunks, **self._zip)
                val_ds = self._spike_datasets(population)[2]
            _append(val_ds, values.astype(val_ds.dtype))
        self._buffers[population] = []
        self._buffered[population] = 0

    def _spike_datasets(self, population):
        """(timestamps, node_ids, values or None) of a population, looked up once per file opening."""
        found = self._datasets.get(population)
        if found is None:
            g = self._file["spikes"][population]
            found = self._datasets[population] = (g["timestamps"], g["node_ids"],
                                                  g["values"] if self.signed[population] else None)
        return found

    # -- state
    def add_state(self, population, variable, node_ids, steps, data, units=None):
        """Add sampled state of one population as a SONATA frame report.

        Parameters
        ----------
        population, variable : str
            The first variable of a population is written at ``/report/<population>/data``
            (what SONATA readers see); further ones at ``/report/<population>/<variable>/``.
        node_ids : array of int
            Recorded neurons (the columns of ``data``); the same at every call.
        steps : array of int
            Sample steps, evenly spaced, continuing the grid of earlier calls.
        data : array [len(steps), len(node_ids)]
            Stored as float32 (the SONATA frame report type).
        units : str, optional
            Unit of the variable (e.g. ``"mV"``); ``""`` when not given.
        """
        self._check_open()
        src = f"{self.partial_path}: add_state({population!r}, {variable!r})"
        if population not in self._sizes:
            raise ConfigError(f"{src}: population: unknown; allowed: {sorted(self._sizes)}")
        _check_name(variable, src, "variable")
        if variable in _RESERVED_VARIABLES:
            raise ConfigError(f"{src}: variable: {variable!r} is reserved; allowed: any other "
                              f"name than {sorted(_RESERVED_VARIABLES)}")
        node_ids = _int_array(node_ids, src, "node_ids")
        steps = _int_array(steps, src, "steps")
        data = np.asarray(data)
        if data.ndim == 1 and steps.size == 1:
            data = data[None, :]
        if data.shape != (steps.size, node_ids.size) or node_ids.size == 0:
            raise ConfigError(f"{src}: data: shape {data.shape}; allowed: "
                              f"(len(steps), len(node_ids)) = ({steps.size}, {node_ids.size}), "
                              "at least one node")
        if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
            raise ConfigError(f"{src}: data: dtype {data.dtype}; allowed: a numeric dtype")
        n = self._sizes[population]
        if node_ids.min() < 0 or node_ids.max() >= n:
            raise ConfigError(f"{src}: node_ids: found {node_ids.min()}..{node_ids.max()}; "
                              f"allowed: 0 .. {n - 1}")
        key = (population, variable)
        rep = self._states.get(key)
        if rep is not None and not np.array_equal(rep["node_ids"], node_ids):
            raise ConfigError(f"{src}: node_ids: differ from the first call; allowed: the same "
                              "recorded neurons at every call")
        if steps.size == 0:
            return
        first = int(steps[0]) if rep is None else rep["first"]
        stride = None if rep is None else rep["stride"]
        grid = steps if rep is None else np.concatenate(([rep["last"]], steps))
        diffs = np.unique(np.diff(grid))
        if diffs.size > 1 or (diffs.size == 1 and (diffs[0] <= 0 or
                                                   (stride is not None and diffs[0] != stride))):
            raise ConfigError(f"{src}: steps: spacing {diffs.tolist()} (stride so far "
                              f"{stride}); allowed: evenly spaced increasing steps")
        if diffs.size == 1:
            stride = int(diffs[0])
        if first < 0:
            raise ConfigError(f"{src}: steps: found {first}; allowed: steps >= 0")
        if rep is None:
            self._restructure()
            rep = self._new_state(population, variable, node_ids, units, src)
        _extend(self._file[rep["group"]]["data"], data.astype(np.float32))
        rep.update(first=first, stride=stride, last=int(steps[-1]))
        rep["n"] += steps.size
        self._write_state_time(rep)

    def _new_state(self, population, variable, node_ids, units, src):
        report = self._report_group()
        base = report[population] if population in report else report.create_group(
            population, track_order=True)
        if "data" not in base:
            g = base
        else:
            g = base.create_group(variable)
        n = node_ids.size
        rows = max(1, min(1024, (1 << 18) // n))
        d = g.create_dataset("data", shape=(0, n), maxshape=(None, n), dtype=np.float32,
                             chunks=(rows, n))
        d.attrs["units"] = "" if units is None else str(units)
        d.attrs["variable"] = variable
        m = g.create_group("mapping")
        ids = m.create_dataset("node_ids", data=node_ids.astype(np.uint64))
        ids.attrs["sorted"] = np.uint8(bool(np.all(np.diff(node_ids) > 0)))
        pointers = np.arange(n + 1, dtype=np.uint64)
        m.create_dataset("index_pointers", data=pointers)    # SONATA spec, libsonata
        m.create_dataset("index_pointer", data=pointers)     # bmtk reads this name
        m.create_dataset("element_ids", data=np.zeros(n, dtype=np.uint32))
        m.create_dataset("element_pos", data=np.full(n, 0.5, dtype=np.float32))
        t = m.create_dataset("time", data=np.zeros(3, dtype=np.float64))
        t.attrs["units"] = self.time_unit
        rep = {"group": g.name, "node_ids": node_ids.copy(), "first": None, "stride": None,
               "last": None, "n": 0, "attrs": None}
        self._states[(population, variable)] = rep
        return rep

    def _report_group(self):
        if "report" not in self._file:
            self._file.create_group("report", track_order=True)
        return self._file["report"]

    def _write_state_time(self, rep):
        stride = rep["stride"] or 1
        t = self._file[rep["group"]]["mapping"]["time"]
        start = rep["first"] * self.dt
        step_dt = stride * self.dt
        t[...] = [start, start + rep["n"] * step_dt, step_dt]
        if rep["attrs"] != (rep["first"], stride):    # fixed after the second call: SWMR-friendly
            t.attrs["first_step"] = np.int64(rep["first"])
            t.attrs["step_stride"] = np.int64(stride)
            rep["attrs"] = (rep["first"], stride)

    # -- weights
    def add_weights(self, projection, step, weights, units=None):
        """Add one snapshot of a projection's weights (taken at ``step``).

        Snapshots are stored row by row in ``/report/<projection>/weights`` with the dtype of
        the first one (float32/float64, or the integer type of a converted LM), flattened;
        ``steps`` (int64) and ``times`` (ms) lie beside it. ``units`` (e.g. ``"mV"``, the
        jump of the target input) is stored with the first snapshot (``""`` when not given).
        """
        self._check_open()
        src = f"{self.partial_path}: add_weights({projection!r})"
        _check_name(projection, src, "projection")
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ConfigError(f"{src}: step: got {step!r}; allowed: an int >= 0")
        w = np.asarray(weights)
        if not (np.issubdtype(w.dtype, np.floating) or np.issubdtype(w.dtype, np.integer)):
            raise ConfigError(f"{src}: weights: dtype {w.dtype}; allowed: float or int")
        if projection not in self._weights:
            if "report" in self._file and projection in self._file["report"] \
                    and "weights" in self._file["report"][projection]:
                raise ConfigError(f"{src}: projection: already written")
            self._restructure()
            g = self._report_group().require_group(projection)
            flat = w.reshape(-1)
            rows = max(1, min(256, (1 << 20) // max(flat.size, 1)))
            # a projection without synapses still gets its (empty) snapshots: HDF5 chunks
            # must fit the maximum shape, so its second axis is left growable
            d = g.create_dataset("weights", shape=(0, flat.size),
                                 maxshape=(None, flat.size if flat.size else None),
                                 dtype=flat.dtype, chunks=(rows, max(flat.size, 1)))
            d.attrs["shape"] = np.array(w.shape, dtype=np.int64)
            d.attrs["units"] = "" if units is None else str(units)
            g.create_dataset("steps", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(256,))
            tm = g.create_dataset("times", shape=(0,), maxshape=(None,), dtype=np.float64,
                                  chunks=(256,))
            tm.attrs["units"] = self.time_unit
        else:
            last = self._weights[projection]
            if step <= last:
                raise ConfigError(f"{src}: step: {step} after step {last}; allowed: increasing")
        g = self._file["report"][projection]
        d = g["weights"]
        if w.size != d.shape[1]:
            raise ConfigError(f"{src}: weights: {w.size} values; allowed: {d.shape[1]} "
                              "(the size of the first snapshot)")
        _extend(d, w.reshape(1, -1).astype(d.dtype))
        _extend(g["steps"], np.array([step], dtype=np.int64))
        _extend(g["times"], np.array([step * self.dt]))
        self._weights[projection] = int(step)

    # -- closing
    def finish(self, extra_metadata=None):
        """Flush everything, write the metadata, close and rename ``.partial`` to the path.

        Returns
        -------
        str
            The final path.
        """
        if self._finished:
            return self.path
        extra = dict(extra_metadata or {})
        try:
            check_metadata(extra, f"SpikeWriter({self.path}).finish", self.dt)
            for name in self.populations:
                self._flush(name)
            self._restructure()        # the closing metadata adds attributes and datasets
            meta = self._file["spikelm"]
            for key, value in extra.items():
                write_meta_value(meta, key, value)
            meta.attrs["complete"] = True
        except BaseException:
            self._abort()
            raise
        self._file.close()
        self._finished = True
        _compact(self.partial_path)
        os.replace(self.partial_path, self.path)
        return self.path

    def _abort(self):
        """Keep what was recorded in ``<path>.partial``; never touch ``<path>``."""
        if self._finished:
            return
        self._finished = True
        try:
            for name in self.populations:
                self._flush(name)
        finally:
            self._file.close()

    def _check_open(self):
        if self._finished:
            raise ConfigError(f"{self.path}: writer: already finished or aborted; "
                              "allowed: calls before finish()")


#: Largest HDF5 metadata cache of a file being written: a run's metadata is small, and a
#: bounded cache keeps a long run's memory flat.
METADATA_CACHE = 4 << 20


def _compact(path):
    """Rewrite a finished file without the space its rewritten chunks left behind.

    A filtered chunk that grows over several flushes is written anew each time, and a file
    in SWMR mode never reuses the space of the old copy: per-token flushes of a deflated LM
    run leave ten times the data in dead space. Copying every object (raw chunks, no
    recompression) into a fresh file drops it; files with little dead space stay as they are.
    """
    with h5py.File(path, "r") as f:
        used = []
        f.visititems(lambda name, obj: used.append(obj.id.get_storage_size())
                     if isinstance(obj, h5py.Dataset) else None)
        if os.path.getsize(path) <= 1.1 * sum(used) + (1 << 20):
            return
        tmp = path + ".compact"
        with h5py.File(tmp, "w", libver=LIBVER) as g:
            for key in f.attrs:
                g.attrs.create(key, f.attrs[key], dtype=f.attrs.get_id(key).dtype)
            for name in f:
                f.copy(f[name], g, name=name)
    os.replace(tmp, path)


def _append(dataset, values):
    """Append a 1-D array to a growable 1-D dataset (the low-level calls: a flush per token
    makes thousands of these, and h5py's slicing costs more than the write)."""
    n, k = dataset.shape[0], values.shape[0]
    if k == 0:
        return
    dataset.id.set_extent((n + k,))
    space = dataset.id.get_space()
    space.select_hyperslab((n,), (k,))
    dataset.id.write(h5py.h5s.create_simple((k,)), space, np.ascontiguousarray(values))


def _extend(dataset, rows):
    n = dataset.shape[0]
    dataset.resize(n + rows.shape[0], axis=0)
    dataset[n:] = rows
