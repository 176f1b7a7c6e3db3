"""Values drawn per synapse or per neuron: a number, an array, or a seeded distribution."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spikelm.errors import ConfigError


@dataclass(frozen=True)
class Uniform:
    """Uniform on [low, high)."""

    low: float
    high: float

    def draw(self, n, rng):
        return rng.uniform(self.low, self.high, size=n)


@dataclass(frozen=True)
class Normal:
    """Normal with ``mean`` and ``std``; values outside [``low``, ``high``] are drawn again
    (a truncated normal, NEST's ``redraw``: the microcircuit's weights keep their sign and its
    delays stay at least half a step)."""

    mean: float
    std: float
    low: float = -math.inf
    high: float = math.inf

    #: least probability of [low, high] under the normal: below it the bounds are refused
    #: (each value would need too many draws)
    MIN_MASS = 1e-3

    def draw(self, n, rng):
        x = rng.normal(self.mean, self.std, size=n)
        if self.low == -math.inf and self.high == math.inf:
            return x
        out = np.flatnonzero((x < self.low) | (x > self.high))
        while out.size:
            x[out] = rng.normal(self.mean, self.std, size=out.size)
            out = out[(x[out] < self.low) | (x[out] > self.high)]
        return x

    def mass(self):
        """Probability of [low, high] under the untruncated normal."""
        if self.std == 0:
            return float(self.low <= self.mean <= self.high)
        def cdf(b):
            return 0.5 * math.erfc(-(b - self.mean) / (self.std * math.sqrt(2.0)))

        return cdf(self.high) - cdf(self.low)


def draw(value, n, rng, what):
    """Return ``n`` float64 values for ``value`` (number, array of length n, Uniform, Normal).

    ``what`` names the field in error messages. NaN and inf are refused.
    """
    if isinstance(value, (Uniform, Normal)):
        for f in ("low", "high", "mean", "std"):
            x = getattr(value, f, 0.0)
            bound = isinstance(value, Normal) and f in ("low", "high")   # a truncation may be infinite
            if isinstance(x, bool) or not isinstance(x, (int, float)) or math.isnan(x) \
                    or not (math.isfinite(x) or (bound and x == (-math.inf if f == "low" else math.inf))):
                raise ConfigError(f"{what}: distribution field '{f}' must be a finite number, got {x!r}")
        if isinstance(value, Normal) and not value.mass() >= Normal.MIN_MASS:
            raise ConfigError(f"{what}: normal({value.mean:g}, {value.std:g}) falls in [{value.low:g}, "
                              f"{value.high:g}] with probability {value.mass():.3g}; allowed: at least "
                              f"{Normal.MIN_MASS:g} (move the bounds or the mean)")
        out = value.draw(n, rng)
    elif isinstance(value, bool):
        raise ConfigError(f"{what}: must be a number, an array or a distribution, got {value!r}")
    elif isinstance(value, (int, float, np.integer, np.floating)):
        out = np.full(n, float(value))
    else:
        try:
            out = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"{what}: must be a number, an array or a distribution, got {value!r}") from None
        if out.shape != (n,):
            raise ConfigError(f"{what}: an array of {n} values is needed, got shape {out.shape}")
    if not np.all(np.isfinite(out)):
        raise ConfigError(f"{what}: values must be finite (found NaN or inf)")
    return out
