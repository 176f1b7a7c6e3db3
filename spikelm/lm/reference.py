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


@dataclass
class Reference:
    """Result of the dense reference on one sequence.

    logits: float64 [L, vocab]; codes: population name -> int64 [L, neurons per position];
    head_acc: the readout's integer accumulators [L, vocab] (None for logits alone:
    ``keep_codes=False``).
    """

    logits: np.ndarray
    codes: dict
    head_acc: np.ndarray


def logits(graph: LMGraph, acc, in_place: bool = False) -> np.ndarray:
    """Logits read from the readout's integer accumulators: acc * scale + bias (float64), soft-capped
    when the readout says so (row by row: every executor calls tanh on the same rows).

    ``in_place``: ``acc`` (a C-contiguous int64 array the caller gives up) is turned into the
    logits in its own memory, row by row (a float64 has the int64's 8 bytes), instead of a copy
    beside it: the same values, in half the memory at the peak (SmolLM2, 512 positions: 0.2 GB)."""
    head = graph.pops[graph.readout].params
    if in_place and isinstance(acc, np.ndarray) and acc.dtype == np.int64 and acc.flags.c_contiguous:
        z = acc.view(np.float64)
        flat, zf = acc.reshape(-1, acc.shape[-1]), z.reshape(-1, acc.shape[-1])
        for r in range(flat.shape[0]):
            zf[r] = flat[r].astype(np.float64)  # (the row converted aside, then written over itself)
    else:
        z = np.array(acc, dtype=np.float64)  # a copy, scaled in place: [L, vocab] is held twice at most
    z *= head.scale
    z += head.bias
    cap = head.softcap
    if cap:
        rows = z.reshape(-1, z.shape[-1])
        z = np.stack([cap * np.tanh(r / cap) for r in rows]).reshape(z.shape)
    return z


def accumulate(graph: LMGraph, p: int, codes: dict, L: int) -> np.ndarray:
    """The integer accumulators [L, size] of accumulating population ``p``: its projections'
    products and its product edges, summed into the first of them (each a fresh array; no
    zeros beside them: the readout's are [L, vocab])."""
    pop = graph.pops[p]
    proj, prods = graph.into(p)

    def terms():
        for k in proj:
            pr = graph.projections[k]
            yield E.imatmul(codes[graph.pops[pr.pre].name], pr.weights)
        for e in prods:
            ed = graph.edges[e]
            yield E.reference(ed, codes[graph.pops[ed.a].name], codes[graph.pops[ed.b].name], graph.n_positions)

    acc = None
    for term in terms():
        if acc is None:
            acc = np.ascontiguousarray(term, dtype=np.int64)  # (a transposed product: copied once)
        else:
            acc += term
    return np.zeros((L, pop.size), np.int64) if acc is None else acc.reshape(L, pop.size)


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
    if not keep_codes:  # logits alone: the accumulators become them, in place
        return Reference(logits(graph, head_acc, in_place=True), {}, None)
    kept = {k: v[P0:] for k, v in codes.items()}
    return Reference(logits(graph, head_acc), kept, head_acc)
