"""Backend agreement: the numba backend reproduces the numpy reference bit for bit.

Same spikes (steps, ids, values), same float state (numba mirrors numpy's operation
order), same SynOps, event totals, rate counts and sampled state, on hypothesis-drawn
random networks: every model, every connectivity rule, random weights, per-synapse delays
of 1..10 steps, every stimulus kind; fixed-step runs, chunked runs and runs to quiescence.
"""
import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import spikelm.network as sn
from helpers import (ALL_MODELS, assert_agree, assert_snapshots_agree, network_specs, signed_if_specs, simulate,
                     snapshot)
from spikelm.simulator import Simulator

STEPS = 300


def _agree(spec, steps=STEPS, **kw):
    ref = snapshot(simulate(spec, "numpy", steps, **kw))
    got = snapshot(simulate(spec, "numba", steps, **kw))
    n = sum(v.size for k, v in ref.items() if k.startswith("spikes/") and k.endswith("/steps"))
    event("spikes: none" if n == 0 else "spikes: some")
    assert_snapshots_agree(ref, got)
    return ref


@settings(max_examples=150)
@given(spec=network_specs(steps=STEPS))
def test_random_networks_agree(spec):
    _agree(spec)


@pytest.mark.parametrize("model", ALL_MODELS)
@settings(max_examples=30)
@given(data=st.data())
def test_every_model_agrees(model, data):
    spec = data.draw(network_specs(require=model, steps=STEPS))
    _agree(spec)


@settings(max_examples=60)
@given(spec=network_specs(steps=STEPS), cuts=st.lists(st.integers(1, 120), min_size=1, max_size=4),
       chunk=st.integers(1, 50))
def test_chunked_numba_run_agrees_with_one_numpy_run(spec, cuts, chunk):
    """Splitting a run into calls and compiled chunks (chunk_steps) changes nothing."""
    cuts = cuts + [max(1, STEPS - sum(cuts))]
    ref = snapshot(simulate(spec, "numpy", sum(cuts)))
    got = snapshot(simulate(spec, "numba", chunks=cuts, chunk_steps=chunk))
    assert_snapshots_agree(ref, got)


@settings(max_examples=100)
@given(spec=signed_if_specs())
def test_run_until_quiescent_agrees(spec):
    """SignedIF networks with integer inputs: same spikes, same step of quiescence."""
    sims = [simulate(spec, b, until_quiescent=True, max_steps=5000) for b in ("numpy", "numba")]
    assert all(s.t < 5000 for s in sims), "a feed-forward SignedIF network must settle"
    assert_snapshots_agree(snapshot(sims[0]), snapshot(sims[1]), ulps=0)


def _cuba_like(seed):
    """A small CUBA-style E/I network with every stimulus kind and exponential synapses."""
    net = sn.Network(0.1, seed)
    init = {"v": sn.Uniform(-60.0, -50.0)}
    net.add_population("exc", "lif", 80, params={"e_l": -49.0}, init=init)   # CUBA's self-driving rest
    net.add_population("inh", "lif", 20, params={"e_l": -49.0, "alpha": 2.0, "tau_a": 50.0}, init=init)
    for pre, w, tg in (("exc", 1.62, "exc"), ("inh", -9.0, "inh")):
        for post in ("exc", "inh"):
            net.connect(pre, post, sn.FixedProbability(0.1), weight=sn.Normal(w, abs(w) / 4),
                        delay=sn.Uniform(0.1, 1.0), target=tg)
    net.add_stimulus(sn.NoiseCurrent("exc", 2.0))
    net.add_stimulus(sn.PoissonInput("inh", 500.0, 0.5))
    net.add_stimulus(sn.CurrentSteps("exc", (5.0, 30.0), (3.0, 0.0)))
    return net


def test_cuba_like_network_agrees_over_a_long_run():
    snaps = []
    for b in ("numpy", "numba"):
        sim = Simulator(_cuba_like(3), backend=b)
        sim.run(1500)
        snaps.append(snapshot(sim))
    assert snaps[0]["spikes/exc/steps"].size > 50, "the network must be active for the test to mean anything"
    assert_snapshots_agree(*snaps)


def _variant(models, stimulus):
    """A small network of ``models`` (a spike source drives the neurons) with one stimulus kind."""
    net = sn.Network(0.5, 11)
    net.add_population("drive", models[0], 10, params={"rate": 100.0} if models[0] == "poisson" else
                       {"times": tuple((float(i), 7.0 + i) for i in range(10))})
    for m in models[1:]:
        net.add_population(m, m, 10, params={"alpha": 0.0, "r": 0.2} if m == "eiif" else None)
        net.connect("drive", m, sn.FixedProbability(0.5), weight=1.0 if m == "signed_if" else sn.Uniform(0.0, 3.0),
                    delay=sn.Uniform(0.3, 3.0))
    target = models[-1]
    amp = {"lif": 12.0, "izhikevich": 8.0, "eiif": 0.3, "signed_if": 1.0}[target]
    if stimulus == "const":
        net.add_stimulus(sn.ConstantCurrent(target, amp))
    elif stimulus == "steps":
        net.add_stimulus(sn.CurrentSteps(target, (2.0, 20.0), (amp, 0.0)))
    elif stimulus == "noise":
        net.add_stimulus(sn.NoiseCurrent(target, amp, amp / 2))
    elif stimulus == "poisson_input":
        net.add_stimulus(sn.PoissonInput(target, 2000.0, {"lif": 3.0, "izhikevich": 10.0}.get(target, 1.0)))
    return net


@pytest.mark.parametrize("models,stimulus", [
    (("spike_times", "lif"), "const"), (("poisson", "lif"), "noise"), (("spike_times", "izhikevich"), "poisson_input"),
    (("poisson", "eiif"), "steps"), (("spike_times", "signed_if"), None), (("poisson", "signed_if"), "steps"),
    (("poisson", "lif", "izhikevich", "eiif", "signed_if"), "noise")])
def test_specialised_loops_agree(models, stimulus):
    """The numba loop compiled for just what a network uses (the production path) agrees too."""
    snaps = []
    for b in ("numpy", "numba"):
        sim = Simulator(_variant(models, stimulus), backend=b)
        sim.run(200)
        snaps.append(snapshot(sim))
    assert sum(snaps[0][f"spikes/{m}/steps"].size for m in models[1:]) > 0
    assert_snapshots_agree(*snaps)


def test_agreement_helper_catches_differences():
    """The helper itself: exact on integers, ulp-scaled on floats, NaN-aware."""
    a = np.array([1.0, 1e6, np.nan])
    assert_agree(a, a.copy(), ulps=0)
    assert_agree(a, a + np.array([0.0, 1e6 * 2e-16, 0.0]), ulps=4)
    with pytest.raises(AssertionError):
        assert_agree(a, a + np.array([0.0, np.spacing(1e6), 0.0]), ulps=0)
    with pytest.raises(AssertionError):
        assert_agree(a, np.array([1.0, 1e6, 0.0]), ulps=4)
    with pytest.raises(AssertionError):
        assert_agree(np.arange(3), np.array([0, 1, 3]))
    with pytest.raises(AssertionError):
        assert_agree(np.arange(3), np.arange(4))
