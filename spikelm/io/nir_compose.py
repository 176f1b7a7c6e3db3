"""What reaches each NIR neuron node: the chains of Affine, Linear, Scale, Delay and pass-through
nodes between spike sources and neurons, composed into one weight matrix per path.

A neuron node's input is the sum, over its incoming edges, of the value its predecessor
carries. That value is a list of :class:`Term` (one per path from a spike source: an Input or
a neuron node) plus a constant vector (the biases of the Affine nodes on the way). A term is a
matrix ``M`` (outputs x source neurons) and delays, in steps, that are either per source neuron
(``pre``) or per output (``post``): a synapse j -> i of the path waits pre[j] + post[i] steps.
Paths stay separate (one spikelm projection each), so every weight keeps its exact value.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spikelm.errors import FileFormatError

from .nir_graph import LINEAR
from .nir_params import MS_PER_UNIT
from .nir_read import MAX_VALUES


@dataclass
class Term:
    """One path from spike source ``src`` (see module docstring); ``path``: the nodes on the way."""

    src: str
    M: np.ndarray
    pre: np.ndarray
    post: np.ndarray
    path: list = field(default_factory=list)


@dataclass
class Value:
    """What an edge carries: terms from spike sources plus a constant (bias) vector."""

    terms: list
    const: np.ndarray


class Composer:
    """Computes (and caches) the :class:`Value` each node of a flat graph sends on."""

    def __init__(self, graph, dt, time_unit):
        self.g = graph
        self.steps_per_unit = MS_PER_UNIT[time_unit] / dt
        self.cache = {}
        self.active = []

    def input_of(self, name) -> Value:
        """The value that arrives at node ``name``: the sum over its incoming edges."""
        n = self.g.nodes[name].size_in
        out = Value([], np.zeros(n))
        for p in self.g.preds(name):
            v = self.value(p)
            out.terms.extend(v.terms)
            out.const = out.const + v.const
        return out

    def value(self, name) -> Value:
        node = self.g.nodes[name]
        if node.kind not in LINEAR:  # a spike source: Input or neuron
            n = node.size_out
            return Value([Term(name, np.eye(n), np.zeros(n, np.int64), np.zeros(n, np.int64))], np.zeros(n))
        if name in self.cache:
            return self.cache[name]
        if name in self.active:
            loop = self.active[self.active.index(name):] + [name]
            raise FileFormatError(f"{self.g.source}: the loop {' -> '.join(repr(x) for x in loop)} has no neuron on "
                                  f"it: its value at a time depends on itself, which no step can compute")
        self.active.append(name)
        try:
            v = self._apply(node, self.input_of(name))
        finally:
            self.active.pop()
        self.cache[name] = v
        return v

    def _apply(self, node, v):
        where = self.g.where(node.name)
        p = node.params
        if node.kind == "Pass":
            terms, const = [Term(t.src, t.M, t.pre, t.post, t.path + [node.name]) for t in v.terms], v.const
        elif node.kind == "Scale":
            s = p["scale"]
            terms = [Term(t.src, s[:, None] * t.M, t.pre, t.post, t.path + [node.name]) for t in v.terms]
            const = s * v.const
        elif node.kind == "Delay":
            steps = np.rint(p["delay"] * self.steps_per_unit)
            if np.any(steps > 32767):
                raise FileFormatError(f"{where}: a delay of {p['delay'].max():g} is more than 32767 steps")
            if np.any(v.const != 0):
                raise FileFormatError(f"{where}: a bias passes through this Delay; spikelm cannot delay a constant "
                                      f"current")
            steps = steps.astype(np.int64)
            terms = [Term(t.src, t.M, t.pre + steps, t.post, t.path + [node.name]) if _diagonal(t.M) else
                     Term(t.src, t.M, t.pre, t.post + steps, t.path + [node.name]) for t in v.terms]
            const = v.const
        else:  # Affine, Linear
            w = p["weight"]
            terms = []
            for t in v.terms:
                if w.shape[0] * t.M.shape[1] > MAX_VALUES:
                    raise FileFormatError(f"{where}: composing it with the nodes before gives a {w.shape[0]} x "
                                          f"{t.M.shape[1]} matrix, more than spikelm builds")
                post = np.unique(t.post[np.any(t.M != 0, axis=1)]) if t.M.size else np.zeros(0)
                if post.size > 1:
                    raise FileFormatError(f"{where}: its inputs arrive with different delays per element (a Delay "
                                          f"node before it); a spikelm synapse has one delay, so put the Delay "
                                          f"after the last weight node of the path")
                shift = int(post[0]) if post.size else 0
                terms.append(Term(t.src, w @ t.M, t.pre, np.full(w.shape[0], shift, np.int64), t.path + [node.name]))
            const = w @ v.const + (p["bias"] if node.kind == "Affine" else 0.0)
        return Value(terms, const)


def _diagonal(m):
    """A square matrix with nothing off its diagonal: element i still is source neuron i."""
    return m.shape[0] == m.shape[1] and not np.any(m - np.diag(np.diag(m)))
