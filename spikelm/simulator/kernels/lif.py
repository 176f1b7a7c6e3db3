"""LIF (:mod:`spikelm.network.models.lif`): exact integration, threshold, reset, refractory period."""
from __future__ import annotations

import numpy as np
from numba import njit

from spikelm.network.models.lif import C


@njit(cache=True)
def update(S, lo, hi, first, c, qe, qi, iext, t, key, fired):
    if c[C.uses_a] == 0.0:  # no adaptation and no rule on the threshold offset: `a` stays 0
        _pass(S, lo, hi, c, qe, qi, iext, fired, False)
    else:
        _pass(S, lo, hi, c, qe, qi, iext, fired, True)


@njit(cache=True, inline="always")
def _pass(S, lo, hi, c, qe, qi, iext, fired, adapt):
    e_l, v_th, v_reset, em, pe, pi = c[C.e_l], c[C.v_th], c[C.v_reset], c[C.em], c[C.pe], c[C.pi]
    de, di, ref_steps, ext = c[C.de], c[C.di], c[C.ref_steps], c[C.ext]
    delta_e, delta_i, alpha, da = c[C.delta_e], c[C.delta_i], c[C.alpha], c[C.da]
    exp_e = delta_e == 0.0
    exp_i = delta_i == 0.0
    # one branch-free pass (vectorisable); the time loop compacts the fired flags
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
        fired[i] = spk


@njit(cache=True)
def may_fire(S, lo, hi, c, t):
    v_th = c[C.v_th]
    if c[C.e_l] >= v_th:  # resting at or above threshold
        return True
    for i in range(np.uint64(lo), np.uint64(hi)):
        if S[3, i] > 0 or abs(S[1, i]) + abs(S[2, i]) > 1e-9 or S[0, i] >= v_th:
            return True
    return False
