"""An elementwise function of one code tensor as a lookup table over the input codes
(GELU, SiLU, ...): ``code = lut[x - q_min(input)]``, the table built at conversion."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from spikelm.lm.ops.registry import Operator, register


@dataclass
class TableParams:
    lut: np.ndarray  # [q_max(input) - q_min(input) + 1], the narrowest integer type holding it
    in_qmin: int

    def __post_init__(self):
        # a Llama SiLU table has 2^18 entries per layer: int32 instead of int64 halves it (the
        # operator reads its entries into int64 accumulators, the reference widens them)
        self.lut = narrowest(self.lut)


def narrowest(a) -> np.ndarray:
    """The integer array ``a`` in the narrowest of int8, int16, int32 and int64 that holds it."""
    a = np.asarray(a)
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    for t in (np.int8, np.int16, np.int32):
        if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max:
            return a.astype(t, copy=False)
    return a.astype(np.int64, copy=False)


@njit(cache=True)
def _start(n, p, arg, struct, counts, acc, S, params, scratch, c_lo, c_hi):
    off, in_ptr, in_idx = struct.off, struct.in_ptr, struct.in_idx
    lut, lo = params
    i = in_idx[in_ptr[p]]
    b = off[p]
    base = off[i]
    for c in range(c_lo, c_hi):
        acc[b + c] = lut[arg, np.int64(counts[n, base + c]) - lo[arg]]
    return c_hi - c_lo


class Table(Operator):
    name = "table"
    start = _start

    def evaluate(self, graph, pop, inputs, ctx):
        P = pop.params
        return P.lut[np.asarray(inputs[0], dtype=np.int64) - P.in_qmin].astype(np.int64)

    def pack(self, graph, pops):
        ps = [graph.pops[p].params for p in pops]
        lut = np.zeros((len(ps), max(len(q.lut) for q in ps)), np.result_type(*(q.lut.dtype for q in ps)))
        for a, q in enumerate(ps):
            lut[a, : len(q.lut)] = q.lut
        return lut, np.array([q.in_qmin for q in ps], dtype=np.int64)


register(Table())
