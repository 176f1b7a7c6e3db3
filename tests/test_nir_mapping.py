"""The NIR <-> spikelm mapping piece by piece: conventions (threshold, time units), the exact and
Euler discretisations against closed forms and hand-written steps, each node type, delays,
same-step timing, heterogeneous neurons, subgraphs, the TOML writer and ``spikelm info``."""
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

pytest.importorskip("nir", reason="the NIR tests need the optional nir package (pip install -e '.[nir]')")

import nir

from spikelm.errors import FileFormatError
from spikelm.io.nir import describe, import_nir
from spikelm.io.nir_params import next_down, next_up
from spikelm.io.nir_toml import dumps
from spikelm.simulator import Simulator, StateMonitor

from helpers import fl

EXAMPLES = max(10, settings().max_examples // 4)
floats = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=4 * EXAMPLES)
@given(thr=floats, v=floats)
def test_threshold_conventions_agree_bit_for_bit(thr, v):
    """NIR fires when v > threshold, spikelm when V >= v_th = next_up(threshold): the same test."""
    assert (v >= next_up(thr)) == (v > thr)
    assert (v > next_down(thr)) == (v >= thr)
    assert next_up(next_down(thr)) == thr


def _graph(nodes, edges):
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _lif(n, tau, r, v_leak=0.0, thr=1.0, reset=0.0):
    return nir.LIF(tau=np.full(n, tau), r=np.full(n, r), v_leak=np.full(n, v_leak), v_threshold=np.full(n, thr),
                   v_reset=np.full(n, reset))


def _bias_graph(neuron, bias, n=1):
    """Input (silent) -> Affine(0, bias) -> neuron -> Output: the neuron sees a constant current."""
    return _graph({"inp": nir.Input(input_type=np.array([1])),
                   "fc": nir.Affine(weight=np.zeros((n, 1)), bias=np.full(n, bias)), "x": neuron,
                   "out": nir.Output(output_type=np.array([n]))},
                  [("inp", "fc"), ("fc", "x"), ("x", "out")])


def _trace(imp, steps, var="v"):
    sc = imp.scenario()
    net = sc.build()
    pop = next(p for p in net.populations if p not in imp.inputs)
    sim = Simulator(net, backend="numpy", state=[StateMonitor(pop, [var], every=1)])
    sim.run(steps)
    return sim.state_monitors[0].get(var)[1][:, 0], sim, net


@pytest.mark.parametrize("dt", [0.1, 0.5])
def test_exact_lif_follows_the_closed_form(dt):
    """tau dv/dt = (v_leak - v) + r b: v(t) = v_leak + r b (1 - exp(-t/tau)) (tau = 20 ms, in s in the file)."""
    tau, r, b, v_leak = 0.02, 3.0, 2.0, -1.0
    imp = import_nir(_bias_graph(_lif(1, tau, r, v_leak, thr=1e9, reset=-2.0), b), dt)
    v, _, _ = _trace(imp, 100)
    t = (np.arange(100) + 1) * dt
    assert np.allclose(v, v_leak + r * b * (1 - np.exp(-t / (tau * 1e3))), rtol=1e-12, atol=1e-12)


def test_euler_lif_is_the_forward_euler_step():
    dt, tau, r, b = 0.1, 0.0008, 2.0, 0.7  # dt / tau = 0.125 in the file's seconds
    imp = import_nir(_bias_graph(_lif(1, tau, r, thr=1e9, reset=-1.0), b), dt, discretisation="euler")
    v, _, _ = _trace(imp, 60)
    a, ref, x = dt * 1e-3 / tau, [], 0.0
    for _ in range(60):
        x = x + a * (-x + r * b)
        ref.append(x)
    assert np.allclose(v, ref, rtol=1e-13)


def test_euler_step_longer_than_tau_is_refused():
    with pytest.raises(FileFormatError, match=r"dt/tau = 2 > 1"):
        import_nir(_bias_graph(_lif(1, 0.00005, 1.0), 1.0), 0.1, discretisation="euler")


def test_if_integrates_without_leak():
    r, b, dt = 4.0, 0.5, 0.1
    node = nir.IF(r=np.array([r]), v_threshold=np.array([1e9]), v_reset=np.array([0.0]))
    v, _, _ = _trace(import_nir(_bias_graph(node, b), dt), 50)
    assert np.allclose(v, r * b * (np.arange(50) + 1) * dt * 1e-3, rtol=1e-12)


def test_cubalif_exact_follows_the_closed_form():
    """A constant input b into the synaptic current: with tau_m != tau_s and v(0) = 0,
    v(t) = r w_in b [1 - (tau_m e^(-t/tau_m) - tau_s e^(-t/tau_s)) / (tau_m - tau_s)]."""
    ts, tm, r, w_in, b, dt = 0.005, 0.02, 2.0, 1.5, 0.4, 0.1
    node = nir.CubaLIF(tau_syn=np.array([ts]), tau_mem=np.array([tm]), r=np.array([r]), v_leak=np.zeros(1),
                       v_threshold=np.array([1e9]), v_reset=np.array([-1.0]), w_in=np.array([w_in]))
    v, _, _ = _trace(import_nir(_bias_graph(node, b), dt), 300)
    t = (np.arange(300) + 1) * dt
    tsm, tmm = ts * 1e3, tm * 1e3
    ref = r * w_in * b * (1 - (tmm * np.exp(-t / tmm) - tsm * np.exp(-t / tsm)) / (tmm - tsm))
    assert np.allclose(v, ref, rtol=1e-11, atol=1e-13)


def test_cubalif_euler_is_the_semi_implicit_step_of_snntorch():
    """syn_t = (1 - dt/tau_s) syn + (dt/tau_s) w_in b;  v_t = (1 - dt/tau_m) v + (dt/tau_m) r syn_t."""
    ts, tm, r, w_in, b, dt = 0.0004, 0.001, 3.0, 2.0, 0.3, 0.1
    node = nir.CubaLIF(tau_syn=np.array([ts]), tau_mem=np.array([tm]), r=np.array([r]), v_leak=np.zeros(1),
                       v_threshold=np.array([1e9]), v_reset=np.array([-1.0]), w_in=np.array([w_in]))
    v, _, _ = _trace(import_nir(_bias_graph(node, b), dt, discretisation="euler"), 80)
    dtf, syn, x, ref = dt * 1e-3, 0.0, 0.0, []
    for _ in range(80):
        syn = (1 - dtf / ts) * syn + dtf / ts * w_in * b
        x = (1 - dtf / tm) * x + dtf / tm * r * syn
        ref.append(x)
    assert np.allclose(v, ref, rtol=1e-12)


def test_threshold_node_fires_on_its_instantaneous_input():
    """z_t = H(W s + b - threshold), no memory: input spikes arrive one step later (one step per edge)."""
    w = np.array([[0.6, 0.5]])
    g = _graph({"inp": nir.Input(input_type=np.array([2])), "fc": nir.Affine(weight=w, bias=np.array([0.1])),
                "th": nir.Threshold(threshold=np.array([0.7])), "out": nir.Output(output_type=np.array([1]))},
               [("inp", "fc"), ("fc", "th"), ("th", "out")])
    imp = import_nir(g, 1.0)
    x = np.array([[1, 0], [0, 1], [1, 1], [0, 0], [1, 0]], dtype=bool)
    imp.set_input("inp", x)
    sim = Simulator(imp.build(), backend="numpy")
    sim.run(6)
    fired = np.zeros(6, dtype=bool)
    fired[sim.spikes.get("th")[0]] = True
    assert fired[1:].tolist() == ((x @ w[0] + 0.1) > 0.7).tolist() and not fired[0]


def test_li_is_read_out_as_a_voltage():
    node = nir.LI(tau=np.array([0.01]), r=np.array([1.0]), v_leak=np.array([0.5]))
    imp = import_nir(_bias_graph(node, 1.0), 0.1)
    assert imp.data["record"]["state"] == [{"population": "x", "variables": ["v"], "every": 0.1}]
    v, sim, _ = _trace(imp, 40)
    assert np.allclose(v, 0.5 + (1 - np.exp(-(np.arange(40) + 1) * 0.1 / 10.0)), rtol=1e-12)
    assert sim.spikes.get("x")[0].size == 0


def test_a_readout_cannot_drive_synapses():
    g = _graph({"inp": nir.Input(input_type=np.array([1])), "fc": nir.Linear(weight=np.ones((1, 1))),
                "li": nir.LI(tau=np.ones(1), r=np.ones(1), v_leak=np.zeros(1)), "fc2": nir.Linear(weight=np.ones((1, 1))),
                "lif": _lif(1, 1.0, 1.0), "out": nir.Output(output_type=np.array([1]))},
               [("inp", "fc"), ("fc", "li"), ("li", "fc2"), ("fc2", "lif"), ("lif", "out")])
    with pytest.raises(FileFormatError, match=r"node 'li' \(LI\): feeds 'fc2'"):
        import_nir(g, 0.1)


def _chain(delay_at, d1, d2=None):
    """Input(2) -> [Delay] -> Linear -> [Delay] -> LIF(2)."""
    nodes = {"inp": nir.Input(input_type=np.array([2])), "w": nir.Linear(weight=np.array([[1.0, 2.0], [3.0, 0.0]])),
             "lif": _lif(2, 0.02, 200.0), "out": nir.Output(output_type=np.array([2]))}
    edges = [("lif", "out")]
    if delay_at == "before":
        nodes["d"] = nir.Delay(delay=np.array(d1))
        edges += [("inp", "d"), ("d", "w"), ("w", "lif")]
    else:
        nodes["d"] = nir.Delay(delay=np.array(d1))
        edges += [("inp", "w"), ("w", "d"), ("d", "lif")]
    return _graph(nodes, edges)


@pytest.mark.parametrize("where, delays, steps", [
    ("after", [0.0003, 0.0005], {(0, 0): 4, (1, 0): 4, (0, 1): 6}),   # per post neuron, + the edge's step
    ("before", [0.0003, 0.0005], {(0, 0): 4, (1, 0): 6, (0, 1): 4}),  # per pre neuron
])
def test_delay_nodes_become_synaptic_delays(where, delays, steps):
    proj = import_nir(_chain(where, delays), 0.1).build().projections["w"]
    got = {(int(a), int(b)): int(d) for a, b, d in zip(proj.pre_idx(), proj.post_idx, proj.delay)}
    assert got == steps
    assert sorted(zip(proj.pre_idx().tolist(), proj.post_idx.tolist(), proj.w.tolist())) == \
        [(0, 0, 1.0), (0, 1, 3.0), (1, 0, 2.0)]  # r = tau/dt: NIR weights are V jumps


def test_per_element_delay_between_weights_is_refused():
    nodes = {"inp": nir.Input(input_type=np.array([2])), "w1": nir.Linear(weight=np.eye(2)),
             "d": nir.Delay(delay=np.array([0.0001, 0.0002])), "w2": nir.Linear(weight=np.ones((2, 2))),
             "lif": _lif(2, 0.02, 200.0), "out": nir.Output(output_type=np.array([2]))}
    edges = [("inp", "w1"), ("w1", "d"), ("d", "w2"), ("w2", "lif"), ("lif", "out")]
    import_nir(_graph(dict(nodes), list(edges)), 0.1)  # w1 is diagonal: the delay is still per source neuron
    nodes["w1"] = nir.Linear(weight=np.ones((2, 2)))
    with pytest.raises(FileFormatError, match="node 'w2' .Linear.: its inputs arrive with different delays"):
        import_nir(_graph(nodes, edges), 0.1)


def _layers(feedback):
    n = {"inp": nir.Input(input_type=np.array([1]))}
    e = []
    prev = "inp"
    for k in range(3):
        n[f"w{k}"], n[f"l{k}"] = nir.Linear(weight=np.ones((1, 1))), _lif(1, 0.02, 200.0)
        e += [(prev, f"w{k}"), (f"w{k}", f"l{k}")]
        prev = f"l{k}"
    n["rec"] = nir.Linear(weight=np.ones((1, 1)))
    e += [("l1", "rec"), ("rec", feedback)]
    n["out"] = nir.Output(output_type=np.array([1]))
    e.append(("l2", "out"))
    return _graph(n, e)


def test_same_step_timing_runs_each_layer_behind_by_its_depth():
    imp = import_nir(_layers("l1"), 0.1, timing="same-step")
    assert imp.offsets == {"inp": 0, "l0": 1, "l1": 2, "l2": 3}
    net = imp.build()
    assert [int(net.projections[k].delay[0]) for k in ("w0", "w1", "w2", "rec")] == [1, 1, 1, 1]
    flat = import_nir(_layers("l1"), 0.1)
    assert flat.offsets == {"inp": 0, "l0": 0, "l1": 0, "l2": 0}
    with pytest.raises(FileFormatError, match="feeds back to a population 1 layers up"):
        import_nir(_layers("l0"), 0.1, timing="same-step")
    import_nir(_layers("l0"), 0.1)  # one step per edge: any feedback is fine


def test_neurons_with_different_parameters_become_one_population_each_set():
    taus = np.array([0.02, 0.01, 0.02])
    node = nir.LIF(tau=taus, r=taus / 1e-4, v_leak=np.zeros(3), v_threshold=np.array([1.0, 1.0, 1.0]),
                   v_reset=np.zeros(3))
    g = _graph({"inp": nir.Input(input_type=np.array([2])), "w": nir.Linear(weight=np.arange(6.0).reshape(3, 2)),
                "lif": node, "out": nir.Output(output_type=np.array([3]))},
               [("inp", "w"), ("w", "lif"), ("lif", "out")])
    net = import_nir(g, 0.1).build()
    assert {k: (p.n, p.params.tau_m) for k, p in net.populations.items() if k != "inp"} == \
        {"lif_0": (2, 20.0), "lif_1": (1, 10.0)}
    w = {k: p.w.tolist() for k, p in net.projections.items()}
    assert w == {"w_0_0": [4.0, 1.0, 5.0], "w_0_1": [2.0, 3.0]}  # a weight of 0 is no synapse


def test_subgraphs_are_inlined():
    inner = _graph({"i": nir.Input(input_type=np.array([2])), "lif": _lif(2, 0.02, 200.0),
                    "rec": nir.Linear(weight=-np.eye(2)), "o": nir.Output(output_type=np.array([2]))},
                   [("i", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "o")])
    outer = _graph({"inp": nir.Input(input_type=np.array([2])), "w": nir.Linear(weight=np.eye(2)), "sub": inner,
                    "out": nir.Output(output_type=np.array([2]))},
                   [("inp", "w"), ("w", "sub"), ("sub", "out")])
    net = import_nir(outer, 0.1).build()
    assert set(net.populations) == {"inp", "sub_lif"}
    assert {k: (p.pre.name, p.post.name) for k, p in net.projections.items()} == \
        {"w": ("inp", "sub_lif"), "sub_rec": ("sub_lif", "sub_lif")}


scalars = st.one_of(fl(-1e300, 1e300), st.integers(-2**62, 2**62), st.text(max_size=8), st.booleans())


@settings(max_examples=EXAMPLES)
@given(data=st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True),
                            st.one_of(scalars, st.lists(fl(-1e6, 1e6), max_size=30),
                                      st.dictionaries(st.from_regex(r"[a-z]{1,4}", fullmatch=True),
                                                      st.one_of(scalars, st.lists(st.integers(0, 9), max_size=20)),
                                                      max_size=3)),
                            max_size=5))
def test_toml_writer_reads_back_bit_for_bit(data):
    table = {"t": data, "u": {"deep": {"er": {"x": 1}}, "after": data}, "items": [{"a": 1.5, "b": [0.1, 2e-300]}]}
    assert tomllib.loads(dumps(table)) == table


def test_info_describes_a_nir_file(tmp_path):
    path = tmp_path / "g.nir"
    nir.write(path, _layers("l1"))
    text = describe(path)
    assert "9 nodes, 9 edges" in text.splitlines()[0] and "spikelm can import it" in text
    g = _graph({"inp": nir.Input(input_type=np.array([1])), "w": nir.Linear(weight=np.ones((1, 1))),
                "out": nir.Output(output_type=np.array([1]))}, [("inp", "w"), ("w", "out")])
    nir.write(path, g)
    assert "cannot import it: node 'out' (Output): reads 'w' (Linear)" in describe(path)
