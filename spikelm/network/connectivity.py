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
class FixedInDegree:
    """Each post neuron receives exactly ``k`` synapses from distinct random pre neurons."""

    k: int
    allow_autapses: bool = True

    def __post_init__(self):
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or self.k < 0:
            raise ConfigError(f"FixedInDegree: 'k' must be an integer >= 0, got {self.k!r}")

    def pairs(self, n_pre, n_post, rng, same=False):
        avail = n_pre - (1 if same and not self.allow_autapses else 0)
        if self.k > avail:
            raise ConfigError(f"FixedInDegree: k={self.k} exceeds the {avail} available pre neurons")
        pre_l = []
        for i in range(n_post):
            if same and not self.allow_autapses:
                src = rng.choice(n_pre - 1, size=self.k, replace=False)
                src = src + (src >= i)
            else:
                src = rng.choice(n_pre, size=self.k, replace=False)
            pre_l.append(src)
        pre = np.concatenate(pre_l) if pre_l else np.zeros(0, np.int64)
        post = np.repeat(np.arange(n_post), self.k)
        return _sorted(pre, post)


@dataclass(frozen=True)
class FixedOutDegree:
    """Each pre neuron projects to exactly ``k`` distinct random post neurons."""

    k: int
    allow_autapses: bool = True

    def __post_init__(self):
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or self.k < 0:
            raise ConfigError(f"FixedOutDegree: 'k' must be an integer >= 0, got {self.k!r}")

    def pairs(self, n_pre, n_post, rng, same=False):
        avail = n_post - (1 if same and not self.allow_autapses else 0)
        if self.k > avail:
            raise ConfigError(f"FixedOutDegree: k={self.k} exceeds the {avail} available post neurons")
        post_l = []
        for j in range(n_pre):
            if same and not self.allow_autapses:
                tgt = rng.choice(n_post - 1, size=self.k, replace=False)
                tgt = tgt + (tgt >= j)
            else:
                tgt = rng.choice(n_post, size=self.k, replace=False)
            post_l.append(np.sort(tgt))
        post = np.concatenate(post_l) if post_l else np.zeros(0, np.int64)
        pre = np.repeat(np.arange(n_pre), self.k)
        return pre.astype(np.int64), post.astype(np.int64)


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
