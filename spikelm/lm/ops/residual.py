"""Residual sum of two code tensors in fixed point: clamp(floor((a M_a + b M_b) / 2^k + 1/2))."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from spikelm.lm.ops.registry import Operator, clamp, register


@dataclass
class ResidualParams:
    gain: np.ndarray  # int64 [2] (or [2, d] per channel): M_a, M_b
    shift: int  # k


def residual(a, b, gain, shift: int, qmin: int, qmax: int) -> np.ndarray:
    """Fixed-point sum of two code tensors (NumPy)."""
    u = np.asarray(a, dtype=np.int64) * gain[0] + np.asarray(b, dtype=np.int64) * gain[1]
    return clamp((u + (np.int64(1) << np.int64(shift) >> 1)) >> np.int64(shift), qmin, qmax)


@njit(cache=True)
def _start(n, p, arg, struct, counts, acc, S, params, scratch):
    off, in_ptr, in_idx, qmin, qmax = struct.off, struct.in_ptr, struct.in_idx, struct.qmin, struct.qmax
    gain, shift = params
    i0 = off[in_idx[in_ptr[p]]]
    i1 = off[in_idx[in_ptr[p] + 1]]
    b = off[p]
    size = off[p + 1] - b
    k = shift[arg]
    half = (np.int64(1) << k) >> 1
    g0 = gain[arg, 0]
    g1 = gain[arg, 1]
    for c in range(size):
        u = np.int64(counts[n, i0 + c]) * g0[c] + np.int64(counts[n, i1 + c]) * g1[c]
        u = (u + half) >> k
        if u < qmin[p]:
            u = qmin[p]
        elif u > qmax[p]:
            u = qmax[p]
        acc[b + c] = u
    return size


class Residual(Operator):
    name = "residual"
    start = _start

    def evaluate(self, graph, pop, inputs, ctx):
        P = pop.params
        return residual(inputs[0], inputs[1], P.gain, P.shift, pop.qmin, pop.qmax)

    def pack(self, graph, pops):
        # per-channel multipliers [n, 2, d]; a per-tensor pair is broadcast over the channels
        d = max(graph.pops[p].size for p in pops)
        gain = np.zeros((len(pops), 2, d), np.int64)
        for a, p in enumerate(pops):
            g = np.asarray(graph.pops[p].params.gain, dtype=np.int64)
            gain[a] = g.reshape(2, -1) if g.ndim > 1 else g[:, None]
        return gain, np.array([graph.pops[p].params.shift for p in pops], dtype=np.int64)


register(Residual())
