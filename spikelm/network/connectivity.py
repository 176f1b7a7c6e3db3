"""Seeded connectivity rules: which (pre, post) pairs a projection connects.

Each rule is a small frozen dataclass with ``pairs(n_pre, n_post, rng)`` returning two int64
arrays (pre indices, post indices) in the rule's own order: the order in which per-synapse
weight and delay arrays are given (for :class:`FromArrays`, the caller's order). The
projection sorts the synapses by pre index, then post index (stably), and carries every
per-synapse array along.
``expected_synapses(n_pre, n_post)`` bounds the count before anything is drawn, so a
projection too large for the machine is refused before it is built. The same seed gives the
same synapses on every machine (numpy ``Generator``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikelm.errors import ConfigError


def _flag(rule, name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{rule}: '{name}' must be true or false, got {value!r}")


def _sorted(pre, post):
    order = np.lexsort((post, pre))
    return pre[order].astype(np.int64), post[order].astype(np.int64)


def _by_pre(pre, post):
    """Order pairs by pre index (stable: post order within a row is kept)."""
    order = np.argsort(pre, kind="stable")
    return pre[order].astype(np.int64), post[order].astype(np.int64)


@dataclass(frozen=True)
class AllToAll:
    """Every pre neuron to every post neuron (``allow_autapses=False`` drops i->i when pre is post)."""

    allow_autapses: bool = True

    def __post_init__(self):
        _flag("AllToAll", "allow_autapses", self.allow_autapses)

    def expected_synapses(self, n_pre, n_post):
        return n_pre * n_post

    def pairs(self, n_pre, n_post, rng, same=False):
        pre = np.repeat(np.arange(n_pre), n_post)
        post = np.tile(np.arange(n_post), n_pre)
        if same and not self.allow_autapses:
            keep = pre != post
            pre, post = pre[keep], post[keep]
        return pre.astype(np.int64), post.astype(np.int64)


@dataclass(frozen=True)
class FixedProbability:
    """Each pair independently with probability ``p``."""

    p: float
    allow_autapses: bool = True

    def __post_init__(self):
        if isinstance(self.p, (bool, np.bool_)) or not isinstance(self.p, (int, float, np.integer, np.floating)) \
                or not 0.0 <= float(self.p) <= 1.0:
            raise ConfigError(f"FixedProbability: 'p' must be a probability in [0, 1], got {self.p!r}")
        _flag("FixedProbability", "allow_autapses", self.allow_autapses)

    def expected_synapses(self, n_pre, n_post):
        mean = float(self.p) * n_pre * n_post
        return int(mean + 6.0 * mean ** 0.5) + 1     # a binomial count stays below this

    def pairs(self, n_pre, n_post, rng, same=False):
        pre_l, post_l = [], []
        # draw per pre row: a binomial count then distinct targets (memory O(synapses))
        counts = rng.binomial(n_post, self.p, size=n_pre)
        for j in np.flatnonzero(counts):
            tgt = rng.choice(n_post, size=counts[j], replace=False)
            pre_l.append(np.full(tgt.size, j))
            post_l.append(tgt)
        if not pre_l:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        pre, post = np.concatenate(pre_l), np.concatenate(post_l)
        if same and not self.allow_autapses:
            keep = pre != post
            pre, post = pre[keep], post[keep]
        return _sorted(pre, post)


@dataclass(frozen=True)
class _FixedDegree:
    """Shared part of the fixed in- and out-degree rules: ``k`` distinct partners per neuron."""

    k: int
    allow_autapses: bool = True

    def __post_init__(self):
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or self.k < 0:
            raise ConfigError(f"{type(self).__name__}: 'k' must be an integer >= 0, got {self.k!r}")
        _flag(type(self).__name__, "allow_autapses", self.allow_autapses)

    def _partners(self, rows, n, rng, same, side):
        """k distinct partners among n for each of ``rows`` neurons, flattened row by row."""
        excl = same and not self.allow_autapses
        avail = n - (1 if excl else 0)
        if self.k > avail:
            raise ConfigError(f"{type(self).__name__}: k={self.k} exceeds the {avail} available {side} neurons")
        return _k_subsets(rng, rows, n, self.k, excl).ravel()


@dataclass(frozen=True)
class FixedInDegree(_FixedDegree):
    """Each post neuron receives exactly ``k`` synapses from distinct random pre neurons."""

    def expected_synapses(self, n_pre, n_post):
        return self.k * n_post

    def pairs(self, n_pre, n_post, rng, same=False):
        pre = self._partners(n_post, n_pre, rng, same, "pre")
        post = np.repeat(np.arange(n_post), self.k)
        return _by_pre(pre, post)


@dataclass(frozen=True)
class FixedOutDegree(_FixedDegree):
    """Each pre neuron projects to exactly ``k`` distinct random post neurons."""

    def expected_synapses(self, n_pre, n_post):
        return self.k * n_pre

    def pairs(self, n_pre, n_post, rng, same=False):
        post = self._partners(n_pre, n_post, rng, same, "post")
        pre = np.repeat(np.arange(n_pre), self.k)
        return pre.astype(np.int64), post


def _k_subsets(rng, rows, n, k, exclude_own):
    """For each of ``rows`` rows, k distinct indices from range(n), sorted (not its own index if asked).

    Draw with replacement, then redraw duplicates (and own indices) until none are left:
    a few vectorised rounds, since a row of k draws from n has about k^2 / 2n duplicates.
    """
    x = rng.integers(0, n, size=(rows, k))
    own = np.arange(rows)[:, None]
    while True:
        x.sort(axis=1)
        bad = np.zeros(x.shape, dtype=bool)
        bad[:, 1:] = x[:, 1:] == x[:, :-1]
        if exclude_own:
            bad |= x == own
        nbad = int(bad.sum())
        if nbad == 0:
            return x
        x[bad] = rng.integers(0, n, size=nbad)


@dataclass(frozen=True)
class FixedTotalNumber:
    """Exactly ``n`` synapses, each joining a pre and a post neuron drawn uniformly at random.

    Pairs repeat (multapses) and, when pre is post, a neuron may meet itself unless
    ``allow_autapses`` is false (those pairs are drawn again): NEST's ``fixed_total_number``
    with its defaults, the rule of the Potjans-Diesmann microcircuit.
    """

    n: int
    allow_autapses: bool = True

    def __post_init__(self):
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or self.n < 0:
            raise ConfigError(f"FixedTotalNumber: 'n' must be an integer >= 0, got {self.n!r}")
        _flag("FixedTotalNumber", "allow_autapses", self.allow_autapses)

    def expected_synapses(self, n_pre, n_post):
        return int(self.n)

    def pairs(self, n_pre, n_post, rng, same=False):
        excl = same and not self.allow_autapses
        if self.n and (n_pre * n_post - (min(n_pre, n_post) if excl else 0)) < 1:
            raise ConfigError(f"FixedTotalNumber: no pair to draw {self.n} synapses from ({n_pre} x {n_post} neurons)")
        # one uniform draw of the pair's rank pre * n_post + post: sorting the ranks puts the
        # synapses in (pre, post) order at the cost of one integer sort
        key = rng.integers(0, n_pre * n_post, size=int(self.n), dtype=np.int64)
        while excl:
            own = np.flatnonzero(key // n_post == key % n_post)
            if own.size == 0:
                break
            key[own] = rng.integers(0, n_pre * n_post, size=own.size, dtype=np.int64)
        key.sort()
        return key // n_post, key % n_post


@dataclass(frozen=True)
class OneToOne:
    """Neuron i to neuron i (populations of equal size)."""

    def expected_synapses(self, n_pre, n_post):
        return min(n_pre, n_post)

    def pairs(self, n_pre, n_post, rng, same=False):
        if n_pre != n_post:
            raise ConfigError(f"OneToOne: populations differ in size ({n_pre} vs {n_post})")
        i = np.arange(n_pre, dtype=np.int64)
        return i, i.copy()


@dataclass(frozen=True)
class FromArrays:
    """Explicit synapses: arrays of pre and post indices (integers) of equal length.

    Per-synapse weights and delays given with it are in the same order as these arrays
    (synapse ``i`` is ``pre[i] -> post[i]``), whatever that order is.
    """

    pre: tuple
    post: tuple

    def __post_init__(self):
        for name in ("pre", "post"):
            _indices(getattr(self, name), name)

    def expected_synapses(self, n_pre, n_post):
        return len(self.pre)

    def pairs(self, n_pre, n_post, rng, same=False):
        pre, post = _indices(self.pre, "pre"), _indices(self.post, "post")
        if pre.shape != post.shape:
            raise ConfigError(f"FromArrays: 'pre' and 'post' must be 1-D of equal length, got {pre.shape} and {post.shape}")
        if pre.size and (pre.min() < 0 or pre.max() >= n_pre):
            raise ConfigError(f"FromArrays: pre indices must lie in [0, {n_pre}), got range [{pre.min()}, {pre.max()}]")
        if post.size and (post.min() < 0 or post.max() >= n_post):
            raise ConfigError(f"FromArrays: post indices must lie in [0, {n_post}), got range [{post.min()}, {post.max()}]")
        return pre, post     # the caller's order: the projection sorts and carries weights along


def _indices(values, name):
    """A 1-D int64 array of neuron indices; floats, bools, strings and nesting are refused."""
    try:
        a = np.asarray(values)
    except (TypeError, ValueError):
        a = np.asarray([None])
    if a.ndim != 1 or (a.size and (a.dtype.kind not in "iu")):
        raise ConfigError(f"FromArrays: '{name}' must be a 1-D list of integer indices, got {_short(values)}")
    if a.size and a.dtype.kind == "u" and a.max() > np.iinfo(np.int64).max:
        raise ConfigError(f"FromArrays: '{name}' holds an index beyond int64, got {_short(values)}")
    return a.astype(np.int64)


def _short(values):
    text = repr(values)
    return text if len(text) <= 60 else text[:57] + "..."


RULES = {"all_to_all": AllToAll, "fixed_probability": FixedProbability, "fixed_in_degree": FixedInDegree,
         "fixed_out_degree": FixedOutDegree, "fixed_total_number": FixedTotalNumber, "one_to_one": OneToOne,
         "arrays": FromArrays}
