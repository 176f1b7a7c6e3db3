"""Numba twins of the neuron models' NumPy steps: one kernel per model, same operation order.

Each update clears the input slot entries (qe, qi) it consumed, so the time loop needs no
separate pass to clear the slot (sources take no input, so their entries stay zero).

Each ``<model>_update`` advances columns [lo, hi) of the state matrix ``S`` by one step,
appends the fired neurons (global index, value) to ``out_idx/out_val`` from position
``nout`` and returns the new ``nout``. ``<model>_may_fire`` mirrors the model's
``may_fire``. Expressions are written exactly as in the NumPy step so float results are
identical (no fastmath, no reassociation).
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def compact(flag, lo, hi, val, out_idx, out_val, nout):
    """Append the indices in [lo, hi) whose flag is set (value ``val``), in index order.

    Loops over neurons use unsigned indices: with signed ones Numba adds negative-index
    wrap-around checks that stop LLVM from vectorising (4-5x slower on LIF updates).
    Spikes are rare, so the flags are scanned eight at a time as 64-bit words.
    """
    i = lo
    while i < hi and i % 8 != 0:
        if flag[i]:
            out_idx[nout] = i
            out_val[nout] = val
            nout += 1
        i += 1
    words = flag.view(np.uint64)
    while i + 8 <= hi:
        if words[i // 8] != 0:
            for j in range(i, i + 8):
                if flag[j]:
                    out_idx[nout] = j
                    out_val[nout] = val
                    nout += 1
        i += 8
    while i < hi:
        if flag[i]:
            out_idx[nout] = i
            out_val[nout] = val
            nout += 1
        i += 1
    return nout


@njit(cache=True)
def lif_update(S, lo, hi, c, qe, qi, iext, t, flag, out_idx, out_val, nout):
    """LIF step; clears the input slots it reads (the numpy reference clears them after the update)."""
    if c[14] == 0.0:  # no adaptation and no rule on the threshold offset: `a` stays 0
        _lif_pass(S, lo, hi, c, qe, qi, iext, flag, False)
    else:
        _lif_pass(S, lo, hi, c, qe, qi, iext, flag, True)
    return compact(flag, lo, hi, 1, out_idx, out_val, nout)


@njit(cache=True, inline="always")
def _lif_pass(S, lo, hi, c, qe, qi, iext, flag, adapt):
    e_l, v_th, v_reset, em, pe, pi = c[0], c[1], c[2], c[3], c[4], c[5]
    de, di, ref_steps, ext, delta_e, delta_i, alpha, da = c[6], c[7], c[8], c[9], c[10], c[11], c[12], c[13]
    exp_e = delta_e == 0.0
    exp_i = delta_i == 0.0
    # one branch-free pass (vectorisable), then compaction of the fired flags
    for i in range(np.uint64(lo), np.uint64(hi)):
        ie = S[1, i]
        ii = S[2, i]
        ye = qe[i]
        yi = qi[i]
        qe[i] = 0.0
        qi[i] = 0.0
        if exp_e:
            ie += ye
        if exp_i:
            ii += yi
        ref = S[3, i]
        free = ref <= 0.0
        vn = e_l + (S[0, i] - e_l) * em + ie * pe + ii * pi + iext[i] * ext
        if not exp_e:
            vn = vn + ye
        if not exp_i:
            vn = vn + yi
        v = vn if free else v_reset
        ref = ref if free else ref - 1.0
        if adapt:
            a = S[4, i] * da
            spk = free & (v >= v_th + a)
            S[4, i] = a + alpha if spk else a
        else:  # a stays 0 and v_th + 0.0 == v_th
            spk = free & (v >= v_th)
        S[0, i] = v_reset if spk else v
        S[1, i] = ie * de
        S[2, i] = ii * di
        S[3, i] = ref_steps if spk else ref
        flag[i] = spk


@njit(cache=True)
def lif_may_fire(S, lo, hi, c, t):
    if c[0] >= c[1]:  # resting at or above threshold
        return True
    for i in range(np.uint64(lo), np.uint64(hi)):
        if S[3, i] > 0 or abs(S[1, i]) + abs(S[2, i]) > 1e-9 or S[0, i] >= c[1]:
            return True
    return False


@njit(cache=True)
def eiif_update(S, lo, hi, c, qe, qi, iext, t, flag, out_idx, out_val, nout):
    tl = c[0] + (t - c[1])
    for i in range(np.uint64(lo), np.uint64(hi)):
        v = S[0, i] + (qe[i] + qi[i] + iext[i])
        qe[i] = 0.0
        qi[i] = 0.0
        theta = S[1, i] + S[2, i] * tl
        if v >= theta:
            out_idx[nout] = i
            out_val[nout] = 1
            nout += 1
        elif v <= -theta:
            out_idx[nout] = i
            out_val[nout] = -1
            nout += 1
        keep = 1.0 - S[3, i]
        if v > 0:
            v = max(0.0, v * keep)
        elif v < 0:
            v = min(0.0, v * keep)
        S[0, i] = v
    return nout


@njit(cache=True)
def eiif_may_fire(S, lo, hi, c, t):
    tl = c[0] + (t + 1 - c[1])
    for i in range(np.uint64(lo), np.uint64(hi)):
        if abs(S[0, i]) >= S[1, i] + S[2, i] * tl:
            return True
    return False


@njit(cache=True)
def izhikevich_update(S, lo, hi, c, qe, qi, iext, t, flag, out_idx, out_val, nout):
    dt, v_peak, de, di = c[0], c[1], c[2], c[3]
    h = 0.5 * dt
    for i in range(np.uint64(lo), np.uint64(hi)):
        ie = S[2, i] + qe[i]
        ii = S[3, i] + qi[i]
        qe[i] = 0.0
        qi[i] = 0.0
        cur = ie + ii + iext[i]
        v = S[0, i]
        u = S[1, i]
        v += h * (0.04 * v * v + 5.0 * v + 140.0 - u + cur)
        v += h * (0.04 * v * v + 5.0 * v + 140.0 - u + cur)
        u += dt * (S[4, i] * (S[5, i] * v - u))
        S[2, i] = ie * de
        S[3, i] = ii * di
        spk = v >= v_peak
        S[0, i] = S[6, i] if spk else v
        S[1, i] = u + S[7, i] if spk else u
        flag[i] = spk
    return compact(flag, lo, hi, 1, out_idx, out_val, nout)


@njit(cache=True)
def signed_if_update(S, lo, hi, c, qe, qi, iext, t, flag, out_idx, out_val, nout):
    q_min, q_max = c[0], c[1]
    for i in range(np.uint64(lo), np.uint64(hi)):
        S[0, i] += qe[i] + qi[i] + iext[i]
        qe[i] = 0.0
        qi[i] = 0.0
        d = S[0, i] - S[1, i]
        if d >= 0.5 and S[1, i] < q_max:
            S[1, i] += 1.0
            out_idx[nout] = i
            out_val[nout] = 1
            nout += 1
        elif d < -0.5 and S[1, i] > q_min:
            S[1, i] -= 1.0
            out_idx[nout] = i
            out_val[nout] = -1
            nout += 1
    return nout


@njit(cache=True)
def signed_if_may_fire(S, lo, hi, c, t):
    for i in range(np.uint64(lo), np.uint64(hi)):
        d = S[0, i] - S[1, i]
        if (d >= 0.5 and S[1, i] < c[1]) or (d < -0.5 and S[1, i] > c[0]):
            return True
    return False
