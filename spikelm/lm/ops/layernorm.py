"""LayerNorm on integer codes; mean and variance from exact integer sums.

With input codes x (scale s_in) and output scale s_out::

    y_c = (d x_c - S1) / sqrt(d S2 - S1^2 + d^2 eps / s_in^2) * gain_c + bias_c,
    gain = gamma / s_out, bias = beta / s_out,  code_c = clamp(floor(y_c + 1/2))

S1, S2 are integer sums (exact in any order); the few floating-point operations are
elementwise IEEE operations in a fixed order, so NumPy and Numba agree bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from spikelm.lm.ops.registry import Operator, clamp, register


@dataclass
class LayerNormParams:
    gain: np.ndarray  # float64 [d]: gamma / s_out
    bias: np.ndarray  # float64 [d]: beta / s_out
    eps: float  # d^2 eps / s_in^2

    @classmethod
    def of(cls, gamma, beta, eps, s_in, s_out):
        d = len(gamma)
        return cls(gamma / s_out, beta / s_out, d * d * eps / (s_in * s_in))


def layernorm(x, gain, bias, eps_term: float, qmin: int, qmax: int) -> np.ndarray:
    """LayerNorm codes of integer codes ``x`` [..., d] (NumPy)."""
    x = np.asarray(x, dtype=np.int64)
    d = x.shape[-1]
    s1 = x.sum(-1, keepdims=True)
    s2 = (x * x).sum(-1, keepdims=True)
    denom = np.sqrt((d * s2 - s1 * s1).astype(np.float64) + eps_term)
    y = ((d * x - s1).astype(np.float64) / denom) * gain + bias
    return clamp(np.floor(y + 0.5), qmin, qmax)


@njit(cache=True)
def layernorm_row(x, gain, bias, eps, qmin, qmax, out):
    """LayerNorm codes of one row of integer codes (the Numba twin of :func:`layernorm`)."""
    d = x.shape[0]
    s1 = np.int64(0)
    s2 = np.int64(0)
    for c in range(d):
        xc = np.int64(x[c])
        s1 += xc
        s2 += xc * xc
    denom = math.sqrt(np.float64(d * s2 - s1 * s1) + eps)
    for c in range(d):
        y = (np.float64(d * np.int64(x[c]) - s1) / denom) * gain[c] + bias[c]
        y = math.floor(y + 0.5)
        if y < qmin:
            y = qmin
        elif y > qmax:
            y = qmax
        out[c] = np.int64(y)


@njit(cache=True)
def _start(n, p, arg, struct, counts, acc, S, params, scratch, c_lo, c_hi):
    off, in_ptr, in_idx, qmin, qmax = struct.off, struct.in_ptr, struct.in_idx, struct.qmin, struct.qmax
    gain, bias, eps = params
    i = in_idx[in_ptr[p]]
    b = off[p]
    layernorm_row(counts[n, off[i] : off[i + 1]], gain[arg], bias[arg], eps[arg], qmin[p], qmax[p], scratch)
    for c in range(c_lo, c_hi):
        acc[b + c] = scratch[c]
    return c_hi - c_lo


class LayerNorm(Operator):
    name = "layernorm"
    start = _start

    def evaluate(self, graph, pop, inputs, ctx):
        P = pop.params
        return layernorm(inputs[0], P.gain, P.bias, P.eps, pop.qmin, pop.qmax)

    def pack(self, graph, pops):
        ps = [graph.pops[p].params for p in pops]
        return (np.array([q.gain for q in ps]), np.array([q.bias for q in ps]), np.array([q.eps for q in ps]))


register(LayerNorm())
