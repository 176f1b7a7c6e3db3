"""RoPE on integer codes: rotate each head's channel pairs (i, i + r/2) by the angle of the
position (the rotate_half convention of Hugging Face's rotary models), over the first r
channels of each head (``rotary_dim``; partial rotary, as GPT-NeoX's ``rotary_pct`` and
``partial_rotary_factor``: r < head_dim); the other channels pass through, rescaled.

With input codes x (per-channel scales s_c) and one output scale t::

    a = x_i (s_i / t), b = x_{i+h} (s_{i+h} / t)              (h = r / 2, i < h)
    code_i = clamp(floor(a cos_ni - b sin_ni + 1/2)), code_{i+h} = clamp(floor(b cos_ni + a sin_ni + 1/2))
    code_c = clamp(floor(x_c (s_c / t) + 1/2))                (r <= c < head_dim)

cos/sin are tables [context, r/2] built once at conversion, so NumPy and Numba read the same
numbers and do the same elementwise operations: bit for bit equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from spikelm.errors import ConfigError
from spikelm.lm.ops.registry import Operator, clamp, register


@dataclass
class RopeParams:
    cos: np.ndarray  # float64 [context, rotary_dim / 2]
    sin: np.ndarray
    gain: np.ndarray  # float64 [size]: s_c / t
    head_dim: int
    rotary_dim: int | None = None  # channels rotated per head (even, <= head_dim); None: all

    def __post_init__(self):
        r = self.rotated
        if r % 2 or not 0 < r <= self.head_dim or np.shape(self.cos)[-1:] != (r // 2,):
            raise ConfigError(f"rope: rotary_dim={r} with head_dim={self.head_dim} and cos tables of "
                              f"{np.shape(self.cos)[-1:]} columns; needs an even rotary_dim in 2..head_dim, tables of "
                              "rotary_dim / 2 columns")

    @property
    def rotated(self) -> int:
        return self.head_dim if self.rotary_dim is None else self.rotary_dim


def rope(x, positions, P: RopeParams, qmin: int, qmax: int) -> np.ndarray:
    """RoPE codes of integer codes ``x`` [L, heads * head_dim] at ``positions`` (NumPy)."""
    L = x.shape[0]
    r = P.rotated
    h = r // 2
    v = (np.asarray(x, dtype=np.int64).astype(np.float64) * P.gain).reshape(L, -1, P.head_dim)
    a, b = v[..., :h], v[..., h:r]
    c, s = P.cos[positions][:, None, :], P.sin[positions][:, None, :]
    y = np.concatenate([a * c - b * s, b * c + a * s, v[..., r:]], axis=-1).reshape(L, -1)
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
def _start(n, p, arg, struct, counts, acc, S, params, scratch, c_lo, c_hi):
    off, in_ptr, in_idx, qmin, qmax = struct.off, struct.in_ptr, struct.in_idx, struct.qmin, struct.qmax
    cos, sin, gain, head_dim, rotary_dim = params
    i = off[in_idx[in_ptr[p]]]
    b = off[p]
    dh = head_dim[arg]
    h = rotary_dim[arg] // 2
    g = gain[arg]
    lo = qmin[p]
    hi = qmax[p]
    for base in range(c_lo // dh * dh, c_hi, dh):  # every head the range meets; its channels in the range
        for j in range(h):
            c = cos[arg, n, j]
            s = sin[arg, n, j]
            x = np.float64(counts[n, i + base + j]) * g[base + j]
            y = np.float64(counts[n, i + base + j + h]) * g[base + j + h]
            if c_lo <= base + j < c_hi:
                acc[b + base + j] = _fix_nb(x * c - y * s, lo, hi)
            if c_lo <= base + j + h < c_hi:
                acc[b + base + j + h] = _fix_nb(y * c + x * s, lo, hi)
        for j in range(max(2 * h, c_lo - base), min(dh, c_hi - base)):  # partial rotary: past rotary_dim, as is
            acc[b + base + j] = _fix_nb(np.float64(counts[n, i + base + j]) * g[base + j], lo, hi)
    return c_hi - c_lo


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
                np.array([q.head_dim for q in ps], dtype=np.int64), np.array([q.rotated for q in ps], dtype=np.int64))


register(Rope())
