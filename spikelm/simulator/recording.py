"""Buffers the backends fill while they run a chunk of steps (the "record" phase).

Spikes of recorded neurons go to ``steps/idx/val`` (global neuron index); per-step spike
counts of every population to ``counts``; sampled state variables to ``samples`` every
``every`` steps. A chunk ends early when the spike buffer could overflow in the next step.
"""
from __future__ import annotations

import numpy as np


class ChunkBuffers:
    """Preallocated record buffers for one chunk of at most ``max_steps`` steps."""

    def __init__(self, plan, rec_mask, max_steps, spike_cap, sample_rows, sample_cols, every):
        self.rec_mask = rec_mask.astype(np.uint8)
        self.n_rec = int(self.rec_mask.sum())
        self.spike_cap = max(int(spike_cap), self.n_rec + 1)
        self.steps = np.zeros(self.spike_cap, dtype=np.int64)
        self.idx = np.zeros(self.spike_cap, dtype=np.int64)
        self.val = np.zeros(self.spike_cap, dtype=np.int8)
        self.max_steps = int(max_steps)
        self.counts = np.zeros((self.max_steps, len(plan.pops)), dtype=np.int64)
        self.sample_rows = np.asarray(sample_rows, dtype=np.int64)
        self.sample_cols = np.asarray(sample_cols, dtype=np.int64)
        self.every = int(every)
        n_samp = self.max_steps // self.every + 1 if self.sample_rows.size else 0
        self.samples = np.zeros((n_samp, self.sample_rows.size))
        self.sample_steps = np.zeros(n_samp, dtype=np.int64)
        self.n = np.zeros(3, dtype=np.int64)  # [spikes recorded, steps done, samples taken]

    def reset(self):
        self.n[:] = 0
