"""EI-IF (:mod:`spikelm.network.models.eiif`): ternary output, threshold growing with the window's t."""
from __future__ import annotations

import numpy as np
from numba import njit

from spikelm.network.models.eiif import C


@njit(cache=True)
def update(S, lo, hi, first, c, qe, qi, iext, t, key, fired):
    tl = c[C.t0] + (t - c[C.window_start])
    for i in range(np.uint64(lo), np.uint64(hi)):
        v = S[0, i] + (qe[i] + qi[i] + iext[i])
        qe[i] = 0.0
        qi[i] = 0.0
        theta = S[1, i] + S[2, i] * tl
        if v >= theta:
            fired[i] = 1
        elif v <= -theta:
            fired[i] = -1
        else:
            fired[i] = 0
        keep = 1.0 - S[3, i]
        if v > 0:
            v = max(0.0, v * keep)
        elif v < 0:
            v = min(0.0, v * keep)
        S[0, i] = v


@njit(cache=True)
def may_fire(S, lo, hi, c, t):
    tl = c[C.t0] + (t + 1 - c[C.window_start])
    for i in range(np.uint64(lo), np.uint64(hi)):
        if abs(S[0, i]) >= S[1, i] + S[2, i] * tl:
            return True
    return False
