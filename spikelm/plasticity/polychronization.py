"""Izhikevich (2006) "Polychronization" network, built in Python (the same network as
scenarios/polychronization.toml; tests check the two agree).

1,000 neurons: 800 regular-spiking excitatory (a=0.02, b=0.2, c=-65, d=8), 200 fast-spiking
inhibitory (a=0.1, b=0.2, c=-65, d=2). Each neuron has 100 outgoing synapses, no autapses:
excitatory ones to any neuron (80 to exc, 20 to inh), delays uniform over 1..20 ms, weight 6,
plastic; inhibitory ones to excitatory neurons only, delay 1 ms, weight -5, fixed. Thalamic
input: a Poisson source of 1,000 neurons at 1 Hz, one-to-one, weight 20 (one 20 mV input per
ms on average, as spnet.cpp's one random neuron per ms). dt = 1 ms.

STDP as in spnet.cpp: A+ = 0.1, A- = 0.12, tau = 20 ms, nearest-spike traces, weights in
[0, 10], applied once per second through the derivative sd (mode "izhikevich2006").
"""
from __future__ import annotations

from spikelm.network import FixedOutDegree, Network, OneToOne, Uniform

from .rules import STDP


def stdp_rule():
    """The spnet.cpp rule."""
    return STDP(a_plus=0.1, a_minus=0.12, tau_plus=20.0, tau_minus=20.0, w_min=0.0, w_max=10.0, pairing="nearest",
                mode="izhikevich2006", update_every=1000.0, sd_bias=0.01, sd_decay=0.9)


def build(seed=1, stdp=True):
    """The network; ``stdp=False`` leaves the excitatory weights fixed (no rule attached)."""
    net = Network(dt=1.0, seed=seed)
    net.add_population("exc", "izhikevich", 800, init={"a": 0.02, "b": 0.2, "c": -65.0, "d": 8.0, "v": -65.0,
                                                       "u": -13.0})
    net.add_population("inh", "izhikevich", 200, init={"a": 0.1, "b": 0.2, "c": -65.0, "d": 2.0, "v": -65.0,
                                                       "u": -13.0})
    net.add_population("thal_e", "poisson", 800, {"rate": 1.0})
    net.add_population("thal_i", "poisson", 200, {"rate": 1.0})
    rule = stdp_rule() if stdp else None
    delays = Uniform(0.5, 20.5)  # rounds to whole ms 1..20
    net.connect("exc", "exc", FixedOutDegree(80, allow_autapses=False), weight=6.0, delay=delays,
                name="exc_to_exc", plasticity=rule)
    net.connect("exc", "inh", FixedOutDegree(20), weight=6.0, delay=delays, name="exc_to_inh", plasticity=rule)
    net.connect("inh", "exc", FixedOutDegree(100), weight=-5.0, delay=1.0, target="inh", name="inh_to_exc")
    net.connect("thal_e", "exc", OneToOne(), weight=20.0, delay=1.0, name="thal_to_exc")
    net.connect("thal_i", "inh", OneToOne(), weight=20.0, delay=1.0, name="thal_to_inh")
    return net
