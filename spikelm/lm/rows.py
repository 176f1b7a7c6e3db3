"""Held rows (docs/lm.md, "Held rows"): the compiled kernel that adds a row source's held
spikes into its weight rows once the source settles, called by the token loop
(:mod:`spikelm.lm.loop`)."""

from __future__ import annotations

import numpy as np
from numba import njit

from spikelm.lm.sync import prefetch

#: the bound of the row additions' int32 partial sums
INT32_TOP = 2**31 - 1
#: columns of a target the held rows are added into at a time
HELD_TILE = 4096
#: rows ahead of the one being added that add_held asks the cache for
HELD_AHEAD = 2


@njit(cache=True, nogil=True)
def add_held(dbuf, n_held, dsl, size, W, wbase, npost, c_lo, a, room, ps):
    """Add the held spikes of a row source (``n_held`` slots of ``dbuf`` from column ``dsl``, one
    per step) into ``a``, the columns from ``c_lo`` of one target: neuron by neuron, each spike
    its own row addition, in step order. A neuron's row is read from memory once and from cache
    for its next spikes; a wide target is taken ``HELD_TILE`` columns at a time, so that its
    sums stay in the first-level cache. With ``room`` > 0 the rows go into the int32 partial
    sums ``ps``, added into ``a`` (int64) every ``room`` spikes and at the end."""
    width_all = a.shape[0]
    line = max(64 // W.itemsize, 1)  # weights to a cache line
    for t0 in range(0, width_all, HELD_TILE):
        width = min(HELD_TILE, width_all - t0)
        at = a[t0 : t0 + width]
        pt = ps[t0 : t0 + width]
        held = 0
        for i in range(size):
            wo = wbase + i * npost + c_lo + t0
            w = W[wo : wo + width]
            if i + HELD_AHEAD < size:  # the row read next, while this one's spikes are added
                for c in range(wo + HELD_AHEAD * npost, wo + HELD_AHEAD * npost + width, line):
                    prefetch(W, c)
            for k in range(n_held):
                v = dbuf[k, dsl + i]
                if v == 0:
                    continue
                if room == 0:
                    if v == 1:
                        for c in range(width):
                            at[c] += w[c]
                    elif v == -1:
                        for c in range(width):
                            at[c] -= w[c]
                    else:
                        for c in range(width):
                            at[c] += v * w[c]
                    continue
                if held == room:
                    for c in range(width):
                        at[c] += pt[c]
                        pt[c] = 0
                    held = 0
                if v == 1:
                    for c in range(width):
                        pt[c] += w[c]
                elif v == -1:
                    for c in range(width):
                        pt[c] -= w[c]
                else:
                    for c in range(width):
                        pt[c] += v * np.int32(w[c])
                held += 1
        if room > 0:
            for c in range(width):
                at[c] += pt[c]
                pt[c] = 0
