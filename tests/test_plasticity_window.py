"""The STDP window against its closed form, for one pre/post pair at every dt in [-100, 100] ms.

Each pair (pre neuron k, post neuron k) is independent: a spike-time source fires the pre
neuron once; a second source drives the post LIF neuron (delta synapse, far above
threshold) so it fires exactly once at a chosen step. The plastic projection is
one-to-one with delay d, so the pre spike *arrives* at t_pre + d, and the window is a
function of dt_pair = t_post - (t_pre + d) (docs/plasticity.md).
"""
import math

import numpy as np
import pytest

import spikelm.network as sn
from spikelm.plasticity import STDP, BrainGPTSTDP
from spikelm.simulator import Simulator

DTS = np.arange(-100, 101)  # t_post - t_arrival, ms (dt = 1 ms)
W0 = 0.5
T_ARRIVE = 150  # arrival step of every pre spike


def run_pairs(rule, delay, backend, dt_pairs=DTS):
    n = dt_pairs.size
    t_pre = T_ARRIVE - delay
    t_post = T_ARRIVE + dt_pairs
    net = sn.Network(dt=1.0, seed=0)
    net.add_population("pre", "spike_times", n, {"times": tuple((float(t_pre),) for _ in range(n))})
    # the driver fires one step before the post spike (its synapse has a one-step delay)
    net.add_population("drv", "spike_times", n, {"times": tuple((float(t - 1),) for t in t_post)})
    net.add_population("post", "lif", n, {"e_l": -65.0, "v_reset": -65.0, "tau_e": 0.0, "t_ref": 2.0})
    net.connect("drv", "post", sn.OneToOne(), weight=100.0, delay=1.0)
    net.connect("pre", "post", sn.OneToOne(), weight=W0, delay=float(delay), name="plastic", plasticity=rule)
    sim = Simulator(net, backend=backend)
    sim.run(steps=T_ARRIVE + 120)
    counts = np.bincount(sim.spikes.get("post")[1], minlength=n)
    assert np.all(counts == 1), "each post neuron must fire exactly once"
    return net.projections["plastic"].w.copy()


def stdp_window(dts, a_plus, a_minus, tau_plus, tau_minus):
    return np.where(dts >= 0, a_plus * np.exp(-dts / tau_plus), -a_minus * np.exp(dts / tau_minus))


@pytest.mark.parametrize("pairing", ["all", "nearest"])
@pytest.mark.parametrize("delay", [1, 7])
def test_stdp_window_exact(backend, pairing, delay):
    rule = STDP(a_plus=0.05, a_minus=0.06, tau_plus=16.8, tau_minus=33.7, w_min=-10.0, w_max=10.0, pairing=pairing)
    w = run_pairs(rule, delay, backend)
    want = W0 + stdp_window(DTS, 0.05, 0.06, 16.8, 33.7)
    np.testing.assert_allclose(w, want, rtol=1e-13, atol=1e-15)


def test_stdp_window_multiplicative(backend):
    rule = STDP(a_plus=0.05, a_minus=0.06, tau_plus=20.0, tau_minus=20.0, w_min=0.0, w_max=2.0,
                weight_dependence="multiplicative")
    w = run_pairs(rule, 3, backend)
    x = np.exp(-np.abs(DTS) / 20.0)
    want = np.where(DTS >= 0, W0 + 0.05 * x * (2.0 - W0), W0 - 0.06 * x * (W0 - 0.0))
    np.testing.assert_allclose(w, want, rtol=1e-13, atol=1e-15)


def test_delay_shifts_the_window(backend):
    """Measured from the pre *spike*, the window's zero crossing moves by the delay."""
    d = 12
    rule = STDP(a_plus=0.05, a_minus=0.06, w_min=-10.0, w_max=10.0)
    w = run_pairs(rule, d, backend)
    dt_spike = DTS + d  # t_post - t_pre_spike
    assert np.all(w[(dt_spike >= 0) & (dt_spike < d)] < W0)  # post after the pre spike, before it arrives
    assert np.all(w[dt_spike >= d] > W0)


@pytest.mark.parametrize("pairing", ["all", "nearest"])
def test_braingpt_window_exact(backend, pairing):
    """Eqs. 11 and 15: w += eta (delta - w), delta = A+ e^(-dt/tau+) if dt > 0, -A- e^(dt/tau-) if dt <= 0."""
    rule = BrainGPTSTDP(eta_w=0.3, a_plus=0.8, a_minus=0.6, tau_plus=15.0, tau_minus=25.0, pairing=pairing,
                        normalize=False)
    w = run_pairs(rule, 4, backend)
    delta = np.where(DTS > 0, 0.8 * np.exp(-DTS / 15.0), -0.6 * np.exp(DTS / 25.0))
    np.testing.assert_allclose(w, W0 + 0.3 * (delta - W0), rtol=1e-13, atol=1e-15)


def test_all_to_all_sums_and_nearest_keeps_one(backend):
    """Two pre spikes before one post spike: all-to-all adds both pairs, nearest only the later one."""
    res = {}
    for pairing in ("all", "nearest"):
        net = sn.Network(dt=1.0, seed=0)
        net.add_population("pre", "spike_times", 1, {"times": ((10.0, 20.0),)})
        net.add_population("drv", "spike_times", 1, {"times": ((29.0,),)})
        net.add_population("post", "lif", 1, {"e_l": -65.0, "v_reset": -65.0, "tau_e": 0.0, "t_ref": 2.0})
        net.connect("drv", "post", sn.OneToOne(), weight=100.0)
        net.connect("pre", "post", sn.OneToOne(), weight=W0, delay=2.0, name="p",
                    plasticity=STDP(a_plus=0.1, a_minus=0.0, w_min=-5.0, w_max=5.0, pairing=pairing))
        Simulator(net, backend=backend).run(steps=40)
        res[pairing] = net.projections["p"].w[0]
    near = 0.1 * math.exp(-8 / 20)
    assert res["nearest"] == pytest.approx(W0 + near, rel=1e-13)
    assert res["all"] == pytest.approx(W0 + near + 0.1 * math.exp(-18 / 20), rel=1e-13)
