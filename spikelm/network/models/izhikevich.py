"""Izhikevich (2003) simple model of spiking neurons.

Equations (ms, mV; I in the model's own units)::

    dv/dt = 0.04 v^2 + 5 v + 140 - u + I
    du/dt = a (b v - u)
    if v >= 30 mV:  v <- c,  u <- u + d

Discretisation as in the 2003 paper's code: v advances in two half-steps of dt/2 (0.5 ms
at dt = 1 ms), then u one step of dt with the new v; a neuron whose v reached 30 mV fires
and is reset in the same step. Synaptic input: with ``tau_e = tau_i = 0`` (the paper's
setting) the weights of the spikes delivered at a step are added to I for that step only;
with tau > 0 they feed exponentially decaying currents. ``a, b, c, d`` are per-neuron state
so heterogeneous populations (c = -65 + 15 r^2 ...) are one population.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .base import NeuronModel, check_params, consts_index, fired, pack


@dataclass(frozen=True)
class IzhikevichParams:
    """Parameters of :mod:`izhikevich` (defaults: regular spiking)."""

    a: float = 0.02
    b: float = 0.2
    c: float = -65.0
    d: float = 8.0
    v_init: float = -65.0
    v_peak: float = 30.0
    tau_e: float = 0.0
    tau_i: float = 0.0

    def __post_init__(self):
        check_params(self, nonnegative=("tau_e", "tau_i"))


#: step width, spike cut-off, decays of the exponential currents (0: input for one step only)
CONSTS = ("dt", "v_peak", "de", "di")
C = consts_index(CONSTS)


def derive(p: IzhikevichParams, dt: float) -> np.ndarray:
    return pack(CONSTS, dt=dt, v_peak=p.v_peak,
                de=math.exp(-dt / p.tau_e) if p.tau_e > 0 else 0.0,
                di=math.exp(-dt / p.tau_i) if p.tau_i > 0 else 0.0)


def init_state(n, p: IzhikevichParams, rng):
    return {"v": np.full(n, p.v_init), "u": np.full(n, p.b * p.v_init), "i_e": np.zeros(n),
            "i_i": np.zeros(n), "a": np.full(n, p.a), "b": np.full(n, p.b), "c": np.full(n, p.c),
            "d": np.full(n, p.d)}


def step(s, c, inp_e, inp_i, i_ext, t):
    dt, v_peak, de, di = c[C.dt], c[C.v_peak], c[C.de], c[C.di]
    v, u, ie, ii = s["v"], s["u"], s["i_e"], s["i_i"]
    ie += inp_e
    ii += inp_i
    cur = ie + ii + i_ext
    h = 0.5 * dt
    v += h * (0.04 * v * v + 5.0 * v + 140.0 - u + cur)
    v += h * (0.04 * v * v + 5.0 * v + 140.0 - u + cur)
    u += dt * (s["a"] * (s["b"] * v - u))
    ie *= de
    ii *= di
    spk = v >= v_peak
    v[spk] = s["c"][spk]
    u[spk] += s["d"][spk]
    return fired(spk)


def may_fire(s, c, driven, t):
    return True


# I enters dv/dt directly, so currents and u are mV/ms (as in Brian2's Izhikevich example)
IZHIKEVICH = NeuronModel("izhikevich", IzhikevichParams, ("v", "u", "i_e", "i_i", "a", "b", "c", "d"),
                         derive, init_state, step, may_fire,
                         units=("mV", "mV/ms", "mV/ms", "mV/ms", "1/ms", "1/ms", "mV", "mV/ms"),
                         input_unit="mV/ms", consts=CONSTS)
