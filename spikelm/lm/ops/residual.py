"""Residual sum of two or more code tensors in fixed point: clamp(floor((sum_i x_i M_i) / 2^k + 1/2)).

Two inputs are the usual ``x + f(x)``; three are a parallel residual (GPT-NeoX's
``use_parallel_residual``: ``x + attn(ln1(x)) + mlp(ln2(x))``, one rounding instead of two).
The products and their sum are int64 and exact, so the order of the terms does not matter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from spikelm.lm.ops.registry import Operator, clamp, register


@dataclass
class ResidualParams:
    gain: np.ndarray  # int64 [n_inputs] (or [n_inputs, d] per channel): M_i
    shift: int  # k


def residual(xs, gain, shift: int, qmin: int, qmax: int) -> np.ndarray:
    """Fixed-point sum of the code tensors ``xs`` (a list; NumPy)."""
    u = sum(np.asarray(x, dtype=np.int64) * gain[i] for i, x in enumerate(xs))
    return clamp((u + (np.int64(1) << np.int64(shift) >> 1)) >> np.int64(shift), qmin, qmax)


@njit(cache=True)
def _start(n, p, arg, struct, counts, acc, S, params, scratch, c_lo, c_hi):
    off, in_ptr, in_idx, qmin, qmax = struct.off, struct.in_ptr, struct.in_idx, struct.qmin, struct.qmax
    gain, shift = params
    first = in_ptr[p]
    k_in = in_ptr[p + 1] - first
    b = off[p]
    k = shift[arg]
    half = (np.int64(1) << k) >> 1
    for c in range(c_lo, c_hi):
        u = np.int64(0)
        for t in range(k_in):
            u += np.int64(counts[n, off[in_idx[first + t]] + c]) * gain[arg, t, c]
        u = (u + half) >> k
        if u < qmin[p]:
            u = qmin[p]
        elif u > qmax[p]:
            u = qmax[p]
        acc[b + c] = u
    return c_hi - c_lo


class Residual(Operator):
    name = "residual"
    start = _start

    def evaluate(self, graph, pop, inputs, ctx):
        P = pop.params
        return residual(inputs, P.gain, P.shift, pop.qmin, pop.qmax)

    def pack(self, graph, pops):
        # per-channel multipliers [n, inputs, d]; a per-tensor multiplier is broadcast over the channels
        d = max(graph.pops[p].size for p in pops)
        k = max(len(graph.pops[p].inputs) for p in pops)
        gain = np.zeros((len(pops), k, d), np.int64)
        for a, p in enumerate(pops):
            g = np.asarray(graph.pops[p].params.gain, dtype=np.int64)
            n_in = len(graph.pops[p].inputs)
            gain[a, :n_in] = g.reshape(n_in, -1) if g.ndim > 1 else g[:, None]
        return gain, np.array([graph.pops[p].params.shift for p in pops], dtype=np.int64)


register(Residual())
