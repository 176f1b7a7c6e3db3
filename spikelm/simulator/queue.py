"""The event queue: a ring buffer of ``max_delay + 1`` slots of per-neuron input sums.

Slot ``t % n_slots`` holds what arrives at step t, for each target input ("exc" = 0,
"inh" = 1) of every neuron. ``count[slot]`` counts the events (synaptic additions) pushed
into a slot, so conservation can be checked: pushed = delivered + pending, at every step.
The arrays are shared with the compiled kernels, which update them in place.
"""
from __future__ import annotations

import numpy as np


class EventQueue:
    """Ring buffer of input sums: ``push`` / ``deliver``, with event counters."""

    def __init__(self, n_neurons: int, max_delay: int):
        self.n_slots = int(max_delay) + 1
        self.buf = np.zeros((self.n_slots, 2, n_neurons))
        self.count = np.zeros(self.n_slots, dtype=np.int64)
        self.totals = np.zeros(2, dtype=np.int64)  # [pushed, delivered]

    def push(self, t, delay, target, post, values):
        """Add ``values`` for neurons ``post`` at step t + delay (arrays of equal length, in order)."""
        delay = np.asarray(delay, dtype=np.int64)
        if delay.size and (delay.min() < 1 or delay.max() >= self.n_slots):
            raise ValueError(f"EventQueue.push: delays must lie in [1, {self.n_slots - 1}] steps, got "
                             f"[{delay.min()}, {delay.max()}]")
        slots = (t + delay) % self.n_slots
        np.add.at(self.buf, (slots, target, post), values)
        np.add.at(self.count, slots, 1)
        self.totals[0] += len(values)

    def deliver(self, t):
        """Return (exc, inh) input sums for step t and clear the slot."""
        s = t % self.n_slots
        inp = self.buf[s].copy()
        self.buf[s] = 0.0
        self.totals[1] += self.count[s]
        self.count[s] = 0
        return inp[0], inp[1]

    @property
    def pushed(self):
        return int(self.totals[0])

    @property
    def delivered(self):
        return int(self.totals[1])

    @property
    def pending(self):
        return int(self.count.sum())
