"""Done-when 1 of issue 16: spikelm -> NIR -> spikelm gives identical spikes, on hypothesis-drawn
networks of what NIR can express (LIF populations with delta or exponential-current synapses,
spike_times and poisson sources, projections of every connectivity rule with per-synapse
delays, current and Poisson stimuli)."""
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

pytest.importorskip("nir", reason="the NIR tests need the optional nir package (pip install -e '.[nir]')")

from spikelm.io.nir import export_network, import_nir
from spikelm.simulator import Simulator

from helpers import build, fl, model_params, rule_for, weight_for

STEPS = 200
EXAMPLES = max(10, settings().max_examples // 4)  # 25 by default, 125 with HYPOTHESIS_PROFILE=thorough


@st.composite
def nir_specs(draw):
    dt = draw(st.sampled_from([0.1, 0.5, 1.0]))
    pops = []
    for i in range(draw(st.integers(0, 2))):
        model = draw(st.sampled_from(["spike_times", "poisson"]))
        n = draw(st.integers(1, 6))
        params, init = draw(model_params(model, n, dt, STEPS))
        pops.append({"name": f"s{i}", "model": model, "n": n, "params": params, "init": init})
    for i in range(draw(st.integers(1, 3))):
        n = draw(st.integers(1, 8))
        params, init = draw(model_params("lif", n, dt, STEPS))
        tau = draw(st.one_of(st.just(0.0), fl(1.0, 10.0)))  # delta synapses, or one tau_syn (CubaLIF)
        params.update(t_ref=0.0, alpha=0.0, tau_e=tau, tau_i=tau)
        pops.append({"name": f"p{i}", "model": "lif", "n": n, "params": params, "init": init, "tau": tau})
    conns = []
    for i, pre in enumerate(pops):
        for j, post in enumerate(pops):
            if post["model"] != "lif" or not draw(st.booleans()):
                continue
            lo = draw(st.integers(1, 10))
            conns.append({"name": f"c{i}{j}", "pre": pre["name"], "post": post["name"],
                          "rule": draw(rule_for(pre["n"], post["n"], i == j)),
                          "weight": weight_for(draw, pre["model"], "lif"),
                          "delay_steps": (lo, draw(st.integers(lo, 10))),
                          "target": draw(st.sampled_from(["exc", "inh"]))})
    stims = []
    for p in pops:
        if p["model"] != "lif":
            continue
        for _ in range(draw(st.integers(0, 2))):
            kinds = ["const", "const_each", "steps", "noise", "poisson"] if p["tau"] == 0 else ["poisson"]
            kind = draw(st.sampled_from(kinds))
            n = p["n"]
            if kind == "const":
                stims.append(("const", p["name"], draw(fl(-10.0, 30.0))))
            elif kind == "const_each":
                stims.append(("const", p["name"], draw(st.lists(fl(-10.0, 30.0), min_size=n, max_size=n))))
            elif kind == "steps":
                k = draw(st.integers(1, 3))
                times = sorted(draw(st.lists(fl(0.0, STEPS * dt), min_size=k, max_size=k)))
                amps = [draw(st.one_of(fl(-10.0, 30.0), st.lists(fl(-10.0, 30.0), min_size=n, max_size=n)))
                        for _ in range(k)]
                stims.append(("steps", p["name"], times, amps))
            elif kind == "noise":
                stims.append(("noise", p["name"], draw(fl(0.0, 10.0)), draw(fl(-5.0, 15.0))))
            else:
                stims.append(("poisson", p["name"], draw(fl(0.0, 3000.0)), draw(fl(-3.0, 6.0)),
                              draw(st.sampled_from(["exc", "inh"]))))
    return {"dt": dt, "seed": draw(st.integers(0, 2**31 - 1)), "pops": pops, "conns": conns, "stims": stims}


def _spikes(net):
    sim = Simulator(net, backend="numpy")
    sim.run(STEPS)
    return {p: sim.spikes.get(p) for p in net.populations}


# found by CI: pre already in order, post not, a pair repeated (the projection kept that order,
# the matrix the NIR file holds cannot)
_LIF = {"tau_m": 5.0, "v_th": -45.0, "v_reset": -48.0, "e_l": -45.0, "t_ref": 0.0, "tau_e": 0.0, "tau_i": 0.0,
        "r_m": 1.0, "alpha": 0.0, "tau_a": 10.0}
_REPEATED_PAIR = {"dt": 0.1, "seed": 0, "stims": [],
                  "pops": [{"name": "p0", "model": "lif", "n": 2, "params": _LIF,
                            "init": {"v": ("uniform", -48.0, -45.0)}, "tau": 0.0}],
                  "conns": [{"name": "c00", "pre": "p0", "post": "p0", "rule": ("arrays", (0, 0, 0), (0, 1, 0)),
                             "weight": ("const", 1.0), "delay_steps": (1, 1), "target": "exc"}]}


@settings(max_examples=EXAMPLES)
@given(spec=nir_specs())
@example(spec=_REPEATED_PAIR)
def test_roundtrip_gives_identical_spikes(spec, tmp_path_factory):
    path = tmp_path_factory.mktemp("nir") / "net.nir"
    original = build(spec)
    export_network(original, path)
    again = import_nir(path, spec["dt"]).build()
    assert list(again.populations) == list(original.populations)
    assert list(again.projections) == list(original.projections)
    for name, k in original.projections.items():  # every synapse back, in the same order, bit for bit
        k2 = again.projections[name]
        keep = k.w != 0  # a dense NIR weight matrix cannot hold a synapse of weight 0
        assert np.array_equal(k.pre_idx()[keep], k2.pre_idx())
        assert np.array_equal(k.post_idx[keep], k2.post_idx)
        assert np.array_equal(k.w[keep], k2.w) and np.array_equal(k.delay[keep], k2.delay)
        assert k.target == k2.target
    for name, p in original.populations.items():
        if p.model.name == "lif":
            q = again.populations[name].params
            assert (q.v_th, q.v_reset, q.e_l, q.tau_e > 0) == (p.params.v_th, p.params.v_reset, p.params.e_l,
                                                               p.params.tau_e > 0)
            # time constants cross ms -> s -> ms: within one ulp
            assert q.tau_m == pytest.approx(p.params.tau_m, rel=3e-16)
    ref, got = _spikes(build(spec)), _spikes(again)
    for p in ref:
        for a, b in zip(ref[p], got[p]):
            assert np.array_equal(a, b), f"population {p}: spikes differ after the round trip"
