"""RMSNorm on integer codes with per-channel input scales.

For input codes x_c (scale s_c), output scales t_c and gain g_c::

    ms = sum_c x_c^2 Q_c              (int64, exact in any order; Q_c = round((s_c / s_ref)^2 2^F))
    y_c = x_c m_c / sqrt(ms u + eps)  (m_c = s_c g_c / t_c, u = s_ref^2 2^-F / d)
    code_c = clamp(floor(y_c + 1/2))

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

    @classmethod
    def of(cls, gamma, eps, s_in, s_out, in_qmax: int):
        d = len(gamma)
        s_in = np.broadcast_to(np.asarray(s_in, dtype=np.float64), (d,))
        s_out = np.broadcast_to(np.asarray(s_out, dtype=np.float64), (d,))
        ref = float(s_in.max())
        ratio2 = (s_in / ref) ** 2
        F = int(math.floor(62 - math.log2(float(in_qmax) ** 2 * float(ratio2.sum()) + 1)))
        F = max(0, min(F, 52))
        Q = np.floor(ratio2 * 2.0**F + 0.5).astype(np.int64)
        return cls(Q, ref * ref * 2.0**-F / d, float(eps), s_in * np.asarray(gamma, dtype=np.float64) / s_out)


def rmsnorm(x, P: RMSNormParams, qmin: int, qmax: int) -> np.ndarray:
    """RMSNorm codes of integer codes ``x`` [..., d] (NumPy)."""
    x = np.asarray(x, dtype=np.int64)
    ms = (x * x * P.weight).sum(-1, keepdims=True)
    denom = np.sqrt(ms.astype(np.float64) * P.unit + P.eps)
    y = (x.astype(np.float64) * P.gain) / denom
    return clamp(np.floor(y + 0.5), qmin, qmax)


@njit(cache=True)
def _start(n, p, arg, struct, counts, acc, S, params, scratch):
    off, in_ptr, in_idx, qmin, qmax = struct.off, struct.in_ptr, struct.in_idx, struct.qmin, struct.qmax
    weight, unit, eps, gain = params
    i = off[in_idx[in_ptr[p]]]
    b = off[p]
    size = off[p + 1] - b
    w = weight[arg]
    g = gain[arg]
    ms = np.int64(0)
    for c in range(size):
        x = np.int64(counts[n, i + c])
        ms += x * x * w[c]
    denom = math.sqrt(np.float64(ms) * unit[arg] + eps[arg])
    lo = qmin[p]
    hi = qmax[p]
    for c in range(size):
        y = math.floor((np.float64(counts[n, i + c]) * g[c]) / denom + 0.5)
        if y < lo:
            y = lo
        elif y > hi:
            y = hi
        acc[b + c] = np.int64(y)
    return size


class RMSNorm(Operator):
    name = "rmsnorm"
    start = _start

    def evaluate(self, graph, pop, inputs, ctx):
        return rmsnorm(inputs[0], pop.params, pop.qmin, pop.qmax)

    def pack(self, graph, pops):
        ps = [graph.pops[p].params for p in pops]
        return (np.array([q.weight for q in ps]), np.array([q.unit for q in ps]), np.array([q.eps for q in ps]),
                np.array([q.gain for q in ps]))


register(RMSNorm())
