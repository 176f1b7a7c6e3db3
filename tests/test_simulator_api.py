"""The Simulator's public switches: plasticity on/off, backend choice, run arguments."""
from __future__ import annotations

import numpy as np
import pytest

import spikelm.network as sn
from spikelm.errors import ConfigError
from spikelm.plasticity.rules import STDP
from spikelm.simulator import Simulator


def plastic_net(seed=0):
    net = sn.Network(dt=1.0, seed=seed)
    net.add_population("src", "poisson", 20, params={"rate": 40.0})
    net.add_population("out", "lif", 5, params={"tau_e": 0.0, "tau_i": 0.0, "e_l": -65.0, "v_th": -55.0,
                                                 "v_reset": -65.0, "t_ref": 2.0})
    net.connect("src", "out", sn.AllToAll(), weight=3.0, delay=1.0, name="ff",
                plasticity=STDP(a_plus=0.1, a_minus=0.12, tau_plus=20.0, tau_minus=20.0, w_min=0.0, w_max=6.0))
    return net


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_set_plasticity_freezes_and_releases_weights(backend):
    sim = Simulator(plastic_net(), backend=backend)
    sim.run(200)
    w0 = sim.network.projections["ff"].w.copy()
    sim.set_plasticity("ff", False)
    sim.run(200)
    np.testing.assert_array_equal(sim.network.projections["ff"].w, w0)
    sim.set_plasticity("ff", True)
    sim.run(200)
    assert not np.array_equal(sim.network.projections["ff"].w, w0)


def test_set_plasticity_errors_name_the_problem():
    net = sn.Network(dt=0.1)
    net.add_population("a", "lif", 3)
    sim = Simulator(net, backend="numpy")
    with pytest.raises(ConfigError, match="no rules"):
        sim.set_plasticity("a", False)
    sim = Simulator(plastic_net(), backend="numpy")
    with pytest.raises(ConfigError, match="enabled"):
        sim.set_plasticity("ff", "yes")


def test_backend_and_run_arguments_are_checked():
    net = sn.Network(dt=0.1)
    net.add_population("a", "lif", 3)
    with pytest.raises(ConfigError, match="unknown backend 'torch'.*numpy, numba, cupy"):
        Simulator(net, backend="torch")
    sim = Simulator(net, backend="numpy")
    with pytest.raises(ConfigError, match="max_steps"):
        sim.run(until_quiescent=True)
    with pytest.raises(ConfigError, match="duration"):
        sim.run(duration=float("nan"))
    with pytest.raises(ConfigError, match="steps"):
        sim.run(steps=-1)
