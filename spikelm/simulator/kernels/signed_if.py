"""SignedIF (:mod:`spikelm.network.models.signed_if`): the conversion quantizer, at most one +-1 spike per step."""
from __future__ import annotations

import numpy as np
from numba import njit

from spikelm.network.models.signed_if import C


@njit(cache=True)
def update(S, lo, hi, first, c, qe, qi, iext, t, key, fired):
    q_min, q_max = c[C.q_min], c[C.q_max]
    for i in range(np.uint64(lo), np.uint64(hi)):
        S[0, i] += qe[i] + qi[i] + iext[i]
        qe[i] = 0.0
        qi[i] = 0.0
        d = S[0, i] - S[1, i]
        if d >= 0.5 and S[1, i] < q_max:
            S[1, i] += 1.0
            fired[i] = 1
        elif d < -0.5 and S[1, i] > q_min:
            S[1, i] -= 1.0
            fired[i] = -1
        else:
            fired[i] = 0


@njit(cache=True)
def may_fire(S, lo, hi, c, t):
    q_min, q_max = c[C.q_min], c[C.q_max]
    for i in range(np.uint64(lo), np.uint64(hi)):
        d = S[0, i] - S[1, i]
        if (d >= 0.5 and S[1, i] < q_max) or (d < -0.5 and S[1, i] > q_min):
            return True
    return False
