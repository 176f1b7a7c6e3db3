"""Excitatory-inhibitory integrate-and-fire neuron (EI-IF) with ternary output.

BrainGPT, eq. 1 (and eqs. 6-10 for the conversion setting), implemented as published::

    V(t)     = V(t-1) + I(t)
    theta(t) = theta_base + alpha * t
    S(t)     = +1 if V(t) >= theta(t);  -1 if V(t) <= -theta(t);  0 otherwise
    V(t)     = max(0, V(t) (1 - r)) if V(t) > 0;  min(0, V(t) (1 - r)) if V(t) < 0

There is no reset by subtraction: the attenuation by (1 - r) is applied every step, with or
without a spike. ``t`` counts steps from the start of the presentation window: the first
step of a run (or after :func:`reset_window`) has t = ``t0`` (default 1, as the sum
t = 1..T of eq. 6). I(t) is the sum of all inputs delivered at that step (delta synapses,
dimensionless). ``theta_base``, ``alpha`` and ``r`` are per-neuron state, because
BrainGPT's eqs. 12-14 adapt them online.

Note on the published conversion claim (eqs. 3-10): with theta_base = 1/2, alpha = 1, r = 1
and t counted from 1, the spike count for a constant input x is floor(x - 1/2) for
x > 1/2, one less than round(x); counted from t = 0 it is floor(x + 1/2) = round half up.
``tests/test_models.py`` checks both, so the claim is tested as stated.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikelm.errors import ConfigError

from .base import NeuronModel, check_params, consts_index, pack


@dataclass(frozen=True)
class EIIFParams:
    """Parameters of :mod:`eiif` (dimensionless, as in the paper)."""

    theta_base: float = 0.5
    alpha: float = 1.0
    r: float = 1.0
    t0: int = 1

    def __post_init__(self):
        check_params(self, nonnegative=("theta_base", "alpha", "t0"))
        if not 0.0 <= self.r <= 1.0:
            raise ConfigError(f"EIIFParams: parameter 'r' must lie in [0, 1], got {self.r!r}")


#: ``t0``: the window's first t; ``window_start``: the step at which the window started (set
#: by the simulator: :meth:`~spikelm.simulator.Simulator.reset_window`)
CONSTS = ("t0", "window_start")
C = consts_index(CONSTS)


def derive(p: EIIFParams, dt: float) -> np.ndarray:
    return pack(CONSTS, t0=p.t0, window_start=0.0)


def init_state(n, p: EIIFParams, rng):
    return {"v": np.zeros(n), "theta_base": np.full(n, float(p.theta_base)),
            "alpha": np.full(n, float(p.alpha)), "r": np.full(n, float(p.r))}


def step(s, c, inp_e, inp_i, i_ext, t):
    v = s["v"]
    tl = c[C.t0] + (t - c[C.window_start])
    v += inp_e + inp_i + i_ext
    theta = s["theta_base"] + s["alpha"] * tl
    out = np.where(v >= theta, 1, np.where(v <= -theta, -1, 0)).astype(np.int8)
    keep = 1.0 - s["r"]
    v[:] = np.where(v > 0, np.maximum(0.0, v * keep), np.where(v < 0, np.minimum(0.0, v * keep), v))
    idx = np.flatnonzero(out)
    return idx, out[idx]


def may_fire(s, c, driven, t):
    # |V| never grows without input (r in [0, 1]) and theta never falls (alpha >= 0), so a
    # neuron below its threshold of step t + 1 stays silent from then on.
    theta_next = s["theta_base"] + s["alpha"] * (c[C.t0] + (t + 1 - c[C.window_start]))
    return driven or bool(np.any(np.abs(s["v"]) >= theta_next))


EIIF = NeuronModel("eiif", EIIFParams, ("v", "theta_base", "alpha", "r"), derive, init_state, step, may_fire,
                   ternary=True, consts=CONSTS)
