"""Causal softmax of the integer Q·K^T accumulators, as integer probability codes; optionally
over a sliding window of keys and of soft-capped scores.

For scores S_j of one query row (keys j <= n), with c = s_q s_k / sqrt(head_dim)::

    E_j = floor(exp(-c (max S - S_j)) 2^40 + 1/2)    (from two tables: exp(-c d) = hi[d >> k] lo[d & (2^k - 1)])
    code_j = floor((2 E_j q_max + Z) / (2 Z)),  Z = sum_j E_j

in integers; the tables are built once at conversion (:func:`tables`). Neurons are
heads x context per position (head h, key j at h * context + j); keys after n stay 0.

**Sliding window** (the ``window`` of the scores edge, :class:`~spikelm.lm.graph.ProductEdge`):
only keys n - window < j <= n take part; the others' codes are 0.

**Soft-capping** (Gemma 2: scores become ``cap tanh(c S / cap)``): each S_j is first mapped to
the integer code T_j of its capped value in units u = cap / N (N = :data:`SOFTCAP_LEVELS`)::

    T_j = #{t : thr_t <= S_j},   thr_t = ceil(cap / c atanh((t - N - 1/2) / N)),  t = 1 .. 2N

(an integer search in a table built at conversion: :func:`softcap_tables`), then the softmax
above runs on T with c = u. T is round(cap tanh(c S / cap) / u) + N, so the capped scores are
exact to u / 2 (a probability to 1 + u / 2, 0.15 % at cap 50), and NumPy and Numba compare
the same integers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from spikelm.lm.ops.registry import Operator, register

FRAC_BITS = 40
#: the soft-capped scores' codes run over -N .. N in units cap / N
SOFTCAP_LEVELS = 2**14


@dataclass
class SoftmaxParams:
    hi: np.ndarray  # float64
    lo: np.ndarray  # float64 [2^shift]
    shift: int
    cap: np.ndarray | None = None  # int64 [2N]: the soft-cap's thresholds thr_t (None: not capped)


def _exp_tables(c: float, d_bound: int) -> SoftmaxParams:
    d_zero = math.ceil((FRAC_BITS + 2) * math.log(2) / c) if c > 0 else d_bound
    d_max = max(1, min(d_bound, d_zero))
    shift = max(1, math.ceil(math.log2(d_max + 1) / 2))
    lo = np.exp(-c * np.arange(2**shift, dtype=np.float64)) * 2.0**FRAC_BITS
    hi = np.exp(-c * np.arange((d_max >> shift) + 1, dtype=np.float64) * 2.0**shift)
    return SoftmaxParams(hi, lo, shift)


def tables(c: float, dh: int, qk_max: int) -> SoftmaxParams:
    """exp(-c d) 2^40 for integer distances d = max S - S, as a product of two tables."""
    return _exp_tables(c, 2 * qk_max * qk_max * dh + 1)


def softcap_tables(c: float, cap: float, levels: int = SOFTCAP_LEVELS) -> SoftmaxParams:
    """The tables of the softmax of soft-capped scores ``cap tanh(c S / cap)`` (module docstring)."""
    t = np.arange(1, 2 * levels + 1, dtype=np.float64) - levels - 0.5
    thr = np.ceil(cap / c * np.arctanh(t / levels))
    thr = np.clip(thr, -(2.0**62), 2.0**62).astype(np.int64)
    P = _exp_tables(cap / levels, 2 * levels)
    return SoftmaxParams(P.hi, P.lo, P.shift, thr)


def capped(scores, cap: np.ndarray) -> np.ndarray:
    """The soft-capped scores' codes T (0 .. 2N) of integer scores (NumPy)."""
    return np.searchsorted(cap, np.asarray(scores, dtype=np.int64), side="right").astype(np.int64)


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
def softmax_row(S, n, hi, lo, shift, qmax, out, first=0):
    """Probability codes of integer scores S[first..n] into out[first..n] (the Numba twin of
    :func:`softmax`; S and out may be one array)."""
    m = S[first]
    for j in range(first + 1, n + 1):
        if S[j] > m:
            m = S[j]
    mask = (np.int64(1) << shift) - 1
    Z = np.int64(0)
    for j in range(first, n + 1):
        dist = m - S[j]
        h = dist >> shift
        e = np.int64(0)
        if h < hi.shape[0]:
            e = np.int64(math.floor(hi[h] * lo[dist & mask] + 0.5))
        out[j] = e
        Z += e
    for j in range(first, n + 1):
        out[j] = (2 * out[j] * qmax + Z) // (2 * Z)


@njit(cache=True)
def softmax_rows(S, positions, window, hi, lo, shift, qmax, out):
    """:func:`softmax_row` for every query row of scores S [L, heads, keys] (query i at absolute
    position ``positions[i]`` sees keys up to it, the last ``window`` of them with a window)
    into out [L, heads, >= keys], zeros elsewhere: the dense reference's softmax in the
    executors' own arithmetic, without NumPy's [L, heads, keys] temporaries."""
    for i in range(S.shape[0]):
        n = positions[i]
        first = 0
        if window > 0 and n + 1 > window:
            first = n + 1 - window
        for h in range(S.shape[1]):
            softmax_row(S[i, h], n, hi, lo, shift, qmax, out[i, h], first)


@njit(cache=True)
def capped_nb(cap, ncap, s):
    """#{t < ncap : cap[t] <= s} (the Numba twin of :func:`capped`, one score)."""
    a = 0
    b = ncap
    while a < b:
        mid = (a + b) >> 1
        if cap[mid] <= s:
            a = mid + 1
        else:
            b = mid
    return np.int64(a)


@njit(cache=True)
def _start(n, p, arg, struct, counts, acc, S, params, scratch, c_lo, c_hi):
    off, qmax = struct.off, struct.qmax
    hi, lo, shift, slot, heads, window, cap, ncap = params
    b = off[p]
    H = heads[arg]
    ctx = (off[p + 1] - b) // H
    s = slot[arg]
    first = 0
    if window[arg] > 0 and n + 1 > window[arg]:
        first = n + 1 - window[arg]
    nc = ncap[arg]
    evals = 0
    for h in range(c_lo // ctx, min(H, -(-c_hi // ctx))):  # every head the range meets; its keys in the range
        row = S[s, h]
        if nc > 0:  # soft-capped: the scores' codes first, then the softmax on them in place
            for j in range(first, n + 1):
                scratch[j] = capped_nb(cap[arg], nc, row[j])
            softmax_row(scratch, n, hi[arg], lo[arg], shift[arg], qmax[p], scratch, first)
        else:
            softmax_row(row, n, hi[arg], lo[arg], shift[arg], qmax[p], scratch, first)
        j_lo = max(c_lo - h * ctx, 0)
        j_hi = min(c_hi - h * ctx, ctx)
        for j in range(j_lo, min(first, j_hi)):
            acc[b + h * ctx + j] = 0
        for j in range(max(first, j_lo), min(n + 1, j_hi)):
            acc[b + h * ctx + j] = scratch[j]
        evals += max(min(n + 1, j_hi) - max(first, j_lo), 0)
    return evals


def keys_seen(window: int, position: int) -> int:
    """Keys a query at ``position`` attends to (all ``position + 1`` without a window)."""
    return position + 1 if window <= 0 else min(position + 1, window)


class Softmax(Operator):
    name = "softmax"
    start = _start

    def evaluate(self, graph, pop, inputs, ctx):
        P = pop.params
        L, H = ctx.scores.shape[:2]
        window = graph.edges[graph.scores_edge(graph.index[pop.name])].window
        scores = ctx.scores if P.cap is None else capped(ctx.scores, P.cap)
        out = np.zeros((L, H, pop.size // H), np.int64)  # 0 where a key is not seen
        softmax_rows(np.ascontiguousarray(scores, dtype=np.int64), np.asarray(ctx.positions, dtype=np.int64),
                     int(window), np.asarray(P.hi, dtype=np.float64), np.asarray(P.lo, dtype=np.float64),
                     int(P.shift), int(pop.qmax), out)
        return out.reshape(L, pop.size)

    def evaluations(self, graph, p, position):
        ed = graph.edges[graph.scores_edge(p)]
        return ed.heads * keys_seen(ed.window, position)

    def pack(self, graph, pops):
        ps = [graph.pops[p].params for p in pops]
        hi = np.zeros((len(ps), max(len(q.hi) for q in ps)))
        lo = np.zeros((len(ps), max(len(q.lo) for q in ps)))
        for a, q in enumerate(ps):
            hi[a, : len(q.hi)] = q.hi  # zeros past a table's end: exp underflows to 0 there
            lo[a, : len(q.lo)] = q.lo
        ncap = np.array([0 if q.cap is None else len(q.cap) for q in ps], dtype=np.int64)
        cap = np.zeros((len(ps), max(1, int(ncap.max()))), np.int64)
        for a, q in enumerate(ps):
            if q.cap is not None:
                cap[a, : len(q.cap)] = q.cap
        slots = [scores_slot(graph, p) for p in pops]
        edges = [graph.edges[graph.scores_edge(p)] for p in pops]
        return (hi, lo, np.array([q.shift for q in ps], dtype=np.int64), np.array(slots, dtype=np.int64),
                np.array([ed.heads for ed in edges], dtype=np.int64),
                np.array([ed.window for ed in edges], dtype=np.int64), cap, ncap)


def scores_slot(graph, p: int) -> int:
    """The slot of the Q·K^T accumulators (rank of its edge among the scores edges) read by ``p``."""
    e = graph.scores_edge(p)
    return sum(1 for ed in graph.edges[:e] if ed.kind == "scores")


register(Softmax())
