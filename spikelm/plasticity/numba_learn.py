"""The compiled learn phase, called by the numba time loop after the update phase."""
from __future__ import annotations

from numba import njit


@njit(cache=True)
def learn(t, out_idx, out_val, nout, S, w, indptr, post, delay, proj_ptr_off, proj_syn_off, proj_pre_lo,
          proj_post_lo, pop_lo, pop_hi, plast):
    if plast[0].size == 0:
        return
