"""Synapse types of ``spikelm.pynn``: StaticSynapse and STDPMechanism (spike-pair rule with
additive or multiplicative weight dependence), onto spikelm's ``STDP``.

PyNN's additive rule changes a weight by ``A_plus w_max`` (and ``A_minus w_max``) times the
trace, as pyNN.nest's ``stdp_synapse`` (mu = 0) does; the multiplicative rule by
``A_plus (w_max - w)`` and ``A_minus (w - w_min)`` (mu = 1). spikelm's STDP sees a
presynaptic spike when it arrives (the whole delay is dendritic: PyNN's
``dendritic_delay_fraction = 1``, its default), and a pair of a post spike stamped t_post
and an arrival at t_a changes the weight by A exp(-|t_post - t_a| / tau), as NEST's does. TsodyksMarkramSynapse can be created and
inspected; ``run()`` refuses it in one line.
"""
from __future__ import annotations

import math

import numpy as np

from spikelm.errors import ConfigError

from spikelm.io.extras import require
from . import simulator

synapses = require("pyNN.standardmodels.synapses", "spikelm.pynn")
build_translations = require("pyNN.standardmodels", "spikelm.pynn").build_translations


def _identity(cls, names=None):
    return build_translations(*[(n, n) for n in (names or cls.default_parameters)])


def _minimum_delay():
    d = simulator.state.min_delay
    return simulator.state.dt if d == "auto" else d


class StaticSynapse(synapses.StaticSynapse):
    __doc__ = synapses.StaticSynapse.__doc__
    translations = _identity(synapses.StaticSynapse)

    def _get_minimum_delay(self):
        return _minimum_delay()


class TsodyksMarkramSynapse(synapses.TsodyksMarkramSynapse):
    __doc__ = synapses.TsodyksMarkramSynapse.__doc__
    translations = _identity(synapses.TsodyksMarkramSynapse)

    def _get_minimum_delay(self):
        return _minimum_delay()


class STDPMechanism(synapses.STDPMechanism):
    __doc__ = synapses.STDPMechanism.__doc__
    base_translations = _identity(None, ("weight", "delay", "dendritic_delay_fraction"))

    def _get_minimum_delay(self):
        return _minimum_delay()


class SpikePairRule(synapses.SpikePairRule):
    __doc__ = synapses.SpikePairRule.__doc__
    translations = _identity(synapses.SpikePairRule)


class AdditiveWeightDependence(synapses.AdditiveWeightDependence):
    __doc__ = synapses.AdditiveWeightDependence.__doc__
    translations = _identity(synapses.AdditiveWeightDependence)
    spikelm_name = "additive"


class MultiplicativeWeightDependence(synapses.MultiplicativeWeightDependence):
    __doc__ = synapses.MultiplicativeWeightDependence.__doc__
    translations = _identity(synapses.MultiplicativeWeightDependence)
    spikelm_name = "multiplicative"


def stdp_rule(synapse_type, values, scale, label, dt):
    """spikelm's STDP for one part of a projection.

    ``values``: the per-connection parameters of the part (PyNN units); ``scale``: the factor
    from a PyNN weight to spikelm's (one number: the part has one post population).
    """
    from spikelm.plasticity import STDP

    td, wd = synapse_type.timing_dependence, synapse_type.weight_dependence
    if not isinstance(td, SpikePairRule) or not hasattr(wd, "spikelm_name"):
        raise ConfigError(f"projection '{label}': spikelm's STDP is SpikePairRule with AdditiveWeightDependence "
                          f"or MultiplicativeWeightDependence, got {type(td).__name__} with {type(wd).__name__}")
    one = {}
    for name in ("tau_plus", "tau_minus", "A_plus", "A_minus", "w_min", "w_max", "dendritic_delay_fraction"):
        v = np.unique(np.asarray(values[name], float))
        if v.size > 1:
            raise ConfigError(f"projection '{label}': {name} differs between connections; spikelm's STDP takes "
                              f"one value per projection")
        one[name] = float(v[0]) if v.size else float(synapse_type.parameter_space[name].base_value)
    if one["dendritic_delay_fraction"] != 1.0:
        raise ConfigError(f"projection '{label}': dendritic_delay_fraction = {one['dendritic_delay_fraction']:g}; "
                          "spikelm's STDP sees a spike when it arrives, which is dendritic_delay_fraction = 1")
    if wd.spikelm_name == "additive":
        a_plus, a_minus = one["A_plus"] * one["w_max"] * scale, one["A_minus"] * one["w_max"] * scale
    else:
        a_plus, a_minus = one["A_plus"], one["A_minus"]
    # spikelm pairs a post spike of step s (stamped (s + 1) dt here) with arrivals at the start of
    # a step, so its interval is NEST's t_post - t_arrival less one dt: the amplitudes absorb it
    a_plus *= math.exp(-dt / one["tau_plus"])
    a_minus *= math.exp(dt / one["tau_minus"])
    return STDP(a_plus=a_plus, a_minus=a_minus, tau_plus=one["tau_plus"], tau_minus=one["tau_minus"],
                w_min=one["w_min"] * scale, w_max=one["w_max"] * scale, weight_dependence=wd.spikelm_name)
