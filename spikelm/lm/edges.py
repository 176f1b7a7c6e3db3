"""Product edges (:class:`spikelm.lm.graph.ProductEdge`): dense products for the reference,
and their exact event-by-event (telescoping) updates for the runners.

With both factors changing in one step, ``d(a b) = da b_old + a_new db``: a spike of the
``a`` factor multiplies the ``b`` codes as they were before this step's spikes, a spike of
``b`` multiplies the ``a`` codes after them. The three kinds:

- ``scores`` (Q·K^T, read by a softmax population): a spike v of q[n, h dh + d] adds
  ``v k_old[j, g(h) dh + d]`` to S[h, j] for every visible key j <= n (n + 1 SynOps; with a
  sliding window only n - window < j <= n: min(n + 1, window) SynOps); a spike v of
  k[n, g dh + d] adds ``v q_new[n, h dh + d]`` to S[h, n] for each query head h of group g
  (heads / kv_heads SynOps);
- ``mix`` (A·V into ``out``): a spike v of att[n, h ctx + j] adds ``v v_old[j, g(h) dh : +dh]``
  to out's head-h channels (head_dim SynOps); a spike v of v[n, g dh + d] adds
  ``v att_new[n, h ctx + n]`` to out[h dh + d] for each query head h of group g;
- ``mul`` (elementwise a·b into ``out``): one SynOp per spike, either factor.

The Numba functions process one population's spikes of one step (``sp[lo:hi]`` are global
neuron indices, ``stepval`` their values) into the part of the target one thread owns, and
return the SynOps they did there (and the shifted ones among them).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from spikelm.lm.torch_optional import matmul

SCORES, MIX, MUL = 0, 1, 2
KIND_IDS = {"scores": SCORES, "mix": MIX, "mul": MUL}


#: values of the right factor :func:`imatmul` converts at a time
IMATMUL_BLOCK = 2**22


def imatmul(a: np.ndarray, b: np.ndarray, block: int = IMATMUL_BLOCK) -> np.ndarray:
    """Exact integer matrix product ``a @ b`` (batched like ``@`` over equal leading axes).

    Through float64 BLAS when every partial sum is below 2^53 (then each product and sum is
    exact, in any order); NumPy int64 otherwise. ``b`` is converted ``block`` values at a time,
    a block of its last axis each, with the bound taken per block: a 49k-row int16 head is
    never held at 8 bytes a weight."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b)
    top_a = float(np.abs(a).max(initial=0))
    af = None
    out = np.empty(a.shape[:-1] + b.shape[-1:], np.int64)
    step = max(1, block // max(b[..., :1].size, 1))
    for lo in range(0, b.shape[-1], step):
        part = b[..., lo : lo + step]
        top_b = float(max(-int(part.min(initial=0)), int(part.max(initial=0))))
        if top_a * top_b * a.shape[-1] >= 2.0**53:
            out[..., lo : lo + step] = a @ part.astype(np.int64)
        else:
            if af is None:
                af = a.astype(np.float64)
            out[..., lo : lo + step] = matmul(af, part.astype(np.float64))
    return out


def _by_head(x, L, heads, dh, group):
    """[L, kv_heads * dh] -> [heads, L, dh]: each query head's view of its key/value head."""
    kv = x.reshape(L, heads // group, dh).transpose(1, 0, 2)
    return kv[np.arange(heads) // group]


def reference(edge, a, b, n_positions: int) -> np.ndarray:
    """The dense product of codes ``a`` [L, ...] and ``b`` [L, ...] of all L positions.

    scores: int64 [L, heads, L] (row n: query n against every key; the causal mask is the
    softmax's); mix: [L, heads * head_dim]; mul: [L, size].
    """
    L = a.shape[0]
    H, dh, G = edge.heads, edge.head_dim, edge.group
    if edge.kind == "mul":
        return np.asarray(a, dtype=np.int64) * np.asarray(b, dtype=np.int64)
    if edge.kind == "scores":
        q = a.reshape(L, H, dh).transpose(1, 0, 2)
        k = _by_head(b, L, H, dh, G)
        return imatmul(q, k.transpose(0, 2, 1)).transpose(1, 0, 2)
    A = a.reshape(L, H, n_positions)[:, :, :L].transpose(1, 0, 2)  # [H, L, L]
    v = _by_head(b, L, H, dh, G)  # [H, L, dh]
    return imatmul(A, v).transpose(1, 0, 2).reshape(L, H * dh)


def first_key(window: int, n: int) -> int:
    """The first key a query at position n sees (0 without a window)."""
    return n + 1 - window if 0 < window < n + 1 else 0


def macs(edge, position: int) -> int:
    """Dense multiply-accumulates of the product at one position (causal: n + 1 keys, or the
    window's)."""
    if edge.kind == "mul":
        return edge.heads * edge.head_dim
    return (position + 1 - first_key(edge.window, position)) * edge.heads * edge.head_dim


# ---------------------------------------------------------------- Numba: one step's spikes of one factor
#
# Two sets. The whole-target kernels (``scores_a`` ...) serve the loop on one thread: every
# spike of a population costs the same SynOps there, so they return the SynOps alone and the
# loop counts shifted additions per spike. The ``*_part`` kernels serve a team of threads: each
# applies only the updates that land in the range of the target it is given (``lo_own`` to
# ``hi_own``: query heads of the scores, neurons of the product's output population) and
# returns the SynOps it did there and how many were shifted (a spike value other than ±1).
# One set with ranges would do for both, but clipping every spike to the range cost the
# one-thread loop 6 % of a unit-coded demo token (measured side by side; 2026-12-06).
# Both sets apply a spike through the same inlined helpers (``_q_spike``, ``_p_spike``), whose
# loops run over views from index 0: Numba then drops the negative-index check and the loop
# vectorises (a loop from a variable start measured 2x slower on Q spikes).


@njit(cache=True, inline="always")
def _q_spike(v, krow, srow, first, n, k_step):
    """One Q spike of value v into its head's scores: S[j] += v K[j] over the visible keys, the
    key at n as it was before this step's spike ``k_step`` of it. Views from the first key: a
    loop from 0 has no negative-index check, so it vectorises."""
    kwin = krow[first:n]
    swin = srow[first:n]
    for j in range(n - first):
        swin[j] += v * kwin[j]
    srow[n] += v * (np.int64(krow[n]) - k_step)


@njit(cache=True, inline="always")
def _p_spike(v, orow, vrow, stepval, vb, settled):
    """One attention-probability spike of value v into ``orow`` (views of equal length from 0):
    out += v V, with this position's V as it was before this step's spikes of it
    (``stepval[vb:]``)."""
    w = orow.shape[0]
    if settled:
        for c in range(w):
            orow[c] += v * vrow[c]
    else:
        sv = stepval[vb : vb + w]
        for c in range(w):
            orow[c] += v * (np.int64(vrow[c]) - sv[c])


@njit(cache=True)
def scores_a(sp, lo, hi, base, stepval, n, S, kcache, slot, b_off, dh, group, first):
    """Q spikes: S[h, j] += v k_old[j, c(h, d)] for first <= j <= n (first > 0: a sliding window)."""
    for t in range(lo, hi):
        g = sp[t]
        v = np.int64(stepval[g])
        i = g - base
        h = i // dh
        kc = (h // group) * dh + (i - h * dh)
        _q_spike(v, kcache[slot, kc], S[slot, h], first, n, stepval[b_off + kc])
    return (hi - lo) * (n + 1 - first)


@njit(cache=True)
def scores_b(sp, lo, hi, base, stepval, n, S, counts_n, slot, a_off, dh, group):
    """K spikes: S[h, n] += v q_new[n, h dh + d] for the query heads h of its group."""
    for t in range(lo, hi):
        g = sp[t]
        v = np.int64(stepval[g])
        i = g - base
        kv = i // dh
        d = i - kv * dh
        for h in range(kv * group, (kv + 1) * group):
            S[slot, h, n] += v * np.int64(counts_n[a_off + h * dh + d])
    return (hi - lo) * group


@njit(cache=True)
def mix_a(sp, lo, hi, base, stepval, n, acc, counts, b_off, out_off, dh, group, ctx):
    """Attention-probability spikes: out[h dh : +dh] += v v_old[j, head g(h)]."""
    for t in range(lo, hi):
        g = sp[t]
        v = np.int64(stepval[g])
        i = g - base
        h = i // ctx
        j = i - h * ctx
        vb = b_off + (h // group) * dh
        _p_spike(v, acc[out_off + h * dh : out_off + (h + 1) * dh], counts[j, vb : vb + dh], stepval, vb, j < n)
    return (hi - lo) * dh


@njit(cache=True)
def mix_b(sp, lo, hi, base, stepval, n, acc, counts_n, a_off, out_off, dh, group, ctx):
    """V spikes: out[h dh + d] += v att_new[n, h ctx + n] for the query heads h of its group."""
    for t in range(lo, hi):
        g = sp[t]
        v = np.int64(stepval[g])
        i = g - base
        kv = i // dh
        d = i - kv * dh
        for h in range(kv * group, (kv + 1) * group):
            acc[out_off + h * dh + d] += v * np.int64(counts_n[a_off + h * ctx + n])
    return (hi - lo) * group


@njit(cache=True)
def mul_a(sp, lo, hi, base, stepval, acc, counts_n, b_off, out_off):
    """Spikes of the left factor: out[c] += v b_old[c]."""
    for t in range(lo, hi):
        g = sp[t]
        i = g - base
        acc[out_off + i] += np.int64(stepval[g]) * (np.int64(counts_n[b_off + i]) - stepval[b_off + i])
    return hi - lo


@njit(cache=True)
def mul_b(sp, lo, hi, base, stepval, acc, counts_n, a_off, out_off):
    """Spikes of the right factor: out[c] += v a_new[c]."""
    for t in range(lo, hi):
        g = sp[t]
        i = g - base
        acc[out_off + i] += np.int64(stepval[g]) * np.int64(counts_n[a_off + i])
    return hi - lo


@njit(cache=True)
def reaches(kind, side, lo, hi, o_lo, o_hi, dh, group, ctx):
    """Whether spikes of a factor's neurons ``lo .. hi - 1`` (side 0: ``a``, 1: ``b``) can add
    into an output's part ``o_lo .. o_hi - 1`` (heads for scores, neurons otherwise): the
    edge's index map over the whole range, a superset where one spike reaches several. A
    thread skips another's spikes where this is False (:mod:`spikelm.lm.loop`)."""
    if hi <= lo:
        return False
    if kind == SCORES:
        if side == 0:  # q[h dh + d] -> S[h]
            a, z = lo // dh, (hi - 1) // dh + 1
        else:  # k[g dh + d] -> S[h] of each head h of group g
            a, z = (lo // dh) * group, ((hi - 1) // dh + 1) * group
    elif kind == MIX:
        if side == 0:  # att[h ctx + j] -> out[h dh : (h + 1) dh]
            a, z = (lo // ctx) * dh, ((hi - 1) // ctx + 1) * dh
        else:  # v[g dh + d] -> out[h dh + d] of each head h of group g
            a, z = (lo // dh) * group * dh, ((hi - 1) // dh + 1) * group * dh
    else:  # mul: out[c] from a[c], b[c]
        a, z = lo, hi
    return a < o_hi and o_lo < z


@njit(cache=True)
def scores_a_part(sp, lo, hi, base, stepval, n, S, kcache, slot, b_off, dh, group, first, lo_own, hi_own):
    """Q spikes: S[h, j] += v k_old[j, c(h, d)] for first <= j <= n (first > 0: a sliding window;
    heads h in [lo_own, hi_own))."""
    ops = 0
    shifted = 0
    for t in range(lo, hi):
        g = sp[t]
        i = g - base
        h = i // dh
        if h < lo_own or h >= hi_own:
            continue
        v = np.int64(stepval[g])
        kc = (h // group) * dh + (i - h * dh)
        _q_spike(v, kcache[slot, kc], S[slot, h], first, n, stepval[b_off + kc])
        ops += n + 1 - first
        if v != 1 and v != -1:
            shifted += n + 1 - first
    return ops, shifted


@njit(cache=True)
def scores_b_part(sp, lo, hi, base, stepval, n, S, counts_n, slot, a_off, dh, group, lo_own, hi_own):
    """K spikes: S[h, n] += v q_new[n, h dh + d] for the query heads h of its group (in [lo_own, hi_own))."""
    ops = 0
    shifted = 0
    for t in range(lo, hi):
        g = sp[t]
        v = np.int64(stepval[g])
        i = g - base
        kv = i // dh
        d = i - kv * dh
        h0 = max(kv * group, lo_own)
        h1 = min((kv + 1) * group, hi_own)
        for h in range(h0, h1):
            S[slot, h, n] += v * np.int64(counts_n[a_off + h * dh + d])
        if h1 > h0:
            ops += h1 - h0
            if v != 1 and v != -1:
                shifted += h1 - h0
    return ops, shifted


@njit(cache=True)
def mix_a_part(sp, lo, hi, base, stepval, n, acc, counts, b_off, out_off, dh, group, ctx, lo_own, hi_own):
    """Attention-probability spikes: out[h dh : +dh] += v v_old[j, head g(h)] (out neurons in [lo_own, hi_own))."""
    ops = 0
    shifted = 0
    for t in range(lo, hi):
        g = sp[t]
        v = np.int64(stepval[g])
        i = g - base
        h = i // ctx
        j = i - h * ctx
        c0 = max(0, lo_own - h * dh)
        c1 = min(dh, hi_own - h * dh)
        if c1 <= c0:
            continue
        vb = b_off + (h // group) * dh + c0  # the owned channels
        _p_spike(v, acc[out_off + h * dh + c0 : out_off + h * dh + c1], counts[j, vb : vb + c1 - c0], stepval, vb,
                 j < n)
        ops += c1 - c0
        if v != 1 and v != -1:
            shifted += c1 - c0
    return ops, shifted


@njit(cache=True)
def mix_b_part(sp, lo, hi, base, stepval, n, acc, counts_n, a_off, out_off, dh, group, ctx, lo_own, hi_own):
    """V spikes: out[h dh + d] += v att_new[n, h ctx + n] for the query heads h of its group (out
    neurons in [lo_own, hi_own))."""
    ops = 0
    shifted = 0
    for t in range(lo, hi):
        g = sp[t]
        v = np.int64(stepval[g])
        i = g - base
        kv = i // dh
        d = i - kv * dh
        m = 0
        for h in range(kv * group, (kv + 1) * group):
            c = h * dh + d
            if lo_own <= c < hi_own:
                acc[out_off + c] += v * np.int64(counts_n[a_off + h * ctx + n])
                m += 1
        ops += m
        if v != 1 and v != -1:
            shifted += m
    return ops, shifted


@njit(cache=True)
def mul_a_part(sp, lo, hi, base, stepval, acc, counts_n, b_off, out_off, lo_own, hi_own):
    """Spikes of the left factor: out[c] += v b_old[c] (c in [lo_own, hi_own))."""
    ops = 0
    shifted = 0
    for t in range(lo, hi):
        g = sp[t]
        i = g - base
        if i < lo_own or i >= hi_own:
            continue
        v = np.int64(stepval[g])
        acc[out_off + i] += v * (np.int64(counts_n[b_off + i]) - stepval[b_off + i])
        ops += 1
        if v != 1 and v != -1:
            shifted += 1
    return ops, shifted


@njit(cache=True)
def mul_b_part(sp, lo, hi, base, stepval, acc, counts_n, a_off, out_off, lo_own, hi_own):
    """Spikes of the right factor: out[c] += v a_new[c] (c in [lo_own, hi_own))."""
    ops = 0
    shifted = 0
    for t in range(lo, hi):
        g = sp[t]
        i = g - base
        if i < lo_own or i >= hi_own:
            continue
        v = np.int64(stepval[g])
        acc[out_off + i] += v * np.int64(counts_n[a_off + i])
        ops += 1
        if v != 1 and v != -1:
            shifted += 1
    return ops, shifted
