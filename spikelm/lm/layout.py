"""Where a graph's neurons and weights lie in the executors' flat arrays, and how wide they are.

Shared by the executors and the learned state (:mod:`spikelm.lm.learn.state`), which reads
and writes the same flat arrays: :class:`Layout` (each population's neurons of one position),
:func:`flat_weights` (every projection's integer rows in one array) and :func:`acc_dtype`
(the narrowest exact accumulator).
"""

from __future__ import annotations

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
        col = np.abs(pr.weights.astype(np.int64)).sum(0).max(initial=0) if pr.weights.size else 0
        if k in learned:
            col = pr.weights.shape[0] * learned[k]
        bound[pr.post] += 2 * mag[pr.pre] * float(col)
    for ed in graph.edges:
        keys = graph.n_positions if ed.kind == "mix" else 1
        if ed.kind != "scores":
            bound[ed.out] += 2 * mag[ed.a] * mag[ed.b] * keys
    top = float(bound.max(initial=0))
    return np.int32 if top < 2.0**31 else np.int64


def flat_weights(graph: LMGraph) -> tuple[np.ndarray, np.ndarray]:
    """Every projection's integer rows in one flat array (graph order; int8, or int16 where any
    weight is wider) and each projection's offset in it."""
    wide = any(pr.weights.dtype.itemsize > 1 for pr in graph.projections)  # 9-16-bit weights
    W = np.concatenate([pr.weights.reshape(-1) for pr in graph.projections]).astype(np.int16 if wide else np.int8)
    sizes = [pr.weights.size for pr in graph.projections]
    return W, np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
