"""Monitors: what a run keeps in memory (spikes, sampled state, population rates).

A monitor is named by what it records. All three are filled in the "record" phase, chunk
by chunk, from the buffers of :mod:`recording`.
"""
from __future__ import annotations

import numpy as np


class SpikeMonitor:
    """Spikes as sparse (step, index, value) lists per population (index local to it)."""

    def __init__(self, populations):
        self.populations = list(populations)
        self._chunks = {p: [] for p in self.populations}

    def add(self, pop, steps, idx, val):
        if steps.size:
            self._chunks[pop].append((steps.copy(), idx.copy(), val.copy()))

    def get(self, pop):
        """Return (steps int64, neuron ids int64, values int8) of population ``pop``, in time order."""
        ch = self._chunks[pop]
        if not ch:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int8)
        return tuple(np.concatenate([c[i] for c in ch]) for i in range(3))

    def count(self, pop=None):
        pops = self.populations if pop is None else [pop]
        return sum(sum(c[0].size for c in self._chunks[p]) for p in pops)

    def state(self):
        return {p: self.get(p) for p in self.populations}

    def restore(self, data):
        self._chunks = {p: [tuple(np.asarray(a) for a in data[p])] if p in data else [] for p in self.populations}


class StateMonitor:
    """State variables of chosen neurons, sampled every ``every`` steps.

    ``variables``: names of the population's state variables; ``neurons``: local indices
    (default all).
    """

    def __init__(self, population, variables, every=1, neurons=None):
        self.population = population
        self.variables = list(variables)
        self.every = int(every)
        self.neurons = None if neurons is None else np.asarray(neurons, dtype=np.int64)
        self.steps = []
        self.data = []

    def get(self, variable):
        """Return (steps, values [n_samples, n_neurons]) of ``variable``."""
        k = self.variables.index(variable)
        if not self.data:
            return np.zeros(0, np.int64), np.zeros((0, 0))
        d = np.concatenate(self.data)
        n = d.shape[1] // len(self.variables)
        return np.concatenate(self.steps), d[:, k * n:(k + 1) * n]


class RateMonitor:
    """Per-step spike counts of every population; ``rate(pop, bin_ms)`` in Hz."""

    def __init__(self, populations, sizes, dt):
        self.populations = list(populations)
        self.sizes = dict(sizes)
        self.dt = dt
        self._counts = []

    def add(self, counts):
        self._counts.append(counts.copy())

    def counts(self, pop=None):
        c = np.concatenate(self._counts) if self._counts else np.zeros((0, len(self.populations)), np.int64)
        return c if pop is None else c[:, self.populations.index(pop)]

    def rate(self, pop, bin_ms=None):
        """(bin start times in ms, population rate in Hz)."""
        c = self.counts(pop).astype(float)
        b = max(1, int(round((bin_ms or self.dt) / self.dt)))
        nb = c.size // b
        binned = c[: nb * b].reshape(nb, b).sum(axis=1)
        return np.arange(nb) * b * self.dt, binned / (self.sizes[pop] * b * self.dt * 1e-3)
