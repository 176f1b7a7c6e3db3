"""Where a graph's neurons and weights lie in the executors' flat arrays, and how wide they are.

Shared by the executors and the learned state (:mod:`spikelm.lm.learn.state`), which reads
and writes the same flat arrays: :class:`Layout` (each population's neurons of one position),
:func:`flat_weights` (every projection's integer rows in one array) and :func:`acc_dtype`
(the narrowest exact accumulator).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np

from spikelm.lm.graph import LMGraph

@dataclass
class Layout:
    """Where each population's neurons of one position lie in the flat per-position arrays."""

    offsets: np.ndarray  # [P + 1]; the readout (last population) follows the spiking neurons
    n_spiking: int  # neurons per position that spike (all but the readout)

    @classmethod
    def of(cls, graph: LMGraph) -> "Layout":
        sizes = np.array([p.size for p in graph.pops], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        return cls(offsets, int(offsets[graph.readout]))

    def seg(self, p: int) -> slice:
        return slice(int(self.offsets[p]), int(self.offsets[p + 1]))


def acc_dtype(graph: LMGraph, learned: dict | None = None):
    """int32 accumulators where every partial sum fits (the fast path), else int64.

    A neuron's spikes spell its code with partial sums below twice the code range in every
    coding, so an accumulator stays below sum over inputs of 2 max|code| max|w| (rows), or
    2 max|a| max|b| (keys) for products; sum_j |W[j, c]| is taken per column. ``learned``
    maps projections whose weights may change (plasticity) to their largest |weight|."""
    top = 0.0
    learned = learned or {}
    mag = [float(max(abs(p.qmin), abs(p.qmax))) for p in graph.pops]
    bound = np.zeros(len(graph.pops))
    for k, pr in enumerate(graph.projections):  # the largest column's L1 norm
        col = column_l1_max(pr.weights)
        if k in learned:
            col = pr.weights.shape[0] * learned[k]
        bound[pr.post] += 2 * mag[pr.pre] * float(col)
    for ed in graph.edges:
        keys = graph.n_positions if ed.kind == "mix" else 1
        if ed.kind != "scores":
            bound[ed.out] += 2 * mag[ed.a] * mag[ed.b] * keys
    top = float(bound.max(initial=0))
    return np.int32 if top < 2.0**31 else np.int64


#: the largest column L1 norm of weight arrays seen, by the array's id while it lives (weights
#: are not changed in place: learning works on its own copies)
_COLUMN_L1: dict = {}


def column_l1_max(w: np.ndarray) -> int:
    """max_c sum_j |w[j, c]| of integer weights (cached per array: a runner is built per run)."""
    hit = _COLUMN_L1.get(id(w))
    if hit is not None and hit[0]() is w:
        return hit[1]
    wide = np.int16 if w.dtype.itemsize == 1 else np.int64  # |-128| does not fit int8
    top = int(np.abs(w, dtype=wide).sum(0, dtype=np.int64).max(initial=0)) if w.size else 0
    key = id(w)
    try:
        ref = weakref.ref(w, lambda _: _COLUMN_L1.pop(key, None))
    except TypeError:  # an array type that takes no weak reference
        return top
    _COLUMN_L1[key] = (ref, top)
    return top


def _flat_dtype(graph: LMGraph):
    wide = any(pr.weights.dtype.itemsize > 1 for pr in graph.projections)  # 9-16-bit weights
    return np.int16 if wide else np.int8


def _one_dtype(graph: LMGraph) -> bool:
    """Whether every projection's weights already have the flat array's type (packing then
    changes no array's type, hence no fingerprint)."""
    dtype = _flat_dtype(graph)
    return all(pr.weights.dtype == dtype for pr in graph.projections)


def pack_weights(graph: LMGraph) -> None:
    """Store every projection's integer rows in one flat array (graph order; int8, or int16
    where any weight is wider), each projection's ``weights`` a view of it, so that the
    compiled runner reads them in place (:func:`flat_weights`) instead of holding a second copy.
    Projections are copied one at a time, so the peak is one projection above the weights.
    Graphs whose projections mix integer types are left as they are (the runner copies them)."""
    W, woff = _packed(graph)
    if W is not None or not _one_dtype(graph):
        return
    dtype = _flat_dtype(graph)
    sizes = [pr.weights.size for pr in graph.projections]
    flat = np.empty(sum(sizes), dtype)
    start = 0
    for pr, size in zip(graph.projections, sizes):
        view = flat[start : start + size].reshape(pr.weights.shape)
        view[...] = pr.weights
        pr.weights = view
        start += size


def _packed(graph: LMGraph):
    """(flat array, offsets) when the projections' weights are consecutive views of one flat array."""
    prs = graph.projections
    if not prs:
        return None, None
    base = prs[0].weights.base
    if not (isinstance(base, np.ndarray) and base.ndim == 1 and base.dtype == _flat_dtype(graph)):
        return None, None
    offsets, start = [], 0
    for pr in prs:
        w = pr.weights
        if w.base is not base or not w.flags.c_contiguous or \
                w.__array_interface__["data"][0] != base.__array_interface__["data"][0] + start * base.itemsize:
            return None, None
        offsets.append(start)
        start += w.size
    if start != base.size:
        return None, None
    return base, np.array(offsets, np.int64)


def flat_weights(graph: LMGraph, shared: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Every projection's integer rows in one flat array (graph order; int8, or int16 where any
    weight is wider) and each projection's offset in it: a copy (learning changes it), or with
    ``shared`` the packed array itself when the graph's weights are packed
    (:func:`pack_weights`; read only)."""
    W, woff = _packed(graph)
    if W is not None:
        return (W, woff) if shared else (W.copy(), woff)
    W = np.concatenate([pr.weights.reshape(-1) for pr in graph.projections]).astype(_flat_dtype(graph))
    sizes = [pr.weights.size for pr in graph.projections]
    return W, np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
