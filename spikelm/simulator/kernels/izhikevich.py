"""Izhikevich 2003 (:mod:`spikelm.network.models.izhikevich`): two half steps for v, then u."""
from __future__ import annotations

import numpy as np
from numba import njit

from spikelm.network.models.izhikevich import C


@njit(cache=True)
def update(S, lo, hi, first, c, qe, qi, iext, t, key, fired):
    dt, v_peak, de, di = c[C.dt], c[C.v_peak], c[C.de], c[C.di]
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
        fired[i] = spk


@njit(cache=True)
def may_fire(S, lo, hi, c, t):
    return True
