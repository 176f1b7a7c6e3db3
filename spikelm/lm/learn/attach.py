"""Attach a plasticity file to a converted graph: neuron choices applied, rules resolved by index.

Projections are named by their target population (``h0.fc``) or as ``pre->post``; names may be
glob patterns (``h*.fc``). Each projection and population takes at most one rule and one neuron
choice: an exact name wins over patterns, two patterns matching one name are refused
(:func:`spikelm.plasticity.patterns.assign`). A rule that cannot act where it is put is refused,
naming the file and the field.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from spikelm.errors import ConfigError
from spikelm.lm.graph import LMGraph
from spikelm.lm.learn.config import NEEDS, RULE_NAMES, STDP, Plasticity, ReadoutError
from spikelm.plasticity.patterns import assign


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
    for pattern in plasticity.neurons:
        if pattern in graph.index and pattern not in spiking:
            raise ConfigError(f"{plasticity.source}: populations.{pattern}: population {pattern!r} does not spike "
                              "(it is the readout)")
    for name, pattern in assign(plasticity.neurons, spiking, f"{plasticity.source}: populations",
                                "spiking population").items():
        ch = plasticity.neurons[pattern]
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


def _named(patterns, names, spiking):
    """``names`` a pattern may match: the spiking ones, and the others only where named exactly
    (a glob passes over the readout; naming it is refused with a reason)."""
    return [n for n in names if n in spiking or n in patterns]


def attach(graph: LMGraph, plasticity: Plasticity | None) -> Attached:
    """Apply the file's neurons to ``graph`` and resolve its rules to indices, checking each.

    Names and patterns are resolved by :func:`spikelm.plasticity.patterns.assign`: an exact
    name wins over the patterns that also match it; two patterns matching one name are refused."""
    g = with_neurons(graph, plasticity)
    out = Attached(g)
    if plasticity is None:
        return out
    src = plasticity.source
    names = projection_names(g)
    posts = [g.pops[pr.post].name for pr in g.projections]
    live = {n for k, n in enumerate(names) if g.pops[g.projections[k].post].spiking}
    live_posts = {posts[k] for k, n in enumerate(names) if n in live}
    by_post = [p for p in plasticity.projections if "->" not in p]
    by_pair = [p for p in plasticity.projections if "->" in p]
    taken: dict = {}
    for patterns, keys, ok, what in ((by_post, posts, live_posts, "synaptic target"),
                                     (by_pair, names, live, "projection")):
        # the readout's rule acts on the projection into the readout, every other rule on those
        # into spiking populations: a pattern passes over what its rule cannot act on (naming
        # it exactly is refused with the reason, by _check_projection)
        readout_rules = [p for p in patterns if isinstance(plasticity.projections[p], ReadoutError)]
        step_rules = [p for p in patterns if p not in readout_rules]
        unique = list(dict.fromkeys(keys))
        for group, group_ok in ((step_rules, ok), (readout_rules, set(unique) - ok)):
            if not group:
                continue
            named = assign(group, _named(group, unique, group_ok), f"{src}: projections", what)
            for key, pattern in named.items():
                rule = plasticity.projections[pattern]
                where = f"{src}: projections.{pattern}.plasticity"
                for k in [k for k in range(len(names)) if keys[k] == key]:
                    _check_projection(g, k, rule, where)
                    if k in taken:
                        raise ConfigError(f"{where}: {names[k]} already has a rule from {taken[k]}")
                    taken[k] = where
                    into_readout = not g.pops[g.projections[k].post].spiking
                    (out.readout if into_readout else out.projections).append((k, where, rule))
    pops = [p.name for p in g.pops]
    spiking = {p.name for p in g.pops if p.spiking}
    named = assign(plasticity.populations, _named(plasticity.populations, pops, spiking), f"{src}: populations",
                   "population") if plasticity.populations else {}
    for name, pattern in named.items():
        rule = plasticity.populations[pattern]
        where = f"{src}: populations.{pattern}.plasticity"
        p = g.index[name]
        pop = g.pops[p]
        need = NEEDS[type(rule)]
        if not pop.spiking or pop.neuron != need:
            what = "a readout" if not pop.spiking else f"a {pop.neuron}"
            hint = f' (set neuron = "{need}")' if pop.spiking else ""
            raise ConfigError(f"{where}: rule '{RULE_NAMES[type(rule)]}' cannot act on {name}, {what} "
                              f"population; it applies to {need}{hint}")
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
