"""Spike sources: populations that emit spikes by a rule and receive no input.

- ``poisson``: each neuron fires independently with probability rate * dt per step
  (``rate`` in Hz). Random numbers come from the counter-based generator of
  :mod:`spikelm.simulator.rng`, a pure function of (seed, stream, step, neuron), so every
  backend draws the same spikes and a checkpoint needs no RNG state.
- ``spike_times``: explicit spike times in ms per neuron, rounded to the nearest step
  (``round(t / dt)``, halves to even; Brian2's SpikeGeneratorGroup takes the step that
  contains t). A neuron fires at most once per step, so two times of one neuron that round
  to the same step are refused (Brian2 refuses them too), never merged.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spikelm.errors import ConfigError

from .base import NeuronModel, check_params, consts_index, pack


@dataclass(frozen=True)
class PoissonParams:
    """``rate``: firing rate of every neuron, Hz."""

    rate: float = 10.0

    def __post_init__(self):
        check_params(self, nonnegative=("rate",))


@dataclass(frozen=True)
class SpikeTimesParams:
    """``times``: one list of spike times (ms) per neuron; ``n`` must equal its length."""

    times: tuple = field(default_factory=tuple)

    def __post_init__(self):
        for i, ts in enumerate(self.times):
            arr = np.asarray(ts, dtype=float)
            if arr.ndim != 1 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
                raise ConfigError(f"SpikeTimesParams: times[{i}] must be a list of finite times >= 0 ms, got {ts!r}")


#: the spike probability per step
POISSON_CONSTS = ("prob",)
POISSON_C = consts_index(POISSON_CONSTS)


def derive_poisson(p: PoissonParams, dt: float) -> np.ndarray:
    prob = p.rate * dt * 1e-3
    if prob > 1.0:
        raise ConfigError(f"PoissonParams: rate {p.rate} Hz at dt {dt} ms gives a spike probability {prob:.3g} > 1 "
                          f"per step; lower the rate or dt")
    return pack(POISSON_CONSTS, prob=prob)


def _no_state(n, p, rng):
    return {"v": np.zeros(n)}


def _source_step(s, c, inp_e, inp_i, i_ext, t):
    raise RuntimeError("source populations are stepped by the simulator")


def _never(s, c, driven, t):
    return False


POISSON = NeuronModel("poisson", PoissonParams, ("v",), derive_poisson, _no_state, _source_step,
                      lambda s, c, driven, t: True, is_source=True, consts=POISSON_CONSTS)
SPIKE_TIMES = NeuronModel("spike_times", SpikeTimesParams, ("v",), lambda p, dt: pack(()), _no_state,
                          _source_step, _never, is_source=True)


#: The largest step a time may fall on (int64 arithmetic on steps stays exact below it).
MAX_STEP = 2 ** 62


def spike_steps(times, dt, what="spike_times"):
    """The step of each spike time (ms) of one neuron: ``round(t / dt)``, halves to even.

    Raises ConfigError when two times fall into one step: a neuron fires at most once per
    step, and merging them silently would lose a spike.
    """
    for t in times:
        if not float(t) / dt < MAX_STEP:
            raise ConfigError(f"{what}: time {float(t):g} ms is step {float(t) / dt:.3g} at dt = {dt:g} ms; "
                              f"allowed: times below step {MAX_STEP:.3g}")
    steps = [round(float(t) / dt) for t in times]
    seen = {}
    for t, s in zip(times, steps):
        if s in seen:
            raise ConfigError(f"{what}: times {seen[s]:g} and {float(t):g} ms fall into one step ({s}) at "
                              f"dt = {dt:g} ms; allowed: at most one spike per neuron and step")
        seen[s] = float(t)
    return steps
