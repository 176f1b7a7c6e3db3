"""RoPE on integer codes: rotate each head's channel pairs (i, i + head_dim/2) by the angle of
the position (the rotate_half convention of Hugging Face's rotary models).

With input codes x (per-channel scales s_c) and one output scale t::

    a = x_i (s_i / t), b = x_{i+h} (s_{i+h} / t)              (h = head_dim / 2)
    code_i = clamp(floor(a cos_ni - b sin_ni + 1/2)), code_{i+h} = clamp(floor(b cos_ni + a sin_ni + 1/2))

cos/sin are tables [context, head_dim/2] built once at conversion, so NumPy and Numba read
the same numbers and do the same elementwise operations: bit for bit equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from spikelm.lm.ops.registry import Operator, clamp, register


@dataclass
class RopeParams:
    cos: np.ndarray  # float64 [context, head_dim / 2]
    sin: np.ndarray
    gain: np.ndarray  # float64 [size]: s_c / t
    head_dim: int


def rope(x, positions, P: RopeParams, qmin: int, qmax: int) -> np.ndarray:
    """RoPE codes of integer codes ``x`` [L, heads * head_dim] at ``positions`` (NumPy)."""
    L = x.shape[0]
    h = P.head_dim // 2
    v = (np.asarray(x, dtype=np.int64).astype(np.float64) * P.gain).reshape(L, -1, P.head_dim)
    a, b = v[..., :h], v[..., h:]
    c, s = P.cos[positions][:, None, :], P.sin[positions][:, None, :]
    y = np.concatenate([a * c - b * s, b * c + a * s], axis=-1).reshape(L, -1)
    return clamp(np.floor(y + 0.5), qmin, qmax)


def _fix(y, lo, hi):
    y = math.floor(y + 0.5)
    if y < lo:
        return lo
    if y > hi:
        return hi
    return np.int64(y)


_fix_nb = njit(cache=True, inline="always")(_fix)


@njit(cache=True)
def _start(n, p, arg, struct, counts, acc, S, params, scratch):
    off, in_ptr, in_idx, qmin, qmax = struct.off, struct.in_ptr, struct.in_idx, struct.qmin, struct.qmax
    cos, sin, gain, head_dim = params
    i = off[in_idx[in_ptr[p]]]
    b = off[p]
    size = off[p + 1] - b
    dh = head_dim[arg]
    h = dh // 2
    g = gain[arg]
    lo = qmin[p]
    hi = qmax[p]
    for base in range(0, size, dh):
        for j in range(h):
            c = cos[arg, n, j]
            s = sin[arg, n, j]
            x = np.float64(counts[n, i + base + j]) * g[base + j]
            y = np.float64(counts[n, i + base + j + h]) * g[base + j + h]
            acc[b + base + j] = _fix_nb(x * c - y * s, lo, hi)
            acc[b + base + j + h] = _fix_nb(y * c + x * s, lo, hi)
    return size


class Rope(Operator):
    name = "rope"
    start = _start

    def evaluate(self, graph, pop, inputs, ctx):
        return rope(inputs[0], ctx.positions, pop.params, pop.qmin, pop.qmax)

    def pack(self, graph, pops):
        ps = [graph.pops[p].params for p in pops]
        size = max(len(q.gain) for q in ps)
        gain = np.zeros((len(ps), size))
        for a, q in enumerate(ps):
            gain[a, : len(q.gain)] = q.gain
        return (np.array([q.cos for q in ps]), np.array([q.sin for q in ps]), gain,
                np.array([q.head_dim for q in ps], dtype=np.int64))


register(Rope())
