"""The operator registry: the :class:`Operator` base class, :func:`register` and :func:`get`.

An operator computes a population's codes from the settled codes of its input populations
(LayerNorm, softmax, tables such as GELU, residual sums, the embedding stimulus). Each kind
is one :class:`Operator` in its own module, holding side by side:

- ``evaluate``: the NumPy evaluation (the reference; also used by the NumPy runner);
- ``pack``: its parameters of all populations of that kind as a tuple of typed arrays;
- ``start``: its Numba twin for one position, called by the compiled token loop;
- ``macs``: multiply-accumulates the dense model spends on it (0 for elementwise work).

Adding an operator = adding a module that defines a subclass and calls :func:`register`
(plus its tests); the reference, both runners and the reports dispatch through here, and
the compiled loop is generated for the operators a graph uses (:mod:`spikelm.lm.compile`).

The Numba twin's signature is fixed::

    start(n, p, arg, struct, counts, acc, S, params, scratch, c_lo, c_hi) -> op evaluations

n: the position; p: the population; arg: its index among the populations of this kind (the
row of ``params``); struct: the graph's :class:`~spikelm.lm.bundles.OpGraph` (fields ``off``,
``in_ptr``, ``in_idx``, ``qmin``, ``qmax``; population p's
neurons of position n are ``acc[off[p]:off[p + 1]]``, its inputs are
``in_idx[in_ptr[p]:in_ptr[p + 1]]``, whose codes are ``counts[n, off[i]:off[i + 1]]``);
S: the Q·K^T accumulators [slot, head, key]; params: what ``pack`` returned; scratch: an
int64 work row (the calling thread's own). It writes the codes of neurons ``c_lo .. c_hi - 1``
of p (counted from its first) into ``acc``, and no others, and returns how many output
elements of that range it computed: the threads of a team each compute their own share of a
starting population, so the shares' counts must add up to the whole's (``evaluations``). A
reduction (a norm's sum, a softmax row) is computed whole by every share that needs it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikelm.errors import ConfigError


@dataclass
class OpContext:
    """What an operator may read besides its inputs' codes, for rows at ``positions``.

    ids: token ids of the rows; scores: the Q·K^T accumulators of the scores edge into the
    population, int64 [L, heads, keys] (None when no scores edge feeds it; the softmax reads
    them); n_positions: the model's context.
    """

    ids: np.ndarray
    positions: np.ndarray
    n_positions: int
    scores: np.ndarray | None = None


class Operator:
    """One operator kind (subclass it; see the module docstring)."""

    name = ""
    #: the Numba twin (an njit function with the fixed signature), or None where the compiled
    #: loop never starts this operator (the embedding: the runner injects it).
    start = None
    #: True for the graph's stimulus: the operator the runner evaluates when a token arrives
    #: and injects into its population (the embedding; a graph has exactly one)
    stimulus = False

    def evaluate(self, graph, pop, inputs: list, ctx: OpContext) -> np.ndarray:
        """Codes [L, pop.size] (int64) of the rows in ``ctx`` from the inputs' codes [L, size_i]."""
        raise NotImplementedError

    def pack(self, graph, pops: list) -> tuple:
        """Parameters of the populations ``pops`` (indices, in graph order) as a tuple of arrays;
        population ``pops[a]`` reads row ``a`` (its ``arg``)."""
        return (np.zeros(1, np.int64),)

    def evaluations(self, graph, p: int, position: int) -> int:
        """Output elements computed at one position (what ``start`` returns; default: all);
        also the activations the population holds there (:func:`spikelm.lm.report.activations`)."""
        return graph.pops[p].size

    def macs(self, graph, pop, position: int) -> int:
        """Dense multiply-accumulates of this operator at one position (default: none)."""
        return 0


_REGISTRY: dict[str, Operator] = {}


def register(op: Operator) -> Operator:
    """Add an operator kind; registering another object under a taken name is an error."""
    if not isinstance(op, Operator) or not op.name:
        raise ConfigError(f"register: {op!r} is not a named Operator")
    old = _REGISTRY.get(op.name)
    if old is not None and type(old) is not type(op):
        raise ConfigError(f"register: operator name {op.name!r} is taken by {type(old).__name__}")
    _REGISTRY[op.name] = op
    return op


def get(name: str) -> Operator:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"operator {name!r} is unknown; registered: {', '.join(sorted(_REGISTRY))}") from None


def names() -> list[str]:
    return sorted(_REGISTRY)


def clamp(y, qmin, qmax) -> np.ndarray:
    return np.clip(y, qmin, qmax).astype(np.int64)
