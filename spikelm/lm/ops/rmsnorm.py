"""RMSNorm on integer codes with per-channel input scales.

For input codes x_c (scale s_c), output scales t_c and gain g_c::

    ms = sum_c x_c^2 Q_c              (int64, exact in any order; Q_c = round((s_c / s_ref)^2 2^F))
    y_c = x_c m_c / sqrt(ms u + eps)  (m_c = s_c g_c / t_c, u = s_ref^2 2^-F / d)
    code_c = clamp(floor(y_c + 1/2))

With a ``group`` (Qwen3's and Gemma 3's q/k norms: one RMSNorm per attention head) the sum and
the denominator are taken over each run of ``group`` channels instead of all d (u then divides
by ``group``).

The only reduction is the integer sum; the floating-point operations are elementwise, in one
order, so NumPy and Numba agree bit for bit. F is as large as the code range allows
(``sum_c qmax^2 Q_c < 2^62``), so Q_c carries the scale ratios to many significant bits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from spikelm.lm.ops.registry import Operator, clamp, register


@dataclass
class RMSNormParams:
    weight: np.ndarray  # int64 [d]: Q_c
    unit: float  # u
    eps: float
    gain: np.ndarray  # float64 [d]: m_c
    group: int = 0  # channels per normalized run (0: all d)

    @classmethod
    def of(cls, gamma, eps, s_in, s_out, in_qmax: int, group: int = 0):
        d = len(gamma)
        s_in = np.broadcast_to(np.asarray(s_in, dtype=np.float64), (d,))
        s_out = np.broadcast_to(np.asarray(s_out, dtype=np.float64), (d,))
        ref = float(s_in.max())
        ratio2 = (s_in / ref) ** 2
        F = int(math.floor(62 - math.log2(float(in_qmax) ** 2 * float(ratio2.sum()) + 1)))
        F = max(0, min(F, 52))
        Q = np.floor(ratio2 * 2.0**F + 0.5).astype(np.int64)
        return cls(Q, ref * ref * 2.0**-F / (group or d), float(eps),
                   s_in * np.asarray(gamma, dtype=np.float64) / s_out, int(group))


def rmsnorm(x, P: RMSNormParams, qmin: int, qmax: int) -> np.ndarray:
    """RMSNorm codes of integer codes ``x`` [..., d] (NumPy)."""
    x = np.asarray(x, dtype=np.int64)
    d = x.shape[-1]
    k = P.group or d
    runs = (*x.shape[:-1], d // k, k)
    ms = (x * x * P.weight).reshape(runs).sum(-1, keepdims=True)
    denom = np.broadcast_to(np.sqrt(ms.astype(np.float64) * P.unit + P.eps), runs).reshape(x.shape)
    y = (x.astype(np.float64) * P.gain) / denom
    return clamp(np.floor(y + 0.5), qmin, qmax)


@njit(cache=True)
def _start(n, p, arg, struct, counts, acc, S, params, scratch, c_lo, c_hi):
    off, in_ptr, in_idx, qmin, qmax = struct.off, struct.in_ptr, struct.in_idx, struct.qmin, struct.qmax
    weight, unit, eps, gain, group = params
    i = off[in_idx[in_ptr[p]]]
    b = off[p]
    size = off[p + 1] - b
    w = weight[arg]
    g = gain[arg]
    k = group[arg]
    if k == 0:
        k = size
    lo = qmin[p]
    hi = qmax[p]
    for r in range(c_lo // k * k, c_hi, k):  # every run the range meets, summed whole
        ms = np.int64(0)
        for c in range(r, r + k):
            x = np.int64(counts[n, i + c])
            ms += x * x * w[c]
        denom = math.sqrt(np.float64(ms) * unit[arg] + eps[arg])
        for c in range(max(r, c_lo), min(r + k, c_hi)):
            y = math.floor((np.float64(counts[n, i + c]) * g[c]) / denom + 0.5)
            if y < lo:
                y = lo
            elif y > hi:
                y = hi
            acc[b + c] = np.int64(y)
    return c_hi - c_lo


class RMSNorm(Operator):
    name = "rmsnorm"
    start = _start

    def evaluate(self, graph, pop, inputs, ctx):
        return rmsnorm(inputs[0], pop.params, pop.qmin, pop.qmax)

    def pack(self, graph, pops):
        ps = [graph.pops[p].params for p in pops]
        size = max(len(q.weight) for q in ps)  # rows padded: per-head norms of q and k differ in size
        weight, gain = np.zeros((len(ps), size), np.int64), np.zeros((len(ps), size))
        for a, q in enumerate(ps):
            weight[a, : len(q.weight)] = q.weight
            gain[a, : len(q.gain)] = q.gain
        return (weight, np.array([q.unit for q in ps]), np.array([q.eps for q in ps]), gain,
                np.array([q.group for q in ps], dtype=np.int64))


register(RMSNorm())
