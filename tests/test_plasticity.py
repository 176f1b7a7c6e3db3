"""Homeostasis convergence, on/off switching, checkpoint round trip, validation and scenario fields."""
import math

import numpy as np
import pytest

import spikelm.network as sn
from spikelm.errors import ConfigError
from spikelm.plasticity import STDP, BrainGPTHomeostasis, BrainGPTSTDP, Homeostasis, from_config, to_config
from spikelm.simulator import Simulator

# -- homeostasis converges to the target rate ------------------------------------------------

DRIVES = (20.0, 30.0, 50.0)  # mV above e_l: from just above threshold to far above


def test_lif_homeostasis_reaches_target_rate():
    target = 10.0
    net = sn.Network(dt=0.5, seed=3)
    for k, amp in enumerate(DRIVES):
        name = f"p{k}"
        net.add_population(name, "lif", 10, {"e_l": -65.0, "v_reset": -65.0, "t_ref": 2.0},
                           init={"v": sn.Uniform(-65.0, -50.0)},
                           plasticity=Homeostasis(target_rate=target, eta=0.3, tau_rate=500.0,
                                                  theta_min=-10.0, theta_max=60.0))
        net.add_stimulus(sn.ConstantCurrent(name, amp))
        net.add_stimulus(sn.NoiseCurrent(name, std=5.0))
    sim = Simulator(net, backend="numba")
    sim.run(duration=30_000.0)
    n0 = {p: sim.spikes.count(p) for p in net.populations}
    sim.run(duration=10_000.0)
    for p in net.populations:
        rate = (sim.spikes.count(p) - n0[p]) / 10 / 10.0  # spikes per neuron per second
        assert rate == pytest.approx(target, rel=0.10), f"{p}: {rate:.2f} Hz"


def test_eiif_braingpt_eqs_12_to_14_reach_targets():
    s_target, v_rest = 0.1, 0.3
    net = sn.Network(dt=1.0, seed=5)
    for k, m in enumerate((0.1, 0.2, 0.4)):
        name = f"p{k}"
        net.add_population(name, "eiif", 10, {"theta_base": 0.2, "alpha": 0.0, "r": 0.5},
                           plasticity=BrainGPTHomeostasis(s_target=s_target, eta_theta=0.002, v_target=2.0,
                                                          eta_alpha=1e-4, v_rest=v_rest, eta_r=2e-4,
                                                          tau_avg=500.0, r_min=0.05, r_max=0.95))
        net.add_stimulus(sn.NoiseCurrent(name, mean=m, std=0.3))
    sim = Simulator(net, backend="numba")
    sim.run(steps=40_000)
    n0 = {p: sim.spikes.count(p) for p in net.populations}
    sim.run(steps=10_000)
    for p, pop in net.populations.items():
        per_step = (sim.spikes.count(p) - n0[p]) / pop.n / 10_000
        assert per_step == pytest.approx(s_target, rel=0.10), f"{p}: {per_step:.4f} spikes/step"
        assert np.all(pop.state["alpha"] == 0.0)  # eq. 13 drove alpha to its lower bound (V_bar < V_target)
        vbar = sim.learn.a["vbar"][sim.learn.a["hr_i"][list(net.populations).index(p), 5]:][:pop.n]
        assert vbar.mean() == pytest.approx(v_rest, rel=0.1)  # eq. 14 moved r until V_bar = V_rest


def test_eq_12_as_printed_runs_away():
    """The printed sign of eq. 12 (eta_theta < 0 here) lowers the threshold of a neuron firing too much."""
    net = sn.Network(dt=1.0, seed=5)
    net.add_population("p", "eiif", 10, {"theta_base": 0.5, "alpha": 0.0, "r": 0.5},
                       plasticity=BrainGPTHomeostasis(s_target=0.1, eta_theta=-0.002, tau_avg=500.0))
    net.add_stimulus(sn.NoiseCurrent("p", mean=0.2, std=0.3))
    sim = Simulator(net, backend="numba")
    sim.run(steps=20_000)
    n0 = sim.spikes.count("p")
    sim.run(steps=5_000)
    per_step = (sim.spikes.count("p") - n0) / 10 / 5_000
    assert per_step > 0.5 or per_step < 0.01


def test_eiif_homeostasis_on_theta_base(backend):
    net = sn.Network(dt=1.0, seed=2)
    net.add_population("e", "eiif", 5, {"theta_base": 0.1, "alpha": 0.0, "r": 0.5},
                       plasticity=Homeostasis(target_rate=100.0, eta=0.01, tau_rate=50.0))
    net.add_stimulus(sn.NoiseCurrent("e", mean=0.3, std=0.3))
    sim = Simulator(net, backend=backend)
    sim.run(steps=300)
    assert np.all(net.populations["e"].state["theta_base"] > 0.1)  # fired far above 100 Hz: threshold rose


# -- on/off between runs -------------------------------------------------------------------

def small_net(seed=0, rule=None, prule=None):
    net = sn.Network(dt=1.0, seed=seed)
    net.add_population("src", "poisson", 40, {"rate": 40.0})
    net.add_population("out", "lif", 10, {"tau_e": 0.0, "e_l": -65.0, "v_reset": -65.0, "t_ref": 2.0},
                       plasticity=prule)
    net.connect("src", "out", sn.FixedProbability(0.5), weight=sn.Uniform(1.0, 4.0), delay=sn.Uniform(0.5, 6.49),
                name="plastic",
                plasticity=rule or STDP(a_plus=0.05, a_minus=0.06, w_min=0.0, w_max=6.0, mode="online"))
    net.connect("out", "out", sn.FixedProbability(0.3), weight=2.0, delay=2.0, name="rec",
                plasticity=STDP(a_plus=0.05, a_minus=0.06, w_min=0.0, w_max=6.0, pairing="nearest",
                                mode="izhikevich2006", update_every=50.0))
    return net


def test_switch_off_and_on(backend):
    net = small_net(prule=Homeostasis(target_rate=5.0, eta=1.0, theta_min=-20, theta_max=20))
    sim = Simulator(net, backend=backend)
    sim.run(steps=200)
    w1 = sim.plan.w.copy()
    for name in ("plastic", "rec", "out"):
        sim.learn.set_enabled(name, False)
        assert not sim.learn.enabled(name)
    sim.run(steps=200)
    np.testing.assert_array_equal(sim.plan.w, w1)
    # a frozen homeostatic offset stays in force: the row a holds h / da with no spike trace
    h = sim.learn.a["h"]
    assert np.any(h != 0)
    sim.learn.set_enabled("plastic", True)
    sim.run(steps=200)
    assert np.any(sim.plan.w != w1)
    with pytest.raises(ConfigError, match="no rule on 'nope'"):
        sim.learn.set_enabled("nope", True)


# -- checkpoint mid-learning ----------------------------------------------------------------

def _save(sim):
    q = sim.plan.queue
    return dict(t=sim.t, S=sim.plan.S.copy(), w=sim.plan.w.copy(), qbuf=q.buf.copy(), qcount=q.count.copy(),
                qtot=q.totals.copy(), synops=sim.plan.synops.copy(), learn=sim.learn.state_dict())


def _load(sim, ck):
    q = sim.plan.queue
    sim.t = ck["t"]
    sim.plan.S[...] = ck["S"]
    sim.plan.w[...] = ck["w"]
    q.buf[...], q.count[...], q.totals[...] = ck["qbuf"], ck["qcount"], ck["qtot"]
    sim.plan.synops[...] = ck["synops"]
    sim.learn.load_state_dict(ck["learn"])


@pytest.mark.parametrize("use_module", [False, True])
def test_checkpoint_resume_equals_uninterrupted(backend, tmp_path, use_module):
    prule = Homeostasis(target_rate=5.0, eta=1.0, theta_min=-20, theta_max=20)
    ref = Simulator(small_net(1, prule=prule), backend=backend)
    ref.run(steps=300)
    a = Simulator(small_net(1, prule=prule), backend=backend)
    a.run(steps=137)
    b = Simulator(small_net(1, prule=prule), backend=backend)
    if use_module:
        ckpt = pytest.importorskip("spikelm.io.checkpoint", reason="spikelm.io.checkpoint not written yet")
        ckpt.save(a, tmp_path / "c.h5")
        ckpt.load(b, tmp_path / "c.h5")
    else:
        _load(b, _save(a))
    b.run(steps=300 - 137)
    np.testing.assert_array_equal(b.plan.w, ref.plan.w)
    np.testing.assert_array_equal(b.plan.S, ref.plan.S)
    for k, v in ref.learn.state_dict().items():
        np.testing.assert_array_equal(b.learn.state_dict()[k], v, err_msg=k)


def test_state_dict_shape_mismatch():
    from spikelm.errors import CheckpointMismatchError

    sim = Simulator(small_net(), backend="numpy")
    d = sim.learn.state_dict()
    d["xgrp"] = d["xgrp"][:-1]
    with pytest.raises(CheckpointMismatchError, match="xgrp"):
        sim.learn.load_state_dict(d)


# -- bad input: one line naming the field ----------------------------------------------------

@pytest.mark.parametrize("make, field", [
    (lambda: STDP(tau_plus=-1.0), "tau_plus"),
    (lambda: STDP(tau_minus=0.0), "tau_minus"),
    (lambda: STDP(w_min=2.0, w_max=1.0), "w_min"),
    (lambda: STDP(a_plus=float("nan")), "a_plus"),
    (lambda: STDP(pairing="closest"), "pairing"),
    (lambda: BrainGPTSTDP(eta_w=float("nan")), "eta_w"),
    (lambda: Homeostasis(eta=float("nan")), "eta"),
    (lambda: Homeostasis(tau_rate=-5.0), "tau_rate"),
    (lambda: BrainGPTHomeostasis(eta_alpha=float("nan")), "eta_alpha"),
    (lambda: BrainGPTHomeostasis(r_min=0.5, r_max=0.2), "r_min"),
])
def test_bad_rule_fields(make, field):
    with pytest.raises(ConfigError, match=f"'{field}'") as e:
        make()
    assert "\n" not in str(e.value)


def test_braingpt_homeostasis_on_lif_is_refused():
    net = sn.Network(dt=1.0)
    net.add_population("x", "lif", 3, plasticity=BrainGPTHomeostasis())
    with pytest.raises(ConfigError, match="population 'x'.*braingpt_homeostasis.*lif"):
        Simulator(net, backend="numpy")


def test_stdp_on_population_is_refused():
    net = sn.Network(dt=1.0)
    net.add_population("x", "lif", 3, plasticity=STDP())
    with pytest.raises(ConfigError, match="cannot be attached to a population"):
        Simulator(net, backend="numpy")


def test_initial_weights_outside_bounds_refused():
    net = sn.Network(dt=1.0)
    net.add_population("a", "poisson", 3)
    net.add_population("b", "lif", 3)
    net.connect("a", "b", weight=5.0, plasticity=STDP(w_max=1.0))
    with pytest.raises(ConfigError, match="projection 'a_to_b'.*outside"):
        Simulator(net, backend="numpy")


# -- scenario tables --------------------------------------------------------------------------

W = "x.toml: projections.e.plasticity"


def test_from_config_builds_rules():
    r = from_config({"rule": "stdp", "a_plus": 0.1, "a_minus": 0.12, "w_max": 10, "pairing": "nearest",
                     "mode": "izhikevich2006"}, W, "projection", "izhikevich")
    assert r == STDP(a_plus=0.1, a_minus=0.12, w_max=10.0, pairing="nearest", mode="izhikevich2006")
    for rule in (r, BrainGPTSTDP(row_sum=2.0), Homeostasis(theta_min=-3.0), BrainGPTHomeostasis()):
        target = "projection" if isinstance(rule, (STDP, BrainGPTSTDP)) else "population"
        assert from_config(to_config(rule), W, target, "eiif") == rule


@pytest.mark.parametrize("table, target, model, match", [
    ({"rule": "stdp", "tau_plus": -20.0}, "projection", "lif", r"^x.toml: projections.e.plasticity.tau_plus: must be > 0"),
    ({"rule": "stdp", "w_min": 3.0, "w_max": 1.0}, "projection", "lif", r"plasticity.w_min: \(3.0\) must not exceed"),
    ({"rule": "stdp", "a_plus": math.nan}, "projection", "lif", r"plasticity.a_plus: must be a number, got NaN"),
    ({"rule": "stdp", "taup": 1.0}, "projection", "lif", r"plasticity.taup: unknown field"),
    ({"a_plus": 1.0}, "projection", "lif", r"plasticity.rule: missing"),
    ({"rule": "oja"}, "projection", "lif", r"plasticity.rule: unknown projection rule 'oja'"),
    ({"rule": "homeostasis"}, "projection", "lif", r"is a population rule"),
    ({"rule": "braingpt_homeostasis", "eta_alpha": 0.1}, "population", "lif", r"cannot act on a lif population"),
    ({"rule": "homeostasis"}, "population", "izhikevich", r"cannot act on a izhikevich population"),
    ({"rule": "homeostasis", "eta": "fast"}, "population", "lif", r"plasticity.eta: must be a number"),
])
def test_from_config_errors(table, target, model, match):
    with pytest.raises(ConfigError, match=match) as e:
        from_config(table, W, target, model)
    assert "\n" not in str(e.value)


def test_polychronization_scenario_matches_builder():
    scenario = pytest.importorskip("spikelm.io.scenario", reason="scenario loader not available")
    from pathlib import Path

    from spikelm.plasticity.polychronization import build

    path = Path(__file__).resolve().parent.parent / "scenarios" / "polychronization.toml"
    a, b = build(seed=1), scenario.load_scenario(str(path)).build()
    assert list(a.projections) == list(b.projections)
    for k in a.projections:
        pa, pb = a.projections[k], b.projections[k]
        for f in ("indptr", "post_idx", "w", "delay"):
            np.testing.assert_array_equal(getattr(pa, f), getattr(pb, f), err_msg=f"{k}.{f}")
        assert pa.plasticity == pb.plasticity and pa.target == pb.target
    for k in a.populations:
        for v, x in a.populations[k].state.items():
            np.testing.assert_array_equal(x, b.populations[k].state[v])
