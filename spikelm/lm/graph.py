"""A converted language model as one graph: populations, synaptic projections, product edges.

Every activation of the quantized model is an :class:`LMPopulation` of SignedIF neurons: one
neuron per element per position (rows = positions). A population gets its input in one of
three ways, all explicit in the graph (nothing is derived from population order or names):

- **synaptic** (``op == "accumulate"``): integer weight rows of the :class:`LMProjection` s
  into it; a spike of value v from pre neuron j adds ``v W[j, :]`` to the post accumulators;
- **product** (``op == "accumulate"``, the ``out`` of a :class:`ProductEdge`): the
  accumulators of A·V or of an elementwise product, updated by the telescoping rule as both
  factors change (``d(ab) = da b_old + a_new db``);
- an **operator** (any other ``op``: ``embed``, ``layernorm``, ``softmax``, ``table``,
  ``residual``, ...): the population's codes are computed from the settled codes of its
  ``inputs`` by the operator of that name in :mod:`spikelm.lm.ops` (the softmax reads the
  Q·K^T accumulators of the ``scores`` edge whose ``out`` it is).

An accumulating neuron's potential is ``V = (acc M + B) / 2^k`` (``gain`` M and ``offset`` B
per neuron, ``shift`` k per population); an operator-fed neuron holds its code in ``acc``
(M = 1, B = 0, k = 0). At quiescence its spike count is ``clamp(floor(V + 1/2))``, the
reference code, whatever the spike coding. A readout population (``spiking=False``: the LM
head) only accumulates; the logits are read from it.

A population's ``neuron`` is ``signed_if`` (the exact quantizer neuron above; an optional
integer spike ``unit`` per neuron makes it fire spikes worth ``unit`` codes, toward
``unit round(V / unit)``) or ``eiif_exact`` (BrainGPT's EI-IF neuron, eq. 1, with
``theta_base``, ``alpha`` and ``r`` per neuron, in the variant that is exact at 1/2, 1, 1: t
counted from 0, the negative side strict; :mod:`spikelm.lm.learn.neurons`. The engine's
``eiif`` model is eq. 1 as printed). Both are shared by every position: a neuron here is one
channel of a population, the same at every token, as its weights are.

Populations are listed in a topological order (every input before its reader); the builders
(each family's ``build``, :mod:`spikelm.lm.families`) choose one, and any other topological
order runs the same.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from spikelm.errors import ConfigError
from spikelm.lm import ops
from spikelm.lm.codings import CODINGS

ACCUMULATE = "accumulate"

#: Product edge kinds: Q·K^T scores (read by a softmax population), A·V, elementwise a·b.
EDGE_KINDS = ("scores", "mix", "mul")
#: Neuron models of a spiking population (see the module docstring).
NEURONS = ("signed_if", "eiif_exact")


@dataclass
class LMPopulation:
    """One activation tensor of the quantized model as a population (see the module docstring).

    name: unique name (``h0.q``); layer: the layer its work is counted in (``emb``, ``h0``, ...,
    ``head``); op: ``"accumulate"`` or an operator name; size: neurons per position;
    qmin/qmax: the code range; scale: the value of one code (float, or per neuron);
    inputs: populations whose settled codes it needs before it starts (indices);
    params: the operator's parameters for this population (the operator's own type);
    gain/offset/shift: M, B, k of an accumulating population; spiking: False for a readout;
    coding: the spike coding of its neurons (:mod:`spikelm.lm.codings`); neuron: ``signed_if``
    or ``eiif_exact``; unit: int64 [size] spike units of a signed_if population (None: all 1,
    exact); eiif: (theta_base, alpha, r), float64 [size] each, of an eiif_exact population.
    """

    name: str
    layer: str
    op: str
    size: int
    qmin: int
    qmax: int
    scale: float | np.ndarray
    inputs: tuple[int, ...] = ()
    params: object = None
    gain: np.ndarray | None = None
    offset: np.ndarray | None = None
    shift: int = 0
    spiking: bool = True
    coding: str = "unit"
    neuron: str = "signed_if"
    unit: np.ndarray | None = None
    eiif: tuple | None = None

    @property
    def plain(self) -> bool:
        """True for plain SignedIF neurons (unit 1): the executors' fast path."""
        return self.neuron == "signed_if" and self.unit is None


@dataclass
class LMProjection:
    """Synaptic rows from ``pre`` to ``post``: int ``weights`` [n_pre, n_post]."""

    pre: int
    post: int
    weights: np.ndarray


@dataclass
class ProductEdge:
    """A product of two populations' codes, kept exact event by event (telescoping).

    kind ``scores``: S[h, n, j] = sum_d a[n, h dh + d] b[j, g(h) dh + d] for keys j <= n (a = Q,
    b = K, read by the softmax population ``out``); ``mix``: out[n, h dh + d] += sum_j a[n, h ctx + j]
    b[j, g(h) dh + d] (a = attention probabilities, b = V); ``mul``: out[n, c] += a[n, c] b[n, c].
    Grouped-query attention: query head h reads key/value head g(h) = h // (heads // kv_heads).
    ``window`` (scores and mix; 0: none): sliding-window attention, query n sees only keys
    n - window < j <= n (the softmax reads the scores edge's; the mix edge's counts its MACs).
    """

    kind: str
    a: int
    b: int
    out: int
    heads: int = 1
    kv_heads: int = 1
    head_dim: int = 1
    window: int = 0

    @property
    def group(self) -> int:
        return self.heads // self.kv_heads


@dataclass
class Prefix:
    """Positions before the text whose codes are constants of the converted model.

    The attention sink: a family's builder may start every sequence with ``ids`` (the BOS
    token), whose K and V codes were computed once from the float model. ``codes`` maps the
    populations read across positions (keys, values) to int64 [len(ids), size]; the
    executors preload them, so those positions never spike and produce no logits.
    """

    ids: np.ndarray
    codes: dict


@dataclass
class LMGraph:
    """Integer parameters and the population graph of a converted model; every executor reads
    only this. ``config`` is the source model's configuration; ``meta`` free-form conversion
    facts (bits, scales, coding) for reports and files."""

    config: object
    pops: list[LMPopulation]
    projections: list[LMProjection]
    edges: list[ProductEdge]
    n_positions: int
    vocab_size: int
    meta: dict = field(default_factory=dict)
    prefix: Prefix | None = None
    index: dict = field(default_factory=dict)

    def __post_init__(self):
        self.index = {p.name: i for i, p in enumerate(self.pops)}
        self.validate()

    def pop(self, name: str) -> LMPopulation:
        return self.pops[self.index[name]]

    @property
    def n_prefix(self) -> int:
        """Positions taken by the constant prefix (0 without one); text starts there."""
        return 0 if self.prefix is None else len(self.prefix.ids)

    def is_stimulus(self, p: int) -> bool:
        """Population ``p`` gets the token's codes from an operator the runner injects (the embedding)."""
        op = self.pops[p].op
        return op != ACCUMULATE and ops.get(op).stimulus

    @property
    def stimulus(self) -> int:
        """The population the token's codes are injected into (an operator with ``stimulus``)."""
        return next(i for i in range(len(self.pops)) if self.is_stimulus(i))

    @property
    def readout(self) -> int:
        """The population the logits are read from (the one that does not spike)."""
        return next(i for i, p in enumerate(self.pops) if not p.spiking)

    def into(self, p: int):
        """Projections and product edges (not scores) whose target is population ``p``."""
        return ([k for k, pr in enumerate(self.projections) if pr.post == p],
                [e for e, ed in enumerate(self.edges) if ed.out == p and ed.kind != "scores"])

    def scores_into(self, p: int) -> int | None:
        """The index of the scores edge whose accumulators population ``p`` reads, or None."""
        return next((e for e, ed in enumerate(self.edges) if ed.kind == "scores" and ed.out == p), None)

    def scores_edge(self, p: int) -> int:
        """The index of the scores edge read by population ``p`` (an error if there is none)."""
        e = self.scores_into(p)
        if e is None:
            raise ConfigError(f"population {self.pops[p].name!r}: no scores edge feeds it")
        return e

    @staticmethod
    def _check_neuron(p: LMPopulation):
        if p.neuron not in NEURONS:
            raise ConfigError(f"graph: population {p.name!r}: neuron={p.neuron!r}; allowed: {', '.join(NEURONS)}")
        if not p.plain and not p.spiking:
            raise ConfigError(f"graph: population {p.name!r} does not spike: it takes no neuron parameters")
        if p.unit is not None:
            u = np.asarray(p.unit)
            if p.neuron != "signed_if" or u.shape != (p.size,) or not np.issubdtype(u.dtype, np.integer) \
                    or (u < 1).any():
                raise ConfigError(f"graph: population {p.name!r}: unit must be {p.size} integers >= 1 "
                                  "of a signed_if population")
        if (p.neuron == "eiif_exact") != (p.eiif is not None):
            raise ConfigError(f"graph: population {p.name!r}: an eiif_exact population needs (theta_base, alpha, r), "
                              "and only it")
        if p.eiif is not None:
            th, al, r = (np.asarray(x, dtype=np.float64) for x in p.eiif)
            if any(x.shape != (p.size,) for x in (th, al, r)) or not all(np.isfinite(x).all() for x in (th, al, r)):
                raise ConfigError(f"graph: population {p.name!r}: theta_base, alpha, r must be {p.size} finite numbers")
            if (th < 0).any() or (al < 0).any() or (r < 0).any() or (r > 1).any():
                raise ConfigError(f"graph: population {p.name!r}: EI-IF needs theta_base >= 0, alpha >= 0, "
                                  "r in [0, 1]")

    @property
    def plain(self) -> bool:
        """True when every population has plain SignedIF neurons (no spike units, no EI-IF)."""
        return all(p.plain for p in self.pops)

    def validate(self):
        """Check the graph's invariants; a builder's mistake is a ConfigError naming the part."""
        if len(self.index) != len(self.pops):
            raise ConfigError("graph: population names are not unique")
        n = len(self.pops)
        for i, p in enumerate(self.pops):
            for j in p.inputs:
                if not 0 <= j < i:
                    raise ConfigError(f"graph: population {p.name!r} reads population {j}, which does not "
                                      "come before it (populations must be in a topological order)")
            if p.coding not in CODINGS:
                raise ConfigError(f"graph: population {p.name!r}: coding={p.coding!r}; allowed: {', '.join(CODINGS)}")
            self._check_neuron(p)
        if sum(self.is_stimulus(i) for i in range(n)) != 1 or sum(not p.spiking for p in self.pops) != 1:
            raise ConfigError("graph: needs exactly one stimulus population (an embedding) and one readout population")
        for pr in self.projections:
            if not (0 <= pr.pre < pr.post < n):
                raise ConfigError(f"graph: projection {pr.pre}->{pr.post} is not forward")
            if pr.weights.shape != (self.pops[pr.pre].size, self.pops[pr.post].size):
                raise ConfigError(f"graph: projection {self.pops[pr.pre].name}->{self.pops[pr.post].name} "
                                  f"has weights {pr.weights.shape}")
            if pr.pre not in self.pops[pr.post].inputs:
                raise ConfigError(f"graph: {self.pops[pr.post].name} must list {self.pops[pr.pre].name} as an input")
        for ed in self.edges:
            if ed.kind not in EDGE_KINDS:
                raise ConfigError(f"graph: edge kind {ed.kind!r}; allowed: {', '.join(EDGE_KINDS)}")
            if isinstance(ed.window, bool) or not isinstance(ed.window, (int, np.integer)) or ed.window < 0 \
                    or (ed.window and ed.kind == "mul"):
                raise ConfigError(f"graph: edge into {self.pops[ed.out].name}: window={ed.window!r}; allowed: an "
                                  "integer >= 0 on a scores or mix edge (0: every key)")
            if ed.heads % ed.kv_heads:
                raise ConfigError(f"graph: edge into {self.pops[ed.out].name}: kv_heads={ed.kv_heads} does "
                                  f"not divide heads={ed.heads}")
            out = self.pops[ed.out]
            if ed.a not in out.inputs or ed.b not in out.inputs:
                raise ConfigError(f"graph: {out.name} must list both factors of its product edge as inputs")
            if ed.kind != "scores" and out.op != ACCUMULATE:
                raise ConfigError(f"graph: {out.name} is the target of a {ed.kind} edge but is fed by {out.op}")
        if self.readout != n - 1:
            raise ConfigError("graph: the readout population must come last")
        if self.prefix is not None:
            P0 = len(self.prefix.ids)
            if not 0 < P0 < self.n_positions:
                raise ConfigError(f"graph: a prefix of {P0} positions leaves no room in a context of {self.n_positions}")
            for name, c in self.prefix.codes.items():
                if name not in self.index or np.shape(c) != (P0, self.pops[self.index[name]].size):
                    raise ConfigError(f"graph: prefix codes of {name!r} do not match a population of the graph")
        roles = {}
        for ed in self.edges:
            for p in (ed.a, ed.b):
                if p in roles:
                    raise ConfigError(f"graph: population {self.pops[p].name!r} is a factor of two product edges")
                roles[p] = ed


@dataclass
class ReadoutParams:
    """How logits are read from the readout's accumulators: ``acc * scale + bias`` (float64 [vocab]),
    then soft-capped as ``softcap tanh(z / softcap)`` when ``softcap`` > 0 (Gemma 2)."""

    scale: np.ndarray
    bias: np.ndarray
    softcap: float = 0.0


def plain_graph(graph: LMGraph) -> LMGraph:
    """The exact graph: plain SignedIF neurons everywhere (EI-IF populations fire unit coding)."""
    if graph.plain:
        return graph
    pops = [p if p.plain else dataclasses.replace(p, neuron="signed_if", unit=None, eiif=None,
                                                  coding="unit" if p.neuron == "eiif_exact" else p.coding)
            for p in graph.pops]
    return LMGraph(config=graph.config, pops=pops, projections=graph.projections, edges=graph.edges,
                   n_positions=graph.n_positions, vocab_size=graph.vocab_size, meta=graph.meta, prefix=graph.prefix)
