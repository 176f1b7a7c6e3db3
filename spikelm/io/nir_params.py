"""NIR neuron nodes onto spikelm's LIF neuron and back: parameters, units, discretisation.

NIR's neurons are continuous-time equations (``tau dv/dt = (v_leak - v) + r I`` for LIF;
CubaLIF adds ``tau_syn dI/dt = -I + w_in S``). spikelm's LIF integrates its equations exactly
over a step (see :mod:`spikelm.network.models.lif`); every NIR neuron node becomes a LIF
population whose parameters make that exact step do what the chosen discretisation does:

- ``exact``: the continuous equations, integrated exactly (spikelm's own scheme): the leak per
  step is exp(-dt/tau).
- ``euler``: the forward-Euler step of the deep-learning SNN libraries (snnTorch, Norse, ...):
  the leak per step is 1 - dt/tau, reproduced by the LIF time constant -dt / ln(1 - dt/tau).

Conventions (both ways, documented in docs/nir.md):

- Time: NIR has no units; files written by snnTorch and Norse hold seconds. ``time_unit`` says
  what the file holds ("s" by default, or "ms"); spikelm works in ms.
- A spike is a pulse of height 1 for one step (dt in the file's time unit): into a LIF node
  through weight w it raises v by r w dt / tau; into a CubaLIF node it raises I by
  w_in w dt / tau_syn. Continuous inputs (an Affine bias) are currents held constant.
- Threshold: NIR fires when v > v_threshold, spikelm when V >= v_th; v_th is the next float
  above v_threshold (and back), which is the same test, bit for bit, in float64.
- Voltages are written unchanged (spikelm's mV); NIR has no refractory period (t_ref = 0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spikelm.errors import ConfigError, FileFormatError
from spikelm.network.models import LIFParams
from spikelm.network.models.lif import derive

#: ms per time unit of the file.
MS_PER_UNIT = {"s": 1000.0, "ms": 1.0}
DISCRETISATIONS = ("exact", "euler")
#: A threshold no membrane reaches: LI, CubaLI and I nodes (read out, never fire).
NEVER = 1e300
#: tau_m (ms) so long that exp(-dt/tau_m) rounds to 1: no leak (IF, I).
NO_LEAK_TAU = 1e30
#: tau_m (ms) so short that exp(-dt/tau_m) rounds to 0: no memory (Threshold).
NO_MEMORY_TAU = 1e-30


def next_up(x):
    """The spikelm threshold for a NIR threshold: ``V >= next_up(t)`` is ``V > t``."""
    return np.nextafter(np.asarray(x, dtype=np.float64), np.inf)


def next_down(x):
    """The NIR threshold for a spikelm threshold: ``V > next_down(t)`` is ``V >= t``."""
    return np.nextafter(np.asarray(x, dtype=np.float64), -np.inf)


def check_options(dt, discretisation, time_unit):
    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not math.isfinite(dt) or dt <= 0:
        raise ConfigError(f"--dt: must be a positive number of ms, got {dt!r}")
    if discretisation not in DISCRETISATIONS:
        raise ConfigError(f"--discretisation: must be one of {', '.join(DISCRETISATIONS)}, got {discretisation!r}")
    if time_unit not in MS_PER_UNIT:
        raise ConfigError(f"--time-unit: must be one of {', '.join(MS_PER_UNIT)}, got {time_unit!r}")


@dataclass
class NeuronMap:
    """How one NIR neuron node is simulated, neuron by neuron.

    ``params``: spikelm LIF parameters (arrays, one value per neuron). ``gain``: the spikelm
    weight of a NIR weight of 1 into each neuron. ``current_gain``: the spikelm current (nA,
    with ``r_m``) of a NIR input current of 1 (nodes without a synaptic current).
    ``synaptic``: inputs feed a synaptic current (CubaLIF, CubaLI). ``readout``: never fires
    (LI, CubaLI, I; its V is recorded).
    """

    kind: str
    params: dict
    gain: np.ndarray
    current_gain: np.ndarray
    synaptic: bool
    readout: bool


def neuron_from_nir(node, where, dt, discretisation, time_unit) -> NeuronMap:
    """The spikelm form of NIR neuron ``node`` (a :class:`~spikelm.io.nir_graph.Node`)."""
    u = MS_PER_UNIT[time_unit]
    dt_f = dt / u
    p, kind, n = node.params, node.kind, node.size_out
    euler = discretisation == "euler"
    readout = kind in ("LI", "CubaLI", "I")
    ones, zeros = np.ones(n), np.zeros(n)

    def tau_ms(tau, name):
        if not euler:
            return tau * u
        a = dt_f / tau
        if np.any(a > 1):
            raise FileFormatError(f"{where}: dt/{name} = {a.max():.3g} > 1 at dt = {dt} ms: the Euler step flips the "
                                  f"sign of its variable, which spikelm's exponential decay cannot reproduce; use "
                                  f"a smaller --dt or --discretisation exact")
        # a = 1: the Euler step forgets v entirely, a leak of 0 (the log is taken of a safe stand-in)
        return np.where(a == 1, NO_MEMORY_TAU, -dt / np.log1p(-np.where(a == 1, 0.5, a)))

    if kind in ("LIF", "LI"):
        params = dict(tau_m=tau_ms(p["tau"], "tau"), e_l=p["v_leak"], r_m=ones, tau_e=zeros)
        gain = p["r"] / (p["tau"] / dt_f)  # r dt / tau, written so that r = tau / dt gives exactly 1
        current_gain = p["r"]
    elif kind in ("IF", "I"):
        params = dict(tau_m=np.full(n, NO_LEAK_TAU), e_l=zeros, r_m=np.full(n, NO_LEAK_TAU), tau_e=zeros)
        gain, current_gain = p["r"] * dt_f, p["r"] / u
    elif kind == "Threshold":
        params = dict(tau_m=np.full(n, NO_MEMORY_TAU), e_l=zeros, r_m=ones, tau_e=zeros)
        gain, current_gain = ones, ones
    else:  # CubaLIF, CubaLI
        params = dict(tau_m=tau_ms(p["tau_mem"], "tau_mem"), e_l=p["v_leak"], r_m=ones,
                      tau_e=tau_ms(p["tau_syn"], "tau_syn"))
        gain = (p["r"] * p["w_in"]) / (p["tau_syn"] / dt_f)  # r w_in dt / tau_syn; exactly 1 for our own export
        if euler:  # V gains (dt / tau_mem) r I per step in Euler, pe I_e in spikelm
            pe = np.array([_consts(params, j, dt)[4] for j in range(n)])
            gain = gain * (dt_f / p["tau_mem"]) / pe
        current_gain = zeros
    if readout:
        params["v_th"] = np.full(n, NEVER)
        params["v_reset"] = params["e_l"].copy()
    elif kind == "Threshold":
        params["v_th"] = next_up(p["threshold"])
        params["v_reset"] = p["threshold"].copy()
    else:
        params["v_th"] = next_up(p["v_threshold"])
        params["v_reset"] = p["v_reset"].copy()
        bad = np.flatnonzero(params["v_reset"] >= params["v_th"])
        if bad.size:
            j = bad[0]
            raise FileFormatError(f"{where}: neuron {j}: v_reset ({p['v_reset'][j]:g}) is above v_threshold "
                                  f"({p['v_threshold'][j]:g}); spikelm resets below the threshold")
    params["tau_i"] = params["tau_e"]
    return NeuronMap(kind, params, np.asarray(gain, dtype=np.float64), np.asarray(current_gain, dtype=np.float64),
                     kind in ("CubaLIF", "CubaLI"), readout)


def lif_params(params, j) -> dict:
    """The LIFParams fields of neuron ``j`` of a :class:`NeuronMap`'s ``params``."""
    import dataclasses

    out = {k: float(v[j]) for k, v in params.items()}
    out.update(t_ref=0.0, alpha=0.0)
    return {f.name: out[f.name] for f in dataclasses.fields(LIFParams) if f.name in out}


def _consts(params, j, dt):
    return derive(LIFParams(**lif_params(params, j)), dt)


def synaptic_bias(nmap, b, j, dt, discretisation, start):
    """(constant current amplitude, initial synaptic current) that reproduce NIR bias ``b`` into
    neuron ``j`` of a CubaLIF/CubaLI node, switched on at step ``start``; None where that cannot
    be done (the bias starts later than below, or the synaptic current does not decay per step).

    A constant input into the synaptic current is its steady state, which acts on V as a
    constant current, minus a decaying synaptic current, which is an initial value of spikelm's
    ``i_e``. ``exact``: I(t) = I_ss (1 - exp(-t/tau_syn)), I_ss = r w_in b, from step 0 only.
    ``euler``: the current used at step t is b' (1 + a + ... + a^(t - start)), b' the bias's
    per-step input, from step 0 or 1.
    """
    c = _consts(nmap.params, j, dt)
    pe, de, ext = c[4], c[6], c[9]
    if not de < 1.0 or ext == 0.0:
        return None
    if discretisation == "exact":
        if start != 0:
            return None
        ie_ss = b * nmap.gain[j] * (nmap.params["tau_e"][j] / dt)  # gain = r w_in dt/tau_syn
        return ie_ss, -ie_ss
    if start not in (0, 1):
        return None
    b_ss = b * nmap.gain[j] / (1.0 - de)
    return pe * b_ss / ext, -b_ss * (de if start == 0 else 1.0)
