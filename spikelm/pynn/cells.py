"""PyNN's standard cell types on spikelm: what each maps onto, with units and conventions.

Native parameter names are PyNN's own (no translation): a population keeps its parameters
in PyNN units, and the mapping below is applied only when the engine builds the spikelm
network. That keeps ``get``/``set`` exact and puts every conversion in one place.

Simulated:

- ``IF_curr_exp`` -> ``lif``: ``tau_m dV/dt = -(V - v_rest) + r_m (I_syn + I)`` with
  ``r_m = tau_m / cm`` (MOhm = ms / nF); a weight of w nA is a jump of ``w r_m`` mV of the
  synaptic current; ``i_offset`` is a constant current (nA).
- ``IF_curr_delta`` -> ``lif`` with delta synapses: a weight is a jump of V in mV.
- ``Izhikevich`` -> ``izhikevich`` (Izhikevich 2003's two half steps for v): a weight is a
  jump of v in mV, given as w / dt mV/ms of input for one step; ``i_offset`` nA is
  1000 i_offset mV/ms of input (NEST's I_e in pA, R = 1).
- ``SpikeSourcePoisson`` -> ``poisson`` (counter-based random numbers), ``SpikeSourceArray``
  -> ``spike_times``.

Delays, spike times and thresholds follow pyNN.nest with ``spike_precision="on_grid"``
(docs/coming-from-brian2-nest.md): a spike of step s is stamped ``(s + 1) dt``; a delay of
D ms is ``round(D / dt) + 1`` steps onto exponential synapses and ``round(D / dt)`` onto
delta synapses, so the input reaches the current (or V) at ``t_spike + D`` as in NEST.

Cell types spikelm has no model for (conductance-based, alpha synapses, AdEx, HH) can be
created, connected and inspected; ``run()`` refuses them in one line.
"""
from __future__ import annotations

import numpy as np

from spikelm.errors import ConfigError

from spikelm.io.extras import require

cells = require("pyNN.standardmodels.cells", "spikelm.pynn")
build_translations = require("pyNN.standardmodels", "spikelm.pynn").build_translations


def _identity(cls):
    return build_translations(*[(name, name) for name in cls.default_parameters])


def nest_steps(delay_ms, dt):
    """Whole steps of ``delay_ms`` as NEST rounds them (to the nearest step, halves up)."""
    # rounded to 1e-9 steps first, so 0.075 ms at dt = 0.05 is 1.5 steps (not 1.4999999999999998)
    return np.floor(np.round(np.asarray(delay_ms, dtype=float) / dt, 9) + 0.5).astype(np.int64)


class Mapped:
    """What the engine asks of a cell type (see the module docstring)."""

    spikelm_model = None
    #: PyNN parameters that must be one value per spikelm population (neurons are grouped by them)
    group_by = ()
    #: True when a synapse adds to V directly (delta), False for an exponential current
    delta_synapses = False
    #: spikelm state variables that are PyNN parameters (set() changes them, runs do not)
    params_in_state = ()

    def check_runnable(self, label):
        if self.spikelm_model is None:
            raise ConfigError(f"population '{label}': spikelm cannot simulate {type(self).__name__} "
                              f"(no spikelm model); it simulates {', '.join(RUNNABLE)}")

    def delay_steps(self, delay_ms, dt):
        return nest_steps(delay_ms, dt) + (0 if self.delta_synapses else 1)

    def weight_scale(self, params, dt):
        """Factor from a PyNN weight onto this cell to spikelm's weight, per neuron."""
        return np.ones(_size(params))

    def current_scale(self, params):
        """Factor from an injected current in nA to spikelm's stimulus amplitude, per neuron."""
        return np.ones(_size(params))

    def spikelm_params(self, row, dt):
        return {}

    def spikelm_state(self, params, initial, dt):
        return {}

    #: PyNN recordable -> (spikelm state variable, divide by ``weight_scale``?)
    recordables = {}


def _size(params):
    return len(next(iter(params.values())))


def _lif_params(cell, row, tau_e, tau_i):
    if not row["v_reset"] < row["v_thresh"]:
        raise ConfigError(f"{type(cell).__name__}: v_reset ({row['v_reset']:g} mV) must be below v_thresh "
                          f"({row['v_thresh']:g} mV) in spikelm")
    if not row["cm"] > 0:
        raise ConfigError(f"{type(cell).__name__}: cm must be > 0 nF, got {row['cm']:g}")
    return {"tau_m": row["tau_m"], "v_th": row["v_thresh"], "v_reset": row["v_reset"], "e_l": row["v_rest"],
            "t_ref": row["tau_refrac"], "tau_e": tau_e, "tau_i": tau_i, "r_m": row["tau_m"] / row["cm"]}


class IF_curr_exp(Mapped, cells.IF_curr_exp):
    __doc__ = cells.IF_curr_exp.__doc__
    translations = _identity(cells.IF_curr_exp)
    spikelm_model = "lif"
    group_by = ("tau_m", "cm", "v_rest", "v_reset", "v_thresh", "tau_refrac", "tau_syn_E", "tau_syn_I")
    recordable = ["spikes", "v", "isyn_exc", "isyn_inh"]
    recordables = {"v": ("v", False), "isyn_exc": ("i_e", True), "isyn_inh": ("i_i", True)}

    def weight_scale(self, params, dt):
        return np.asarray(params["tau_m"], float) / np.asarray(params["cm"], float)

    def spikelm_params(self, row, dt):
        return _lif_params(self, row, row["tau_syn_E"], row["tau_syn_I"])

    def spikelm_state(self, params, initial, dt):
        r_m = self.weight_scale(params, dt)
        state = {"v": initial["v"]} if "v" in initial else {}
        for pynn, var in (("isyn_exc", "i_e"), ("isyn_inh", "i_i")):
            if pynn in initial:
                state[var] = initial[pynn] * r_m
        return state


class IF_curr_delta(Mapped, cells.IF_curr_delta):
    __doc__ = cells.IF_curr_delta.__doc__
    translations = _identity(cells.IF_curr_delta)
    spikelm_model = "lif"
    group_by = ("tau_m", "cm", "v_rest", "v_reset", "v_thresh", "tau_refrac")
    delta_synapses = True
    recordables = {"v": ("v", False)}

    def spikelm_params(self, row, dt):      # tau_e = tau_i = 0: a weight is a jump of V in mV
        return _lif_params(self, row, 0.0, 0.0)

    def spikelm_state(self, params, initial, dt):
        return {"v": initial["v"]} if "v" in initial else {}


class Izhikevich(Mapped, cells.Izhikevich):
    __doc__ = cells.Izhikevich.__doc__
    translations = _identity(cells.Izhikevich)
    spikelm_model = "izhikevich"
    delta_synapses = True
    params_in_state = ("a", "b", "c", "d")
    recordables = {"v": ("v", False), "u": ("u", False)}

    def weight_scale(self, params, dt):
        # a jump of w mV is w / dt mV/ms of input during one step (the two half steps add dt I)
        return np.full(_size(params), 1.0 / dt)

    def current_scale(self, params):
        return np.full(_size(params), 1000.0)

    def spikelm_params(self, row, dt):
        return {"v_peak": 30.0, "tau_e": 0.0, "tau_i": 0.0}

    def spikelm_state(self, params, initial, dt):
        state = {var: np.asarray(params[var], float) for var in self.params_in_state}
        state.update({var: initial[var] for var in ("v", "u") if var in initial})
        return state


class SpikeSourcePoisson(Mapped, cells.SpikeSourcePoisson):
    __doc__ = cells.SpikeSourcePoisson.__doc__
    translations = _identity(cells.SpikeSourcePoisson)
    spikelm_model = "poisson"
    group_by = ("rate", "start", "duration")


class SpikeSourceArray(Mapped, cells.SpikeSourceArray):
    __doc__ = cells.SpikeSourceArray.__doc__
    translations = _identity(cells.SpikeSourceArray)
    spikelm_model = "spike_times"


def _buildable(base):
    """A cell type that can be created, connected and inspected, but not run."""
    return type(base.__name__, (Mapped, base), {"__doc__": base.__doc__, "translations": _identity(base)})


IF_curr_alpha = _buildable(cells.IF_curr_alpha)
IF_cond_exp = _buildable(cells.IF_cond_exp)
IF_cond_alpha = _buildable(cells.IF_cond_alpha)
EIF_cond_exp_isfa_ista = _buildable(cells.EIF_cond_exp_isfa_ista)
EIF_cond_alpha_isfa_ista = _buildable(cells.EIF_cond_alpha_isfa_ista)
HH_cond_exp = _buildable(cells.HH_cond_exp)

RUNNABLE = ("IF_curr_exp", "IF_curr_delta", "Izhikevich", "SpikeSourcePoisson", "SpikeSourceArray")
BUILD_ONLY = ("IF_curr_alpha", "IF_cond_exp", "IF_cond_alpha", "EIF_cond_exp_isfa_ista",
              "EIF_cond_alpha_isfa_ista", "HH_cond_exp")
