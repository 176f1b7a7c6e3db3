"""Leaky integrate-and-fire neuron with exponential current-based synapses.

Equations (units: ms, mV; currents as R*I in mV, so ``r_m`` [MOhm] times nA)::

    tau_m dV/dt = -(V - e_l) + I_e + I_i + r_m * I_ext
    tau_e dI_e/dt = -I_e,   tau_i dI_i/dt = -I_i

Discretisation: exact exponential integration over one step of width dt for V and the
synaptic currents (the propagator of NEST's iaf_psc_exp), with I_ext held constant over the
step. Events delivered at step t are added to I_e / I_i before the update (a weight is the
jump of the current, in mV). With ``tau_e = 0`` (or ``tau_i = 0``) the synapse is a delta
synapse: the weight is added to V directly. Threshold ``v_th``, reset to ``v_reset``,
absolute refractory period ``t_ref`` (V clamped at v_reset, delta inputs ignored).

Optional adaptive threshold (``alpha > 0``): theta = v_th + a, where the trace ``a`` jumps
by ``alpha`` at each spike and decays with ``tau_a``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .base import NeuronModel, check_params, consts_index, fired, pack


@dataclass(frozen=True)
class LIFParams:
    """Parameters of :mod:`lif` (ms, mV, MOhm, nA).

    The defaults are a quiet neuron: it rests at ``e_l`` = ``v_reset`` = -60 mV, 10 mV below
    ``v_th``, and fires only when driven. CUBA (``scenarios/cuba.toml``) sets e_l = -49 mV,
    above threshold, so that its network drives itself.
    """

    tau_m: float = 20.0
    v_th: float = -50.0
    v_reset: float = -60.0
    e_l: float = -60.0
    t_ref: float = 5.0
    tau_e: float = 5.0
    tau_i: float = 10.0
    r_m: float = 1.0
    alpha: float = 0.0
    tau_a: float = 100.0

    def __post_init__(self):
        check_params(self, positive=("tau_m", "r_m", "tau_a"), nonnegative=("t_ref", "tau_e", "tau_i", "alpha"))
        if self.v_reset >= self.v_th:
            from spikelm.errors import ConfigError

            raise ConfigError(f"LIFParams: v_reset ({self.v_reset}) must be below v_th ({self.v_th})")


def _propagator(tau_s, tau_m, dt):
    """Weight of an exponentially decaying current I(0) on V after one step."""
    if tau_s == 0.0:
        return 0.0
    if abs(tau_s - tau_m) < 1e-12:
        return dt / tau_m * math.exp(-dt / tau_m)
    return tau_s / (tau_s - tau_m) * (math.exp(-dt / tau_s) - math.exp(-dt / tau_m))


#: The per-step constants (``derive``): leak and synaptic propagators, refractory steps, the
#: external current's gain, delta-synapse switches, adaptation; ``uses_a`` is 1 when the
#: threshold offset row ``a`` can be non-zero (adaptation, or a plasticity rule moving it;
#: set by the simulator), so the kernels skip that row otherwise.
CONSTS = ("e_l", "v_th", "v_reset", "em", "pe", "pi", "de", "di", "ref_steps", "ext", "delta_e", "delta_i",
          "alpha", "da", "uses_a")
C = consts_index(CONSTS)


def derive(p: LIFParams, dt: float) -> np.ndarray:
    em = math.exp(-dt / p.tau_m)
    # the external current's gain r_m (1 - em) is taken from expm1 (as NEST's propagators): it
    # stays accurate when dt / tau_m is tiny, where 1 - em rounds to 0 (a leak-free IF neuron)
    return pack(
        CONSTS, e_l=p.e_l, v_th=p.v_th, v_reset=p.v_reset, em=em,
        pe=_propagator(p.tau_e, p.tau_m, dt), pi=_propagator(p.tau_i, p.tau_m, dt),
        de=math.exp(-dt / p.tau_e) if p.tau_e > 0 else 0.0,
        di=math.exp(-dt / p.tau_i) if p.tau_i > 0 else 0.0,
        ref_steps=float(round(min(p.t_ref / dt, 2.0**62))),   # 2**62 steps: never again
        ext=-p.r_m * math.expm1(-dt / p.tau_m),
        delta_e=1.0 if p.tau_e == 0 else 0.0, delta_i=1.0 if p.tau_i == 0 else 0.0,
        alpha=p.alpha, da=math.exp(-dt / p.tau_a), uses_a=1.0 if p.alpha > 0 else 0.0,
    )


def init_state(n, p: LIFParams, rng):
    return {"v": np.full(n, p.e_l), "i_e": np.zeros(n), "i_i": np.zeros(n),
            "ref": np.zeros(n), "a": np.zeros(n)}


def step(s, c, inp_e, inp_i, i_ext, t):
    e_l, v_th, v_reset, em, pe, pi = c[C.e_l], c[C.v_th], c[C.v_reset], c[C.em], c[C.pe], c[C.pi]
    de, di, ref_steps, ext = c[C.de], c[C.di], c[C.ref_steps], c[C.ext]
    delta_e, delta_i, alpha, da = c[C.delta_e], c[C.delta_i], c[C.alpha], c[C.da]
    v, ie, ii, ref, a = s["v"], s["i_e"], s["i_i"], s["ref"], s["a"]
    if delta_e == 0.0:
        ie += inp_e
    if delta_i == 0.0:
        ii += inp_i
    free = ref <= 0.0
    vn = e_l + (v - e_l) * em + ie * pe + ii * pi + i_ext * ext
    if delta_e != 0.0:
        vn = vn + inp_e
    if delta_i != 0.0:
        vn = vn + inp_i
    v[:] = np.where(free, vn, v_reset)
    ref[:] = np.where(free, ref, ref - 1.0)
    ie *= de
    ii *= di
    a *= da
    spk = free & (v >= v_th + a)
    v[spk] = v_reset
    ref[spk] = ref_steps
    a[spk] += alpha
    return fired(spk)


def may_fire(s, c, driven, t):
    # without input V relaxes to e_l: a neuron resting at or above threshold fires on its own
    v_th = c[C.v_th]
    if driven or c[C.e_l] >= v_th:
        return True
    # an adapted threshold v_th + a decays back to v_th: any V at or above v_th may still fire
    return bool(np.any(s["ref"] > 0) or np.any(np.abs(s["i_e"]) + np.abs(s["i_i"]) > 1e-9)
                or np.any(s["v"] >= v_th))


LIF = NeuronModel("lif", LIFParams, ("v", "i_e", "i_i", "ref", "a"), derive, init_state, step, may_fire,
                  units=("mV", "mV", "mV", "steps", "mV"), input_unit="mV", consts=CONSTS)
