"""Causal softmax of the integer Q·K^T accumulators, as integer probability codes.

For scores S_j of one query row (keys j <= n), with c = s_q s_k / sqrt(head_dim)::

    E_j = floor(exp(-c (max S - S_j)) 2^40 + 1/2)    (from two tables: exp(-c d) = hi[d >> k] lo[d & (2^k - 1)])
    code_j = floor((2 E_j q_max + Z) / (2 Z)),  Z = sum_j E_j

in integers; the tables are built once at conversion (:func:`tables`). Neurons are
heads x context per position (head h, key j at h * context + j); keys after n stay 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from spikelm.lm.ops.registry import Operator, register

FRAC_BITS = 40


@dataclass
class SoftmaxParams:
    hi: np.ndarray  # float64
    lo: np.ndarray  # float64 [2^shift]
    shift: int


def tables(c: float, dh: int, qk_max: int) -> SoftmaxParams:
    """exp(-c d) 2^40 for integer distances d = max S - S, as a product of two tables."""
    d_bound = 2 * qk_max * qk_max * dh + 1
    d_zero = math.ceil((FRAC_BITS + 2) * math.log(2) / c) if c > 0 else d_bound
    d_max = max(1, min(d_bound, d_zero))
    shift = max(1, math.ceil(math.log2(d_max + 1) / 2))
    lo = np.exp(-c * np.arange(2**shift, dtype=np.float64)) * 2.0**FRAC_BITS
    hi = np.exp(-c * np.arange((d_max >> shift) + 1, dtype=np.float64) * 2.0**shift)
    return SoftmaxParams(hi, lo, shift)


def softmax(scores, allowed, hi, lo, shift: int, qmax: int) -> np.ndarray:
    """Probability codes of integer scores [..., n] where ``allowed`` (the causal mask) (NumPy)."""
    S = np.asarray(scores, dtype=np.int64)
    m = np.where(allowed, S, np.iinfo(np.int64).min).max(-1, keepdims=True)
    dist = np.where(allowed, m - S, 0)
    h = dist >> np.int64(shift)
    inside = allowed & (h < hi.shape[0])
    h = np.where(inside, h, 0)
    E = np.floor(hi[h] * lo[dist & ((np.int64(1) << np.int64(shift)) - 1)] + 0.5).astype(np.int64)
    E = np.where(inside, E, 0)
    Z = E.sum(-1, keepdims=True)
    return (2 * E * qmax + Z) // (2 * Z)


@njit(cache=True)
def softmax_row(S, n, hi, lo, shift, qmax, out):
    """Probability codes of integer scores S[0..n] (the Numba twin of :func:`softmax`)."""
    m = S[0]
    for j in range(1, n + 1):
        if S[j] > m:
            m = S[j]
    mask = (np.int64(1) << shift) - 1
    Z = np.int64(0)
    for j in range(n + 1):
        dist = m - S[j]
        h = dist >> shift
        e = np.int64(0)
        if h < hi.shape[0]:
            e = np.int64(math.floor(hi[h] * lo[dist & mask] + 0.5))
        out[j] = e
        Z += e
    for j in range(n + 1):
        out[j] = (2 * out[j] * qmax + Z) // (2 * Z)


@njit(cache=True)
def _start(n, p, arg, struct, counts, acc, S, params, scratch):
    off, qmax = struct.off, struct.qmax
    hi, lo, shift, slot, heads = params
    b = off[p]
    H = heads[arg]
    ctx = (off[p + 1] - b) // H
    s = slot[arg]
    for h in range(H):
        softmax_row(S[s, h], n, hi[arg], lo[arg], shift[arg], qmax[p], scratch)
        for j in range(n + 1):
            acc[b + h * ctx + j] = scratch[j]
    return H * (n + 1)


class Softmax(Operator):
    name = "softmax"
    start = _start

    def evaluate(self, graph, pop, inputs, ctx):
        P = pop.params
        L, H, keys = ctx.scores.shape
        allowed = np.arange(keys)[None, :] <= ctx.positions[:, None]  # [L, keys]
        codes = softmax(ctx.scores, allowed[:, None, :], P.hi, P.lo, P.shift, pop.qmax)
        out = np.zeros((L, H, pop.size // H), np.int64)
        out[:, :, :keys] = codes
        return out.reshape(L, pop.size)

    def evaluations(self, graph, p, position):
        return graph.edges[graph.scores_edge(p)].heads * (position + 1)

    def pack(self, graph, pops):
        ps = [graph.pops[p].params for p in pops]
        hi = np.zeros((len(ps), max(len(q.hi) for q in ps)))
        lo = np.zeros((len(ps), max(len(q.lo) for q in ps)))
        for a, q in enumerate(ps):
            hi[a, : len(q.hi)] = q.hi  # zeros past a table's end: exp underflows to 0 there
            lo[a, : len(q.lo)] = q.lo
        slots = [scores_slot(graph, p) for p in pops]
        heads = [graph.edges[graph.scores_edge(p)].heads for p in pops]
        return (hi, lo, np.array([q.shift for q in ps], dtype=np.int64), np.array(slots, dtype=np.int64),
                np.array(heads, dtype=np.int64))


def scores_slot(graph, p: int) -> int:
    """The slot of the Q·K^T accumulators (rank of its edge among the scores edges) read by ``p``."""
    e = graph.scores_edge(p)
    return sum(1 for ed in graph.edges[:e] if ed.kind == "scores")


register(Softmax())
