"""A projection: synapses from one population to another, stored as CSR over pre neurons.

Each synapse has a weight (float64: integer weights stay exact; float32 when asked, for
large static networks), an integer delay in steps (>= 1) and the projection has a ``target``
input of the post population ("exc" or "inh"). Post indices and delays are stored as narrow
as their values allow (uint16 / int32, uint8 / int16).
A spike of value v from pre neuron j adds v * w to the post neuron's input ``delay`` steps
later; each such addition is one SynOp.
"""
from __future__ import annotations

import numpy as np

from spikelm.errors import ConfigError

from .values import draw

TARGETS = ("exc", "inh")
WEIGHT_DTYPES = ("float64", "float32")


class Projection:
    """Synapses ``pre -> post`` in CSR form (``indptr`` over pre, ``post_idx``, ``w``, ``delay``)."""

    def __init__(self, name, pre, post, rule, weight, delay, dt, target="exc", rng=None, plasticity=None,
                 weight_dtype="float64"):
        self.name, self.pre, self.post = name, pre, post
        if target not in TARGETS:
            raise ConfigError(f"projection '{name}': target must be one of {', '.join(TARGETS)}, got {target!r}")
        if weight_dtype not in WEIGHT_DTYPES:
            raise ConfigError(f"projection '{name}': weight_dtype must be one of {', '.join(WEIGHT_DTYPES)}, "
                              f"got {weight_dtype!r}")
        if weight_dtype == "float32" and plasticity is not None:
            raise ConfigError(f"projection '{name}': a plastic projection keeps float64 weights (its rule adds "
                              "small changes); weight_dtype float32 is for static projections")
        self.target = target
        self.rule = rule
        rng = rng if rng is not None else np.random.default_rng(0)
        pre_i, post_i = rule.pairs(pre.n, post.n, rng, same=pre is post)
        self.n_syn = pre_i.size
        w = draw(weight, self.n_syn, rng, f"projection '{name}': weight")
        d_ms = draw(delay, self.n_syn, rng, f"projection '{name}': delay")
        with np.errstate(over="ignore"):     # a huge delay overflows to inf: refused just below
            steps = np.rint(d_ms / dt)
        if self.n_syn and steps.min() < 1:
            raise ConfigError(f"projection '{name}': delay must be at least one step ({dt} ms), "
                              f"got {d_ms.min():g} ms")
        if self.n_syn and steps.max() > 32767:
            raise ConfigError(f"projection '{name}': delay {d_ms.max():g} ms exceeds 32767 steps")
        del d_ms
        steps = steps.astype(np.uint8 if self.n_syn == 0 or steps.max() < 256 else np.int16)
        # weights and delays are drawn (or given) in the rule's order; synapses are kept in
        # (pre, delay, post) order: by pre neuron, then delay, then post neuron (with one delay,
        # (pre, post)), repeated pairs in the given order (stable sorts), and every per-synapse
        # array moves with its pair. One canonical order is what lets a file that holds no
        # order (a NIR matrix) give back the same synapses in the same places; grouping a row
        # by delay lets the simulator add a group's events into one queue slot.
        order = _canonical_order(pre_i, post_i, steps)
        if order is not None:
            pre_i, post_i, w, steps = pre_i[order], post_i[order], w[order], steps[order]
        del order
        self.indptr = np.zeros(pre.n + 1, dtype=np.int64)
        self.indptr[1:] = np.bincount(pre_i, minlength=pre.n)
        np.cumsum(self.indptr, out=self.indptr)
        self.post_idx = post_i.astype(np.uint16 if post.n <= 1 << 16 else np.int32)
        del pre_i, post_i
        # float32: the weights are rounded once, here; every backend then adds the same numbers
        self.w = w.astype(np.float32) if weight_dtype == "float32" else w
        self.delay = steps
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


def _canonical_order(pre, post, delay):
    """The permutation to (pre, delay, post) order (stable), or None when already in it.

    Least significant key first, each sort stable: post, then delay, then pre. Narrow keys
    (uint8 / uint16) sort by radix, so the millions of synapses of a large projection sort in
    linear time.
    """
    if pre.size < 2:
        return None
    dp, dd = np.diff(pre), np.diff(delay.astype(np.int64))
    if not (np.any(dp < 0) or np.any((dp == 0) & (dd < 0)) or np.any((dp == 0) & (dd == 0) & (np.diff(post) < 0))):
        return None
    order = np.argsort(_narrow(post), kind="stable")
    order = order[np.argsort(delay[order], kind="stable")]
    return order[np.argsort(_narrow(pre)[order], kind="stable")]


def _narrow(idx):
    """Indices as the narrowest unsigned type that holds them (a radix sort for 16 bits)."""
    top = int(idx.max()) if idx.size else 0
    return idx.astype(np.uint16 if top < 1 << 16 else np.uint32 if top < 1 << 32 else np.int64)
