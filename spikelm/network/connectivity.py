"""Seeded connectivity rules: which (pre, post) pairs a projection connects.

Each rule is a small frozen dataclass with ``pairs(n_pre, n_post, rng)`` returning two int64
arrays (pre indices, post indices) sorted by pre then post. The same seed gives the same
synapses on every machine (numpy ``Generator``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikelm.errors import ConfigError


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
        if not isinstance(self.p, (int, float)) or not 0.0 <= float(self.p) <= 1.0:
            raise ConfigError(f"FixedProbability: 'p' must be a probability in [0, 1], got {self.p!r}")

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

    def pairs(self, n_pre, n_post, rng, same=False):
        pre = self._partners(n_post, n_pre, rng, same, "pre")
        post = np.repeat(np.arange(n_post), self.k)
        return _by_pre(pre, post)


@dataclass(frozen=True)
class FixedOutDegree(_FixedDegree):
    """Each pre neuron projects to exactly ``k`` distinct random post neurons."""

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
class OneToOne:
    """Neuron i to neuron i (populations of equal size)."""

    def pairs(self, n_pre, n_post, rng, same=False):
        if n_pre != n_post:
            raise ConfigError(f"OneToOne: populations differ in size ({n_pre} vs {n_post})")
        i = np.arange(n_pre, dtype=np.int64)
        return i, i.copy()


@dataclass(frozen=True)
class FromArrays:
    """Explicit synapses: arrays of pre and post indices of equal length."""

    pre: tuple
    post: tuple

    def pairs(self, n_pre, n_post, rng, same=False):
        pre = np.asarray(self.pre, dtype=np.int64)
        post = np.asarray(self.post, dtype=np.int64)
        if pre.shape != post.shape or pre.ndim != 1:
            raise ConfigError(f"FromArrays: 'pre' and 'post' must be 1-D of equal length, got {pre.shape} and {post.shape}")
        if pre.size and (pre.min() < 0 or pre.max() >= n_pre):
            raise ConfigError(f"FromArrays: pre indices must lie in [0, {n_pre}), got range [{pre.min()}, {pre.max()}]")
        if post.size and (post.min() < 0 or post.max() >= n_post):
            raise ConfigError(f"FromArrays: post indices must lie in [0, {n_post}), got range [{post.min()}, {post.max()}]")
        return _sorted(pre, post)


RULES = {"all_to_all": AllToAll, "fixed_probability": FixedProbability, "fixed_in_degree": FixedInDegree,
         "fixed_out_degree": FixedOutDegree, "one_to_one": OneToOne, "arrays": FromArrays}
