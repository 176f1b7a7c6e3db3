"""External stimuli applied to whole populations.

- :class:`ConstantCurrent`: I_ext += amplitude (nA; enters the model as r_m * I).
- :class:`CurrentSteps`: piecewise-constant current: ``amplitudes[k]`` from ``times[k]`` ms on.

An amplitude of these two is one number for every neuron or a sequence of one number per
neuron (per-neuron biases, as an imported NIR ``Affine`` node carries).
- :class:`NoiseCurrent`: I_ext += mean + std * N(0, 1), drawn anew each step per neuron
  (Izhikevich 2003's thalamic input is NoiseCurrent(std=5) on excitatory neurons).
- :class:`PoissonInput`: independent Poisson input events per neuron at ``rate`` Hz, each
  adding ``weight`` to the ``target`` input at the step it arrives (Brunel 2000's external
  drive). Not counted as SynOps of any projection.

Random draws use the counter-based generator of :mod:`spikelm.simulator.rng`, so every
backend sees the same numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spikelm.errors import ConfigError

from .projection import TARGETS


def _finite(what, **values):
    for k, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
            raise ConfigError(f"{what}: '{k}' must be a finite number, got {v!r}")


def _amplitude(what, v):
    """A number, or a tuple of finite numbers (one per neuron; its length is checked by the Network)."""
    if isinstance(v, (list, tuple, np.ndarray)):
        for x in v:
            _finite(what, amplitude=x)
        if not len(v):
            raise ConfigError(f"{what}: a per-neuron 'amplitude' needs one number per neuron, got an empty list")
        return tuple(float(x) for x in v)
    _finite(what, amplitude=v)
    return v


def amplitude_size(stim):
    """Sizes of the per-neuron amplitudes of ``stim`` (empty when every amplitude is one number)."""
    if isinstance(stim, ConstantCurrent):
        amps = (stim.amplitude,)
    elif isinstance(stim, CurrentSteps):
        amps = stim.amplitudes
    else:
        return set()
    return {len(a) for a in amps if isinstance(a, tuple)}


@dataclass(frozen=True)
class ConstantCurrent:
    population: str
    amplitude: float

    def __post_init__(self):
        object.__setattr__(self, "amplitude", _amplitude("ConstantCurrent", self.amplitude))


@dataclass(frozen=True)
class CurrentSteps:
    population: str
    times: tuple
    amplitudes: tuple

    def __post_init__(self):
        if len(self.times) != len(self.amplitudes) or not self.times:
            raise ConfigError("CurrentSteps: 'times' and 'amplitudes' must be non-empty lists of equal length")
        for t in self.times:
            _finite("CurrentSteps", time=t)
        object.__setattr__(self, "amplitudes", tuple(_amplitude("CurrentSteps", a) for a in self.amplitudes))
        if any(t < 0 for t in self.times) or list(self.times) != sorted(self.times):
            raise ConfigError("CurrentSteps: 'times' must be increasing and >= 0 ms")


@dataclass(frozen=True)
class NoiseCurrent:
    population: str
    std: float
    mean: float = 0.0

    def __post_init__(self):
        _finite("NoiseCurrent", std=self.std, mean=self.mean)
        if self.std < 0:
            raise ConfigError(f"NoiseCurrent: 'std' must be >= 0, got {self.std}")


@dataclass(frozen=True)
class PoissonInput:
    population: str
    rate: float
    weight: float
    target: str = "exc"

    def __post_init__(self):
        _finite("PoissonInput", rate=self.rate, weight=self.weight)
        if self.rate < 0:
            raise ConfigError(f"PoissonInput: 'rate' must be >= 0 Hz, got {self.rate}")
        if self.target not in TARGETS:
            raise ConfigError(f"PoissonInput: 'target' must be one of {', '.join(TARGETS)}, got {self.target!r}")


STIMULI = {"constant_current": ConstantCurrent, "current_steps": CurrentSteps, "noise_current": NoiseCurrent,
           "poisson_input": PoissonInput}
