"""Engine features the NIR import relies on: per-neuron current amplitudes (an Affine node's
bias) and the leak-free limit of the LIF neuron (NIR's IF node)."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spikelm.network as sn
from spikelm.errors import ConfigError
from spikelm.network.models import LIFParams
from spikelm.network.models.lif import derive
from spikelm.simulator import Simulator, StateMonitor

from helpers import fl

LIF = dict(tau_m=10.0, v_th=-50.0, v_reset=-65.0, e_l=-60.0, t_ref=0.0)


def _run(net, backend, steps):
    sim = Simulator(net, backend=backend, state=[StateMonitor(p, ["v"], every=1) for p in net.populations])
    sim.run(steps)
    return sim


@settings(max_examples=20)
@given(amps=st.lists(fl(-20.0, 40.0), min_size=1, max_size=5),
       steps_amps=st.lists(st.one_of(fl(-10.0, 20.0), st.lists(fl(-10.0, 20.0), min_size=5, max_size=5)),
                           min_size=1, max_size=3),
       backend=st.sampled_from(["numpy", "numba"]))
def test_per_neuron_amplitudes_equal_one_population_per_neuron(amps, steps_amps, backend):
    """A population with per-neuron amplitudes behaves as n populations, each with its own number."""
    n = len(amps)
    times = tuple(float(5 * k) for k in range(len(steps_amps)))
    steps_amps = [a if isinstance(a, float) else a[:n] for a in steps_amps]
    whole = sn.Network(0.5, 1)
    whole.add_population("p", "lif", n, params=LIF)
    whole.add_stimulus(sn.ConstantCurrent("p", amps))
    whole.add_stimulus(sn.CurrentSteps("p", times, tuple(steps_amps)))
    parts = sn.Network(0.5, 1)
    for j in range(n):
        parts.add_population(f"p{j}", "lif", 1, params=LIF)
        parts.add_stimulus(sn.ConstantCurrent(f"p{j}", amps[j]))
        parts.add_stimulus(sn.CurrentSteps(f"p{j}", times, tuple(a if isinstance(a, float) else a[j]
                                                                 for a in steps_amps)))
    a, b = _run(whole, backend, 120), _run(parts, backend, 120)
    v_whole = a.state_monitors[0].get("v")[1]
    for j in range(n):
        assert np.array_equal(v_whole[:, j], b.state_monitors[j].get("v")[1][:, 0])
        steps, ids, _ = a.spikes.get("p")
        assert np.array_equal(steps[ids == j], b.spikes.get(f"p{j}")[0])


@pytest.mark.parametrize("stim", [lambda: sn.ConstantCurrent("p", [1.0, 2.0]),
                                  lambda: sn.CurrentSteps("p", (0.0, 1.0), (1.0, [1.0, 2.0, 3.0, 4.0]))])
def test_per_neuron_amplitude_of_wrong_length_is_refused(stim):
    net = sn.Network(0.1, 0)
    net.add_population("p", "lif", 3)
    with pytest.raises(ConfigError, match="needs 3 values"):
        net.add_stimulus(stim())


def test_non_finite_per_neuron_amplitude_is_refused():
    with pytest.raises(ConfigError, match="finite"):
        sn.ConstantCurrent("p", [1.0, math.nan])


@pytest.mark.parametrize("dt", [0.1, 1.0])
def test_leak_free_lif_integrates_a_current(dt):
    """tau_m so long that exp(-dt/tau_m) rounds to 1 (no leak) still takes r_m/tau_m * I per ms:
    V after k steps is k dt (r_m / tau_m) I (NIR's IF neuron: dV/dt = r I)."""
    tau = 1e30
    p = LIFParams(tau_m=tau, r_m=tau, e_l=0.0, v_th=1e9, v_reset=0.0, t_ref=0.0, tau_e=0.0, tau_i=0.0)
    c = derive(p, dt)
    assert c[3] == 1.0  # no leak at all
    net = sn.Network(dt, 0)
    net.add_population("p", "lif", 1, params=p)
    net.add_stimulus(sn.ConstantCurrent("p", 2.5))
    sim = Simulator(net, backend="numpy")
    sim.run(40)
    assert net.populations["p"].state["v"][0] == pytest.approx(40 * dt * 2.5, rel=1e-12)


def test_per_neuron_amplitudes_on_the_cupy_kernels(monkeypatch):
    """The CUDA kernels (run on the CPU by spikelm's emulator) take the one-neuron entries as numpy does."""
    import sys

    import spikelm.gpu.backend as gb
    from spikelm.gpu import emulate
    from spikelm.gpu import kernels as gk

    if emulate.compiler() is None:
        pytest.skip("no host C++ compiler (g++): the CUDA kernels cannot be emulated on this machine")
    monkeypatch.setitem(sys.modules, "cupy", emulate.fake_cupy(execute=True, tile=64))
    monkeypatch.setattr(gk, "TILE", 64)
    monkeypatch.setattr(gk, "_build", None)
    runs = []
    try:
        for backend in ("numpy", "cupy"):
            net = sn.Network(0.5, 1)
            net.add_population("p", "lif", 4, params=LIF)
            net.add_stimulus(sn.ConstantCurrent("p", [5.0, 12.0, 30.0, -3.0]))
            net.add_stimulus(sn.CurrentSteps("p", (2.0, 10.0), ([0.0, 10.0, 0.0, 25.0], 3.0)))
            sim = _run(net, backend, 80)
            runs.append((sim.spikes.get("p"), sim.state_monitors[0].get("v")[1]))
    finally:
        gb.set_propagation("atomic")
        gk._build = None
    (ref_sp, ref_v), (got_sp, got_v) = runs
    assert all(np.array_equal(a, b) for a, b in zip(ref_sp, got_sp)) and ref_sp[0].size > 0
    assert np.array_equal(ref_v, got_v)
