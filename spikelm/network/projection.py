"""A projection: synapses from one population to another, stored as CSR over pre neurons.

Each synapse has a weight (float64: integer weights stay exact), an integer delay in steps
(>= 1) and the projection has a ``target`` input of the post population ("exc" or "inh").
A spike of value v from pre neuron j adds v * w to the post neuron's input ``delay`` steps
later; each such addition is one SynOp.
"""
from __future__ import annotations

import numpy as np

from spikelm.errors import ConfigError

from .values import draw

TARGETS = ("exc", "inh")


class Projection:
    """Synapses ``pre -> post`` in CSR form (``indptr`` over pre, ``post_idx``, ``w``, ``delay``)."""

    def __init__(self, name, pre, post, rule, weight, delay, dt, target="exc", rng=None, plasticity=None):
        self.name, self.pre, self.post = name, pre, post
        if target not in TARGETS:
            raise ConfigError(f"projection '{name}': target must be one of {', '.join(TARGETS)}, got {target!r}")
        self.target = target
        self.rule = rule
        rng = rng if rng is not None else np.random.default_rng(0)
        pre_i, post_i = rule.pairs(pre.n, post.n, rng, same=pre is post)
        self.n_syn = pre_i.size
        # weights and delays are drawn (or given) in the rule's order; synapses are kept in
        # (pre, post) order, repeated pairs in the given order (a stable sort), and every
        # per-synapse array moves with its pair. Every rule but FromArrays already gives that
        # order; one canonical order is what lets a file that holds no order (a NIR matrix)
        # give back the same synapses in the same places.
        w = draw(weight, self.n_syn, rng, f"projection '{name}': weight")
        d_ms = draw(delay, self.n_syn, rng, f"projection '{name}': delay")
        if self.n_syn > 1 and not _in_pre_post_order(pre_i, post_i):
            order = np.lexsort((post_i, pre_i))
            pre_i, post_i, w, d_ms = pre_i[order], post_i[order], w[order], d_ms[order]
        self.indptr = np.zeros(pre.n + 1, dtype=np.int64)
        np.add.at(self.indptr, pre_i + 1, 1)
        np.cumsum(self.indptr, out=self.indptr)
        self.post_idx = post_i.astype(np.int32)
        self.w = w
        with np.errstate(over="ignore"):     # a huge delay overflows to inf: refused just below
            steps = np.rint(d_ms / dt)
        if self.n_syn and steps.min() < 1:
            raise ConfigError(f"projection '{name}': delay must be at least one step ({dt} ms), "
                              f"got {d_ms.min():g} ms")
        if self.n_syn and steps.max() > 32767:
            raise ConfigError(f"projection '{name}': delay {d_ms.max():g} ms exceeds 32767 steps")
        self.delay = steps.astype(np.int16)
        self.plasticity = plasticity

    @property
    def max_delay(self):
        return int(self.delay.max()) if self.n_syn else 1

    def out_degree(self):
        """Number of synapses of each pre neuron."""
        return np.diff(self.indptr)

    def pre_idx(self):
        """Pre index of every synapse (expanded from the CSR row pointer)."""
        return np.repeat(np.arange(self.pre.n, dtype=np.int64), self.out_degree())

    def dense(self):
        """Weights as a dense [n_pre, n_post] matrix (summing duplicate pairs)."""
        m = np.zeros((self.pre.n, self.post.n))
        np.add.at(m, (self.pre_idx(), self.post_idx), self.w)
        return m

    def __repr__(self):
        return f"Projection({self.name!r}, {self.pre.name}->{self.post.name}, {self.n_syn} synapses, {self.target})"


def _in_pre_post_order(pre, post):
    """True when the pairs are sorted by pre, and by post within each pre."""
    dp = np.diff(pre)
    return not (np.any(dp < 0) or np.any((dp == 0) & (np.diff(post) < 0)))
