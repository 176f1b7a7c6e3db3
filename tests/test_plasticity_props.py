"""Hypothesis: bounds, BrainGPT row sums, numpy/numba agreement on random plastic networks."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import spikelm.network as sn
from spikelm.plasticity import STDP, BrainGPTHomeostasis, BrainGPTSTDP, Homeostasis
from spikelm.simulator import Simulator

STEPS = 150


@st.composite
def stdp_rules(draw):
    w_min = draw(st.floats(-2.0, 1.0))
    w_max = w_min + draw(st.floats(0.0, 4.0))
    return STDP(a_plus=draw(st.floats(0.0, 1.0)), a_minus=draw(st.floats(0.0, 1.0)),
                tau_plus=draw(st.floats(1.0, 50.0)), tau_minus=draw(st.floats(1.0, 50.0)),
                w_min=w_min, w_max=w_max, pairing=draw(st.sampled_from(["all", "nearest"])),
                weight_dependence=draw(st.sampled_from(["additive", "multiplicative"])),
                mode=draw(st.sampled_from(["online", "online", "izhikevich2006"])),
                update_every=draw(st.sampled_from([5.0, 20.0, 50.0])))


@st.composite
def braingpt_rules(draw):
    return BrainGPTSTDP(eta_w=draw(st.floats(0.0, 0.5)), a_plus=draw(st.floats(0.0, 2.0)),
                        a_minus=draw(st.floats(0.0, 2.0)), tau_plus=draw(st.floats(1.0, 50.0)),
                        tau_minus=draw(st.floats(1.0, 50.0)), pairing=draw(st.sampled_from(["all", "nearest"])),
                        normalize=True, row_sum=draw(st.one_of(st.none(), st.floats(1.0, 5.0))))


@st.composite
def plastic_specs(draw, rules=None):
    """(seed, post model, rule, rate, delays, p, population rule or None) as plain data."""
    rule = draw(rules if rules is not None else st.one_of(stdp_rules(), braingpt_rules()))
    model = draw(st.sampled_from(["lif", "izhikevich"] if isinstance(rule, STDP) else ["lif", "izhikevich", "eiif"]))
    prule = None
    if model == "lif" and draw(st.booleans()):
        prule = Homeostasis(target_rate=draw(st.floats(1.0, 50.0)), eta=draw(st.floats(0.0, 5.0)),
                            tau_rate=draw(st.floats(10.0, 500.0)), theta_min=-5.0, theta_max=5.0)
    if model == "eiif" and draw(st.booleans()):
        prule = BrainGPTHomeostasis(s_target=0.05, eta_theta=draw(st.floats(0.0, 0.5)),
                                    eta_alpha=draw(st.floats(-0.01, 0.01)), v_target=0.5,
                                    eta_r=draw(st.floats(-0.01, 0.01)), v_rest=0.2, tau_avg=20.0)
    return dict(seed=draw(st.integers(0, 2**16)), model=model, rule=rule, prule=prule,
                rate=draw(st.floats(20.0, 200.0)), dmax=draw(st.integers(1, 12)), p=draw(st.floats(0.1, 0.6)),
                recurrent=draw(st.booleans()))


PARAMS = {"lif": {"tau_e": 0.0, "e_l": -65.0, "v_reset": -65.0, "t_ref": 2.0},
          "izhikevich": {}, "eiif": {"theta_base": 0.5, "alpha": 0.0, "r": 0.3}}


def build(spec):
    net = sn.Network(dt=1.0, seed=spec["seed"])
    net.add_population("src", "poisson", 30, {"rate": spec["rate"]})
    net.add_population("out", spec["model"], 12, PARAMS[spec["model"]], plasticity=spec["prule"])
    rule = spec["rule"]
    if isinstance(rule, STDP):
        w = sn.Uniform(rule.w_min, rule.w_max) if rule.w_max > rule.w_min else rule.w_min
    else:
        w = sn.Uniform(0.0, 1.0)
    scale = {"lif": 8.0, "izhikevich": 6.0, "eiif": 0.3}[spec["model"]]
    net.connect("src", "out", sn.FixedProbability(spec["p"]), weight=w, delay=sn.Uniform(0.5, spec["dmax"] + 0.49),
                name="plastic", plasticity=rule)
    net.connect("src", "out", sn.FixedProbability(0.3), weight=scale, name="drive")
    if spec["recurrent"]:
        net.connect("out", "out", sn.FixedProbability(0.3), weight=w, delay=sn.Uniform(0.5, 3.49), name="rec",
                    plasticity=rule)
    return net


def run(spec, backend, steps=STEPS):
    net = build(spec)
    sim = Simulator(net, backend=backend)
    sim.run(steps=steps)
    return sim


@settings(max_examples=40)
@given(plastic_specs())
def test_numpy_numba_agree(spec):
    a, b = run(spec, "numpy"), run(spec, "numba")
    for p in ("src", "out"):
        for x, y in zip(a.spikes.get(p), b.spikes.get(p)):
            np.testing.assert_array_equal(x, y)
    np.testing.assert_allclose(b.plan.w, a.plan.w, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(b.plan.S, a.plan.S, rtol=1e-12, atol=1e-12)
    for x, y in zip(a.learn.state_dict().values(), b.learn.state_dict().values()):
        np.testing.assert_allclose(y, x, rtol=1e-12, atol=1e-300)


@settings(max_examples=30)
@given(plastic_specs(rules=stdp_rules()))
def test_stdp_weights_stay_in_bounds(spec):
    sim = run(spec, "numba", steps=400)
    rule = spec["rule"]
    for name in ("plastic", "rec"):
        if name in sim.network.projections:
            w = sim.network.projections[name].w
            assert w.min() >= rule.w_min and w.max() <= rule.w_max


@settings(max_examples=30)
@given(plastic_specs(rules=braingpt_rules()), st.sampled_from(["numpy", "numba"]))
def test_braingpt_row_sums_kept(spec, backend):
    net = build(spec)
    sim = Simulator(net, backend=backend)
    projs = [k for k in ("plastic", "rec") if k in net.projections]
    c0 = {}
    for k in projs:
        pr = net.projections[k]
        c0[k] = np.bincount(pr.post_idx, weights=pr.w, minlength=pr.post.n)
    for _ in range(3):
        sim.run(steps=60)
        for k in projs:
            pr = net.projections[k]
            rows = np.bincount(pr.post_idx, weights=pr.w, minlength=pr.post.n)
            c = np.full_like(rows, spec["rule"].row_sum) if spec["rule"].row_sum is not None else c0[k]
            has = np.bincount(pr.post_idx, minlength=pr.post.n) > 0
            np.testing.assert_allclose(rows[has], c[has], rtol=1e-6, atol=1e-9)
