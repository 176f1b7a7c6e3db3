"""Attach a plasticity file to a converted graph: neuron choices applied, rules resolved by index.

Projections are named by their target population (``h0.fc``) or as ``pre->post``; names may be
glob patterns (``h*.fc``). Each projection and population takes at most one rule. A rule that
cannot act where it is put is refused, naming the file and the field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from spikelm.errors import ConfigError
from spikelm.lm.graph import LMGraph
from spikelm.lm.learn.config import NEEDS, RULE_NAMES, STDP, Plasticity, ReadoutError, match


@dataclass
class Attached:
    """A graph with the file's neuron choices, and its rules by index.

    projections: (projection index, where, rule) of the step rules (STDP, BrainGPT STDP);
    readout: the same of the readout's per-token rule (:class:`ReadoutError`; at most one);
    populations: (population index, where, rule).
    """

    graph: LMGraph
    projections: list = field(default_factory=list)
    populations: list = field(default_factory=list)
    readout: list = field(default_factory=list)


def weight_bound(graph: LMGraph, k: int) -> int:
    """The largest magnitude of projection k's integer weights (int8: 127; wider: the model's weight bits)."""
    w = graph.projections[k].weights
    if w.dtype.itemsize == 1:
        return 127
    bits = graph.meta.get("weight_bits")
    return 2 ** (int(bits) - 1) - 1 if bits else 32767


def projection_names(graph: LMGraph) -> list[str]:
    """``pre->post`` of every projection, in graph order."""
    return [f"{graph.pops[pr.pre].name}->{graph.pops[pr.post].name}" for pr in graph.projections]


def with_neurons(graph: LMGraph, plasticity: Plasticity | None) -> LMGraph:
    """A copy of ``graph`` whose populations use the neurons the file chose (weights shared)."""
    if plasticity is None or not plasticity.neurons:
        return graph
    pops = list(graph.pops)
    spiking = [p.name for p in graph.pops if p.spiking]
    for pattern, ch in plasticity.neurons.items():
        where = f"{plasticity.source}: populations.{pattern}"
        if pattern in graph.index and pattern not in spiking:
            raise ConfigError(f"{where}: population {pattern!r} does not spike (it is the readout)")
        for name in match(pattern, spiking, where, "spiking population"):
            p = graph.index[name]
            size = pops[p].size
            if ch.neuron == "eiif_exact":
                pops[p] = dataclasses.replace(pops[p], neuron="eiif_exact", unit=None, eiif=tuple(
                    np.full(size, v, np.float64) for v in (ch.theta_base, ch.alpha, ch.r)))
            else:
                unit = None if ch.unit == 1 else np.full(size, ch.unit, np.int64)
                pops[p] = dataclasses.replace(pops[p], neuron="signed_if", unit=unit, eiif=None)
    return LMGraph(config=graph.config, pops=pops, projections=graph.projections, edges=graph.edges,
                   n_positions=graph.n_positions, vocab_size=graph.vocab_size, meta=graph.meta, prefix=graph.prefix)


def attach(graph: LMGraph, plasticity: Plasticity | None) -> Attached:
    """Apply the file's neurons to ``graph`` and resolve its rules to indices, checking each."""
    g = with_neurons(graph, plasticity)
    out = Attached(g)
    if plasticity is None:
        return out
    src = plasticity.source
    names = projection_names(g)
    posts = [g.pops[pr.post].name for pr in g.projections]
    taken: dict = {}
    for pattern, rule in plasticity.projections.items():
        where = f"{src}: projections.{pattern}.plasticity"
        by_post = "->" not in pattern
        hits = match(pattern, sorted(set(posts)) if by_post else names, f"{src}: projections.{pattern}",
                     "synaptic target" if by_post else "projection")
        for h in hits:
            for k in [k for k in range(len(names)) if (posts[k] if by_post else names[k]) == h]:
                into_readout = not g.pops[g.projections[k].post].spiking
                if into_readout != isinstance(rule, ReadoutError) and h != pattern:
                    continue  # a pattern passes over what its rule cannot act on; naming it is refused below
                _check_projection(g, k, rule, where)
                if k in taken:
                    raise ConfigError(f"{where}: {names[k]} already has a rule from {taken[k]}")
                taken[k] = where
                (out.readout if into_readout else out.projections).append((k, where, rule))
    done: dict = {}
    for pattern, rule in plasticity.populations.items():
        where = f"{src}: populations.{pattern}.plasticity"
        names = [p.name for p in g.pops if p.spiking or p.name == pattern]  # patterns pass over the readout
        for name in match(pattern, names, f"{src}: populations.{pattern}", "population"):
            p = g.index[name]
            pop = g.pops[p]
            need = NEEDS[type(rule)]
            if not pop.spiking or pop.neuron != need:
                what = "a readout" if not pop.spiking else f"a {pop.neuron}"
                hint = f' (set neuron = "{need}")' if pop.spiking else ""
                raise ConfigError(f"{where}: rule '{RULE_NAMES[type(rule)]}' cannot act on {name}, {what} "
                                  f"population; it applies to {need}{hint}")
            if p in done:
                raise ConfigError(f"{where}: {name} already has a rule from {done[p]}")
            done[p] = where
            out.populations.append((p, where, rule))
    out.projections.sort(key=lambda t: t[0])
    out.populations.sort(key=lambda t: t[0])
    return out


def _check_projection(g: LMGraph, k: int, rule, where: str):
    pr = g.projections[k]
    post = g.pops[pr.post]
    if isinstance(rule, ReadoutError):
        if post.spiking:
            raise ConfigError(f"{where}: rule 'readout_error' cannot act on the projection into {post.name}; it "
                              f"applies to the projection into the readout, {g.pops[g.readout].name}")
        return
    if not post.spiking:
        raise ConfigError(f"{where}: the projection into {post.name} feeds the readout, which does not spike: "
                          "STDP has no post spikes there")
    if isinstance(rule, STDP):
        lo, hi = int(pr.weights.min(initial=0)), int(pr.weights.max(initial=0))
        if rule.w_min > lo:
            raise ConfigError(f"{where}.w_min: {rule.w_min} is above the smallest weight of {post.name} ({lo}; "
                              "weights are in integer units of each row)")
        if rule.w_max < hi:
            raise ConfigError(f"{where}.w_max: {rule.w_max} is below the largest weight of {post.name} ({hi}; "
                              "weights are in integer units of each row)")
