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
def held_sum(dbuf, n_held, j):
    """The value neuron column ``j`` of ``dbuf`` holds: its spikes of ``n_held`` slots summed."""
    v = 0
    for k in range(n_held):
        v += dbuf[k, j]
    return v


@njit(cache=True, nogil=True)
def add_held(dbuf, n_held, dsl, size, W, wbase, npost, c_lo, a, room, ps):
    """Add the held spikes of a row source (``n_held`` slots of ``dbuf`` from column ``dsl``, one
    per step) into ``a``, the columns from ``c_lo`` of one target: neuron by neuron, its spikes
    summed into one value and its row added once, times that value (the sum of the spikes' row
    additions, term for term: integer sums do not depend on their grouping). A neuron whose
    spikes sum to 0 adds nothing. While a row is added, the row of the next neuron but one that
    adds anything is asked for (``HELD_AHEAD``); a wide target is taken ``HELD_TILE`` columns at
    a time, so that its sums stay in the first-level cache. With ``room`` > 0 the rows go into
    the int32 partial sums ``ps``, added into ``a`` (int64) every ``room`` rows and at the end
    (``room``: how many rows of the largest |value| fit in int32)."""
    width_all = a.shape[0]
    line = max(64 // W.itemsize, 1)  # weights to a cache line
    for t0 in range(0, width_all, HELD_TILE):
        width = min(HELD_TILE, width_all - t0)
        at = a[t0 : t0 + width]
        pt = ps[t0 : t0 + width]
        held = 0
        for i in range(size):
            v = held_sum(dbuf, n_held, dsl + i)
            if v == 0:
                continue
            wo = wbase + i * npost + c_lo + t0
            w = W[wo : wo + width]
            ahead = i + HELD_AHEAD
            if ahead < size and held_sum(dbuf, n_held, dsl + ahead) != 0:  # read while this one is added
                for c in range(wo + HELD_AHEAD * npost, wo + HELD_AHEAD * npost + width, line):
                    prefetch(W, c)
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
                vi = np.int32(v)
                for c in range(width):
                    pt[c] += vi * np.int32(w[c])
            held += 1
        if room > 0:
            for c in range(width):
                at[c] += pt[c]
                pt[c] = 0


@njit(cache=True)
def row_accumulate(W, rows, signs, acc, repeats):
    """The machine's row-accumulation limit: acc += W[j, :] or -= W[j, :] for the given rows and
    signs, nothing else (the benchmark's yardstick for the synaptic phase)."""
    n = W.shape[1]
    for _ in range(repeats):
        for t in range(rows.shape[0]):
            j = rows[t]
            if signs[t] > 0:
                for c in range(n):
                    acc[c] += W[j, c]
            else:
                for c in range(n):
                    acc[c] -= W[j, c]
    return acc
