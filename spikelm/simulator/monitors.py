"""Monitors: what a run keeps in memory (spikes, sampled state, population rates).

A monitor is named by what it records. All three are filled in the "record" phase, chunk
by chunk, from the buffers of :mod:`recording`.

With ``keep=False`` a monitor keeps only running totals, not the history: a run that streams
its record to a file (``spikelm run --out``) then uses the same memory for 10 s of model
time as for 12 hours. Asking such a monitor for its history raises a ConfigError that says
to read the run file.
"""
from __future__ import annotations

import numpy as np

from spikelm.errors import ConfigError


def _not_kept(what):
    return ConfigError(f"{what}: not kept in memory (the simulator was built with in_memory=False); "
                       "read the run file (spikelm.io.sonata) instead")


class SpikeMonitor:
    """Spikes as sparse (step, index, value) lists per population (index local to it).

    :meth:`get` gives steps (what the engine counts); :meth:`times` gives times in ms (what
    Brian2's ``SpikeMonitor.t`` and NEST's ``times`` give), :meth:`steps` the steps by name.
    """

    def __init__(self, populations, keep=True, dt=None):
        self.populations = list(populations)
        self.keep = bool(keep)
        self.dt = dt
        self._chunks = {p: [] for p in self.populations}
        self._counts = dict.fromkeys(self.populations, 0)

    def add(self, pop, steps, idx, val):
        if steps.size:
            self._counts[pop] += int(steps.size)
            if self.keep:
                self._chunks[pop].append((steps.copy(), idx.copy(), val.copy()))

    def get(self, pop):
        """Return (steps int64, neuron ids int64, values int8) of population ``pop``, in time order.

        Steps, not ms: :meth:`times` gives ms."""
        if pop not in self._chunks:
            raise ConfigError(f"spikes of {pop!r}: not recorded; recorded populations: "
                              f"{', '.join(self.populations) or 'none'}")
        if not self.keep:
            raise _not_kept(f"spikes of {pop!r}")
        ch = self._chunks[pop]
        if not ch:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int8)
        return tuple(np.concatenate([c[i] for c in ch]) for i in range(3))

    def steps(self, pop):
        """Return (steps int64, neuron ids int64) of population ``pop``: spike i is neuron ids[i] at step steps[i]."""
        steps, ids, _ = self.get(pop)
        return steps, ids

    def times(self, pop):
        """Return (times in ms float64, neuron ids int64) of population ``pop``: time = step * dt, as Brian2's
        ``SpikeMonitor.t`` (in ms) and ``.i``."""
        if self.dt is None:
            raise ConfigError(f"spikes of {pop!r}: times need the step width; this monitor has none "
                              "(use steps(), or a SpikeMonitor made by a Simulator)")
        steps, ids, _ = self.get(pop)
        return steps * self.dt, ids

    def count(self, pop=None):
        pops = self.populations if pop is None else [pop]
        return sum(self._counts[p] for p in pops)

    def state(self):
        return {p: self.get(p) for p in self.populations}

    def restore(self, data):
        self._chunks = {p: [tuple(np.asarray(a) for a in data[p])] if p in data else [] for p in self.populations}
        self._counts = {p: sum(c[0].size for c in self._chunks[p]) for p in self.populations}


class StateMonitor:
    """State variables of chosen neurons, sampled every ``every`` steps.

    ``variables``: names of the population's state variables; ``neurons``: local indices
    (default all).
    """

    def __init__(self, population, variables, every=1, neurons=None):
        what = f"StateMonitor({population!r})"
        if not isinstance(population, str):
            raise ConfigError(f"{what}: population must be a name, got {population!r}")
        if isinstance(variables, str) or not all(isinstance(v, str) for v in _iterable(variables, what, "variables")):
            raise ConfigError(f"{what}: variables must be a list of state variable names, got {variables!r}")
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or not 1 <= every < 2**62:
            raise ConfigError(f"{what}: every must be an integer number of steps >= 1, got {every!r}")
        self.population = population
        self.variables = list(variables)
        if not self.variables:
            raise ConfigError(f"{what}: variables: give at least one")
        self.every = int(every)
        self.neurons = None if neurons is None else _neuron_ids(neurons, what)
        self.keep = True
        self.steps = []
        self.data = []

    def add(self, steps, data):
        """Keep one chunk of samples (nothing when the simulator does not keep history)."""
        if self.keep:
            self.steps.append(steps)
            self.data.append(data)

    def get(self, variable):
        """Return (steps, values [n_samples, n_neurons]) of ``variable``."""
        if not self.keep:
            raise _not_kept(f"state of {self.population!r}")
        k = self.variables.index(variable)
        if not self.data:
            return np.zeros(0, np.int64), np.zeros((0, 0))
        d = np.concatenate(self.data)
        n = d.shape[1] // len(self.variables)
        return np.concatenate(self.steps), d[:, k * n:(k + 1) * n]


class RateMonitor:
    """Per-step spike counts of every population; ``rate(pop, bin_ms)`` in Hz."""

    def __init__(self, populations, sizes, dt, keep=True):
        self.populations = list(populations)
        self.sizes = dict(sizes)
        self.dt = dt
        self.keep = bool(keep)
        self._counts = []
        self._totals = np.zeros(len(self.populations), dtype=np.int64)

    def add(self, counts):
        self._totals += counts.sum(axis=0)
        if self.keep:
            self._counts.append(counts.copy())

    def total(self, pop):
        """Spikes of population ``pop`` since the simulator was built (kept in every mode)."""
        return int(self._totals[self.populations.index(pop)])

    def counts(self, pop=None):
        if not self.keep:
            raise _not_kept("per-step spike counts")
        c = np.concatenate(self._counts) if self._counts else np.zeros((0, len(self.populations)), np.int64)
        return c if pop is None else c[:, self.populations.index(pop)]

    def rate(self, pop, bin_ms=None):
        """(bin start times in ms, population rate in Hz)."""
        c = self.counts(pop).astype(float)
        b = max(1, int(round((bin_ms or self.dt) / self.dt)))
        nb = c.size // b
        binned = c[: nb * b].reshape(nb, b).sum(axis=1)
        return np.arange(nb) * b * self.dt, binned / (self.sizes[pop] * b * self.dt * 1e-3)


def _iterable(values, what, field):
    try:
        return list(values)
    except TypeError:
        raise ConfigError(f"{what}: {field} must be a list, got {values!r}") from None


def _neuron_ids(neurons, what):
    try:
        a = np.asarray(neurons)
    except (TypeError, ValueError):
        a = np.asarray([None])
    if a.ndim != 1 or (a.size and a.dtype.kind not in "iu") or (a.dtype.kind == "u" and a.size and a.max() >= 2**63):
        raise ConfigError(f"{what}: neurons must be a 1-D list of integer indices, got {neurons!r}"[:200])
    return a.astype(np.int64)
