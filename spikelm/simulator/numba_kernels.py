"""Numba twins of the neuron models' NumPy steps: one kernel per model, same operation order.

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
def lif_update(S, lo, hi, c, qe, qi, iext, t, out_idx, out_val, nout):
    e_l, v_th, v_reset, em, pe, pi = c[0], c[1], c[2], c[3], c[4], c[5]
    de, di, ref_steps, ext, delta_e, delta_i, alpha, da = c[6], c[7], c[8], c[9], c[10], c[11], c[12], c[13]
    for i in range(lo, hi):
        if delta_e == 0.0:
            S[1, i] += qe[i]
        if delta_i == 0.0:
            S[2, i] += qi[i]
        free = S[3, i] <= 0.0
        vn = e_l + (S[0, i] - e_l) * em + S[1, i] * pe + S[2, i] * pi + iext[i] * ext
        if delta_e != 0.0:
            vn = vn + qe[i]
        if delta_i != 0.0:
            vn = vn + qi[i]
        if free:
            S[0, i] = vn
        else:
            S[0, i] = v_reset
            S[3, i] = S[3, i] - 1.0
        S[1, i] *= de
        S[2, i] *= di
        S[4, i] *= da
        if free and S[0, i] >= v_th + S[4, i]:
            S[0, i] = v_reset
            S[3, i] = ref_steps
            S[4, i] += alpha
            out_idx[nout] = i
            out_val[nout] = 1
            nout += 1
    return nout


@njit(cache=True)
def lif_may_fire(S, lo, hi, c):
    for i in range(lo, hi):
        if S[3, i] > 0 or abs(S[1, i]) + abs(S[2, i]) > 1e-9 or S[0, i] >= c[1] + S[4, i]:
            return True
    return False


@njit(cache=True)
def eiif_update(S, lo, hi, c, qe, qi, iext, t, out_idx, out_val, nout):
    tl = c[0] + (t - c[1])
    for i in range(lo, hi):
        v = S[0, i] + (qe[i] + qi[i] + iext[i])
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
def eiif_may_fire(S, lo, hi, c):
    for i in range(lo, hi):
        if abs(S[0, i]) >= S[1, i]:
            return True
    return False


@njit(cache=True)
def izhikevich_update(S, lo, hi, c, qe, qi, iext, t, out_idx, out_val, nout):
    dt, v_peak, de, di = c[0], c[1], c[2], c[3]
    h = 0.5 * dt
    for i in range(lo, hi):
        S[2, i] += qe[i]
        S[3, i] += qi[i]
        cur = S[2, i] + S[3, i] + iext[i]
        v = S[0, i]
        u = S[1, i]
        v += h * (0.04 * v * v + 5.0 * v + 140.0 - u + cur)
        v += h * (0.04 * v * v + 5.0 * v + 140.0 - u + cur)
        u += dt * (S[4, i] * (S[5, i] * v - u))
        S[2, i] *= de
        S[3, i] *= di
        if v >= v_peak:
            v = S[6, i]
            u += S[7, i]
            out_idx[nout] = i
            out_val[nout] = 1
            nout += 1
        S[0, i] = v
        S[1, i] = u
    return nout


@njit(cache=True)
def signed_if_update(S, lo, hi, c, qe, qi, iext, t, out_idx, out_val, nout):
    q_min, q_max = c[0], c[1]
    for i in range(lo, hi):
        S[0, i] += qe[i] + qi[i] + iext[i]
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
def signed_if_may_fire(S, lo, hi, c):
    for i in range(lo, hi):
        d = S[0, i] - S[1, i]
        if (d >= 0.5 and S[1, i] < c[1]) or (d < -0.5 and S[1, i] > c[0]):
            return True
    return False
