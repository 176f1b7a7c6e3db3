"""Run files as Neo blocks, and Neo blocks as run files: spikelm's SONATA layout for Neo and Elephant.

``read_block(path)`` gives one ``neo.Block`` with one ``Segment``: a ``SpikeTrain`` per neuron
of every spiking population (times in ms, ``t_stop`` the end of the run, annotated with
``source_population``, ``source_index`` and ``channel_id`` as PyNN annotates its own) and an
``AnalogSignal`` per recorded state variable (units from the file, ``array_annotations``
``channel_index`` = node ids). ``SonataIO(path).write_block(block)`` writes a block (from
PyNN's ``get_data()`` or ``read_block``) back as a SONATA spike file. Needs ``neo`` (the
``pynn`` extra).

A spike of step s is at ``s * dt`` in spikelm's files; a block from spikelm.pynn carries the
times PyNN reports, which are written as they are (``round(t / dt)`` steps).
"""
from __future__ import annotations

import os
import re

import h5py
import numpy as np

from spikelm.errors import ConfigError, FileFormatError

from .sonata_read import read_metadata, read_spikes, read_state
from .sonata_write import SpikeWriter


def _neo():
    from .extras import require

    return require("neo", "reading spikelm files into Neo"), require("quantities", "reading spikelm files into Neo")


def _reports(path):
    """[(population, variable, units)] of every state report in the file."""
    out = []
    with h5py.File(path, "r", swmr=True) as f:
        report = f.get("report")
        for pop, g in (report or {}).items():
            if not isinstance(g, h5py.Group) or "data" not in g:
                continue
            out.append((pop, _text(g["data"].attrs.get("variable", "")), _text(g["data"].attrs.get("units", ""))))
            for var, sub in g.items():
                if isinstance(sub, h5py.Group) and var != "mapping" and "data" in sub:
                    out.append((pop, var, _text(sub["data"].attrs.get("units", ""))))
    return out


def _text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def _units(pq, text, where):
    try:
        return pq.Quantity(1.0, text or "dimensionless").units
    except (LookupError, ValueError, SyntaxError):
        raise FileFormatError(f"{where}: units {text!r} are not a unit Neo knows") from None


def read_block(path):
    """The spikes and sampled state of a spikelm run file as one ``neo.Block``."""
    neo, pq = _neo()
    path = os.fspath(path)
    meta = read_metadata(path)
    spikes = read_spikes(path)
    if any(t.time_unit != "ms" for t in spikes.values()):
        raise FileFormatError(f"{path}: timestamps count steps (a converted LM's file), not ms; Neo needs times")
    dt = meta.get("dt")
    ends = [float(t.timestamps.max()) + (dt or 0.0) for t in spikes.values() if len(t)]
    t_stop = meta["steps"] * dt if dt and "steps" in meta else max(ends, default=0.0)
    seg = neo.Segment(name=os.path.basename(path))
    block = neo.Block(name=os.path.basename(path), dt=dt)
    for pop, table in spikes.items():
        n = table.n_nodes if table.n_nodes is not None else int(table.node_ids.max(initial=0)) + 1
        ids = table.node_ids.astype(np.int64)
        order = np.argsort(ids, kind="stable")
        ids, times = ids[order], table.timestamps[order]
        bounds = np.searchsorted(ids, np.arange(n + 1))
        for node in range(n):
            train = neo.SpikeTrain(np.sort(times[bounds[node]:bounds[node + 1]]) * pq.ms, t_start=0.0 * pq.ms,
                                   t_stop=max(t_stop, float(times.max(initial=0.0))) * pq.ms,
                                   source_population=pop, source_index=node, channel_id=node)
            train.segment = seg
            seg.spiketrains.append(train)
    for pop, variable, units in _reports(path):
        node_ids, times, data = read_state(path, pop, variable)
        period = float(times[1] - times[0]) if times.size > 1 else (dt or 1.0)
        signal = neo.AnalogSignal(np.asarray(data, np.float64), units=_units(pq, units, f"{path}: /report/{pop}"),
                                  t_start=float(times[0] if times.size else 0.0) * pq.ms,
                                  sampling_period=period * pq.ms, name=variable, source_population=pop,
                                  array_annotations={"channel_index": node_ids.astype(np.int64)})
        signal.segment = seg
        seg.analogsignals.append(signal)
    seg.block = block
    block.segments.append(seg)
    return block


class SonataIO:
    """A Neo-style IO for spikelm's SONATA files: ``read_block()`` and ``write_block(block)``.

    Parameters
    ----------
    filename : str or os.PathLike
    dt : float, optional
        Step width (ms) of the written file; default: the block's ``dt`` annotation (PyNN
        blocks carry it), else the sampling period of its signals.
    segment : int, optional
        Which segment to write when the block has several (one per ``reset()``); a SONATA
        file holds one run.
    """

    def __init__(self, filename, dt=None, segment=None):
        self.filename = os.fspath(filename)
        self.dt = dt
        self.segment = segment

    def read_block(self, **_):
        return read_block(self.filename)

    def read(self, **_):
        return [self.read_block()]

    def write(self, block):
        self.write_block(block)

    def write_block(self, block):
        where = f"SonataIO({self.filename})"
        if self.segment is None and len(block.segments) != 1:
            raise ConfigError(f"{where}: the block has {len(block.segments)} segments (runs between reset() calls); "
                              "a SONATA file holds one run: pass segment=i")
        seg = block.segments[0 if self.segment is None else self.segment]
        dt = self.dt or block.annotations.get("dt")
        if dt is None and seg.analogsignals:
            dt = float(seg.analogsignals[0].sampling_period.rescale("ms").magnitude)
        if dt is None:
            raise ConfigError(f"{where}: dt: the block carries none; pass dt (ms)")
        dt = float(dt)
        pops = {}
        for k, train in enumerate(seg.spiketrains):
            pop = _name(train.annotations.get("source_population") or block.name or "population")
            node = int(train.annotations.get("source_index", k))
            steps = np.rint(train.rescale("ms").magnitude / dt).astype(np.int64)
            pops.setdefault(pop, []).append((node, steps))
        sizes = {p: max(node for node, _ in trains) + 1 for p, trains in pops.items()}
        if "size" in block.annotations and len(sizes) == 1:
            p = next(iter(sizes))
            sizes[p] = max(sizes[p], int(block.annotations["size"]))
        states = {}
        for sig in seg.analogsignals:
            pop = _name(sig.annotations.get("source_population") or block.name or "population")
            ids = np.asarray(sig.array_annotations.get("channel_index", np.arange(sig.shape[1])), np.int64)
            states.setdefault(pop, []).append((sig, ids))
        state_sizes = {p: int(max(ids.max() for _, ids in sigs)) + 1 for p, sigs in states.items()}
        t_stop = max([float(t.t_stop.rescale("ms").magnitude) for t in seg.spiketrains], default=0.0)
        with SpikeWriter(self.filename, sizes, dt, state_populations=state_sizes,
                         metadata={"steps": int(round(t_stop / dt)), "source": "neo"}) as writer:
            for pop, trains in pops.items():
                steps = np.concatenate([s for _, s in trains])
                nodes = np.concatenate([np.full(s.size, node, np.int64) for node, s in trains])
                order = np.lexsort((nodes, steps))
                writer.append(pop, steps[order], nodes[order])
            for pop, sigs in states.items():
                for sig, ids in sigs:
                    t0 = float(sig.t_start.rescale("ms").magnitude)
                    every = float(sig.sampling_period.rescale("ms").magnitude)
                    steps = np.rint((t0 + every * np.arange(sig.shape[0])) / dt).astype(np.int64)
                    writer.add_state(pop, sig.name or "signal", ids, steps, np.asarray(sig.magnitude),
                                     units=str(sig.units.dimensionality))
            writer.finish()
        return self.filename


def _name(label):
    """A SONATA population name from a label (letters, digits and _)."""
    return re.sub(r"\W", "_", str(label)).strip("_") or "population"
