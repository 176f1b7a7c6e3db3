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
    """Normal with ``mean`` and ``std``."""

    mean: float
    std: float

    def draw(self, n, rng):
        return rng.normal(self.mean, self.std, size=n)


def draw(value, n, rng, what):
    """Return ``n`` float64 values for ``value`` (number, array of length n, Uniform, Normal).

    ``what`` names the field in error messages. NaN and inf are refused.
    """
    if isinstance(value, (Uniform, Normal)):
        for f in ("low", "high", "mean", "std"):
            x = getattr(value, f, 0.0)
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                raise ConfigError(f"{what}: distribution field '{f}' must be a finite number, got {x!r}")
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
