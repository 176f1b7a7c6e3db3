"""Recording for ``spikelm.pynn``: what the engine collects per segment, handed to PyNN's
Recorder, which makes the Neo blocks.

Spikes are kept as (global id, time in ms) arrays. A recorded state variable is kept as
blocks of samples, one row per sampling interval; the first row of a segment (or of a
recording started later, or after ``clear``) is the value at its start, as PyNN expects
(``int(T / dt) + 1`` samples for T ms).
"""
from __future__ import annotations

import numpy as np

from spikelm.io.extras import require
from . import simulator

recording = require("pyNN.recording", "spikelm.pynn")


class Recorder(recording.Recorder):
    _simulator = simulator

    def __init__(self, population, file=None):
        super().__init__(population, file)
        self._new_segment()

    def _new_segment(self):
        self._spike_ids = []
        self._spike_times = []
        self._signals = {}        # variable name -> list of (ids, rows [k, len(ids)])
        self._started = set()     # variables whose first sample of this segment is taken

    # -- hooks PyNN's Recorder calls ---------------------------------------------------------------
    def _record(self, variable, new_ids, sampling_interval=None):
        dt = self._simulator.state.dt
        if sampling_interval is not None:
            k = sampling_interval / dt
            if not (k >= 1 and abs(k - round(k)) < 1e-9):
                from spikelm.errors import ConfigError

                raise ConfigError(f"record: sampling_interval must be a whole number of time steps "
                                  f"(dt = {dt:g} ms), got {sampling_interval!r}")
        self.sampling_interval = sampling_interval or self.sampling_interval or dt
        self._simulator.state.engine.invalidate()

    def _reset(self):
        self._simulator.state.engine.invalidate()

    def _clear_simulator(self):
        self._new_segment()

    def _get_spiketimes(self, ids, clear=False):
        ids_arr = np.concatenate(self._spike_ids) if self._spike_ids else np.zeros(0, np.int64)
        times = np.concatenate(self._spike_times) if self._spike_times else np.zeros(0)
        keep = np.isin(ids_arr, np.asarray(list(ids), dtype=np.int64))
        if clear:
            self._spike_ids, self._spike_times = [], []
        return ids_arr[keep], times[keep]

    def _get_all_signals(self, variable, ids, clear=False):
        ids = np.asarray(list(ids), dtype=np.int64)
        blocks = self._signals.get(variable.name, [])
        parts = []
        for block_ids, rows in blocks:
            out = np.full((rows.shape[0], ids.size), np.nan)
            pos = np.searchsorted(block_ids, ids)
            found = (pos < block_ids.size) & (block_ids[np.minimum(pos, block_ids.size - 1)] == ids)
            out[:, found] = rows[:, pos[found]]
            parts.append(out)
        values = np.concatenate(parts) if parts else np.zeros((0, ids.size))
        if clear:
            self._signals.pop(variable.name, None)
            self._started.discard(variable.name)
        return values, None

    def _local_count(self, variable, filter_ids=None):
        ids = np.array(sorted(self.filter_recorded(variable, filter_ids)), dtype=np.int64)
        got = np.concatenate(self._spike_ids) if self._spike_ids else np.zeros(0, np.int64)
        counts = np.bincount(np.searchsorted(ids, got[np.isin(got, ids)]), minlength=ids.size)
        return {int(i): int(c) for i, c in zip(ids, counts)}

    # -- what the engine hands over ---------------------------------------------------------------
    def every_steps(self):
        return max(1, int(round(self.sampling_interval / self._simulator.state.dt)))

    def recorded_spike_ids(self):
        return {int(i) for v, ids in self.recorded.items() if v.name == "spikes" for i in ids}

    def add_spikes(self, ids, times):
        if ids.size:
            self._spike_ids.append(ids)
            self._spike_times.append(times)

    def add_samples(self, variable, ids, rows):
        if rows.shape[0]:
            self._signals.setdefault(variable, []).append((ids, rows))
