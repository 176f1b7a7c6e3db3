"""The dense reference executor (the QANN): codes computed population by population.

Every population's codes for all positions at once, in graph order: an accumulating
population sums its projections' integer matrix products and its product edges, then
requantizes; an operator population calls its operator (:mod:`spikelm.lm.ops`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikelm.lm import edges as E
from spikelm.lm import ops
from spikelm.lm.graph import ACCUMULATE, LMGraph
from spikelm.lm.neuron import requantize
from spikelm.lm.torch_optional import matmul

#: integer weights multiplied per block of columns
WEIGHT_BLOCK = 2**22


@dataclass
class Reference:
    """Result of the dense reference on one sequence.

    logits: float64 [L, vocab]; codes: population name -> int64 [L, neurons per position];
    head_acc: the readout's integer accumulators [L, vocab].
    """

    logits: np.ndarray
    codes: dict
    head_acc: np.ndarray


def logits(graph: LMGraph, acc) -> np.ndarray:
    """Logits read from the readout's integer accumulators: acc * scale + bias (float64), soft-capped
    when the readout says so (row by row: every executor calls tanh on the same rows)."""
    head = graph.pops[graph.readout].params
    z = np.array(acc, dtype=np.float64)  # a copy, scaled in place: [L, vocab] is held twice at most
    z *= head.scale
    z += head.bias
    cap = head.softcap
    if cap:
        rows = z.reshape(-1, z.shape[-1])
        z = np.stack([cap * np.tanh(r / cap) for r in rows]).reshape(z.shape)
    return z


def weighted_sum(x: np.ndarray, W: np.ndarray) -> np.ndarray:
    """The exact integer product of codes x [L, n_in] and integer weights W [n_in, n_out], as
    :func:`spikelm.lm.edges.imatmul` computes it (float64 BLAS when every partial sum stays
    below 2^53, else int64), in column blocks of W converted straight to float64: no int64
    copy, and a whole 49k-row head is never held at 8 bytes a weight."""
    x = np.asarray(x, dtype=np.int64)
    top_x = float(np.abs(x).max(initial=0))
    xf = x.astype(np.float64)
    out = np.empty((x.shape[0], W.shape[1]), np.int64)
    step = max(1, WEIGHT_BLOCK // max(W.shape[0], 1))
    for lo in range(0, W.shape[1], step):
        block = W[:, lo : lo + step]
        top_w = float(max(-int(block.min(initial=0)), int(block.max(initial=0))))
        if top_x * top_w * x.shape[-1] >= 2.0**53:
            out[:, lo : lo + step] = x @ block.astype(np.int64)
        else:
            out[:, lo : lo + step] = matmul(xf, block.astype(np.float64))
    return out


def accumulate(graph: LMGraph, p: int, codes: dict, L: int) -> np.ndarray:
    """The integer accumulators [L, size] of accumulating population ``p``."""
    pop = graph.pops[p]
    acc = np.zeros((L, pop.size), np.int64)
    proj, prods = graph.into(p)
    for k in proj:
        pr = graph.projections[k]
        acc += weighted_sum(codes[graph.pops[pr.pre].name], pr.weights)
    for e in prods:
        ed = graph.edges[e]
        acc += E.reference(ed, codes[graph.pops[ed.a].name], codes[graph.pops[ed.b].name], graph.n_positions)
    return acc


def last_reader(graph: LMGraph) -> list:
    """For each population, the last population (graph order) that reads its codes (-1: none)."""
    last = [-1] * len(graph.pops)
    for p, pop in enumerate(graph.pops):
        for q in pop.inputs:
            last[q] = max(last[q], p)
    for pr in graph.projections:
        last[pr.pre] = max(last[pr.pre], pr.post)
    for ed in graph.edges:
        last[ed.a], last[ed.b] = max(last[ed.a], ed.out), max(last[ed.b], ed.out)
    return last


def run_reference(graph: LMGraph, ids: np.ndarray, keep_codes: bool = True) -> Reference:
    """Codes and logits of the text ``ids`` (after the graph's constant prefix, if any: its
    positions come first, its K/V codes are the stored ones, and it yields no logits).

    ``keep_codes=False``: each population's codes are dropped once the last population that
    reads them is computed (``.codes`` is then empty): for logits alone, memory holds a few
    layers' codes instead of all (SmolLM2, 512 positions: 2.3 GB of int64 codes)."""
    P0 = graph.n_prefix
    if P0:
        ids = np.concatenate([graph.prefix.ids, ids]).astype(np.int64)
    L = len(ids)
    codes: dict[str, np.ndarray] = {}
    positions = np.arange(L)
    head_acc = None
    last = None if keep_codes else last_reader(graph)
    for p, pop in enumerate(graph.pops):
        if pop.op == ACCUMULATE:
            acc = accumulate(graph, p, codes, L)
            if not pop.spiking:
                head_acc = acc
                continue
            c = requantize(acc, pop.gain, pop.offset, pop.shift, pop.qmin, pop.qmax)
        else:
            scores = None
            e = graph.scores_into(p)  # an operator reading Q·K^T accumulators (a softmax)
            if e is not None:
                ed = graph.edges[e]
                scores = E.reference(ed, codes[graph.pops[ed.a].name], codes[graph.pops[ed.b].name],
                                     graph.n_positions)
            ctx = ops.OpContext(ids=ids, positions=positions, n_positions=graph.n_positions, scores=scores)
            c = ops.get(pop.op).evaluate(graph, pop, [codes[graph.pops[i].name] for i in pop.inputs], ctx)
        codes[pop.name] = np.asarray(c, dtype=np.int64)
        if P0 and pop.name in graph.prefix.codes:
            codes[pop.name][:P0] = graph.prefix.codes[pop.name]
        if last is not None:  # drop what no later population reads
            for name in [n for n in codes if last[graph.index[n]] <= p]:
                del codes[name]
    head_acc = head_acc[P0:]
    kept = {k: v[P0:] for k, v in codes.items()} if keep_codes else {}
    return Reference(logits(graph, head_acc), kept, head_acc)
