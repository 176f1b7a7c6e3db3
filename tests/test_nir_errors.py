"""Done-when 3 of issue 16: malformed or unsupported NIR files (unknown node types, wrong shapes,
missing edges, NaN parameters, ...) are refused in one line naming the file and the node, with
exit code 2; networks NIR cannot express are refused on export, naming what is in the way."""
import math
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("nir", reason="the NIR tests need the optional nir package (pip install -e '.[nir]')")

import nir

import spikelm.network as sn
from spikelm import cli
from spikelm.errors import ConfigError, FileFormatError
from spikelm.io.nir import export_network, import_nir

EXAMPLES = max(10, settings().max_examples // 4)


def _good_graph():
    """Input(3) -> Affine -> LIF(4) -> Linear -> CubaLIF(2) -> Output, plus a Delay."""
    lif = nir.LIF(tau=np.full(4, 0.02), r=np.full(4, 200.0), v_leak=np.zeros(4), v_threshold=np.ones(4),
                  v_reset=np.zeros(4))
    cuba = nir.CubaLIF(tau_syn=np.full(2, 0.005), tau_mem=np.full(2, 0.01), r=np.ones(2), v_leak=np.zeros(2),
                       v_threshold=np.ones(2), v_reset=np.zeros(2), w_in=np.full(2, 50.0))
    nodes = {"inp": nir.Input(input_type=np.array([3])),
             "fc1": nir.Affine(weight=np.full((4, 3), 0.5), bias=np.full(4, 0.1)),
             "lif": lif, "fc2": nir.Linear(weight=np.full((2, 4), 0.3)), "delay": nir.Delay(delay=np.full(2, 0.0003)),
             "cuba": cuba, "out": nir.Output(output_type=np.array([2]))}
    edges = [("inp", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("fc2", "delay"), ("delay", "cuba"), ("cuba", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.nir"
    nir.write(path, _good_graph())
    return path


def _refused(path, capsys, *names):
    """``spikelm nir import`` exits 2 with one line naming the file and every name in ``names``."""
    code = cli.main(["nir", "import", str(path), "--dt", "0.1", "-o", str(path.with_suffix(".toml"))])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("spikelm: error: "), err
    assert str(path) in err, err
    for n in names:
        assert n in err, err
    assert not path.with_suffix(".toml").exists()  # nothing written on failure
    return err


def test_the_good_file_imports(good, capsys):
    assert cli.main(["nir", "import", str(good), "--dt", "0.1", "-o", str(good.with_suffix(".toml"))]) == 0
    assert good.with_suffix(".toml").exists()
    assert cli.main(["info", str(good)]) == 0
    assert "spikelm can import it" in capsys.readouterr().out


def _edit(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f["node"])


def test_unknown_node_type(good, capsys):
    def fn(g):
        del g["nodes/lif/type"]
        g["nodes/lif"].create_dataset("type", data="Quux", dtype=h5py.string_dtype())
    _edit(good, fn)
    _refused(good, capsys, "node 'lif'", "unknown NIR node type 'Quux'")


def test_convolution_is_refused_naming_node_and_type(good, capsys):
    def fn(g):
        c = g["nodes"].create_group("conv")
        c.create_dataset("type", data="Conv2d", dtype=h5py.string_dtype())
    _edit(good, fn)
    _refused(good, capsys, "node 'conv' (Conv2d)", "convolutions are not supported")


@pytest.mark.parametrize("node, field, value, says", [
    ("lif", "tau", np.full(3, 0.02), "share one shape"),
    ("fc2", "weight", np.full(8, 0.3), "2-D"),
    ("fc1", "bias", np.full(5, 0.1), "bias must have shape (4,)"),
    ("fc2", "weight", np.full((2, 5), 0.3), "'fc2' takes 5"),  # the edge lif -> fc2 no longer fits
    ("lif", "tau", np.array([0.02, math.nan, 0.02, 0.02]), "parameter 'tau' holds NaN"),
    ("fc1", "weight", np.array([[math.inf, 0, 0]] * 4), "parameter 'weight' holds NaN or infinite"),
    ("cuba", "tau_syn", np.array([0.005, -1.0]), "'tau_syn' must be > 0"),
    ("delay", "delay", np.array([-0.001, 0.0]), "delays must be >= 0"),
    ("lif", "v_reset", np.full(4, 2.0), "v_reset (2) is above v_threshold (1)"),
    ("lif", "r", np.array(["a", "b", "c", "d"], dtype=object), "must be numeric"),
])
def test_bad_parameters(good, capsys, node, field, value, says):
    def fn(g):
        del g[f"nodes/{node}/{field}"]
        if value.dtype == object:
            g[f"nodes/{node}"].create_dataset(field, data=value.astype(str).tolist(), dtype=h5py.string_dtype())
        else:
            g[f"nodes/{node}"].create_dataset(field, data=value)
    _edit(good, fn)
    _refused(good, capsys, node, says)


@pytest.mark.parametrize("edges, says", [
    (None, "missing field 'edges'"),
    ([("inp", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("fc2", "delay"), ("delay", "cuba"), ("cuba", "nowhere")],
     "there is no node 'nowhere'"),
    ([("inp", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("fc2", "delay"), ("cuba", "out")],
     "node 'delay' (Delay): has no outgoing edge"),
    ([("inp", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("fc2", "delay"), ("delay", "cuba")],
     "node 'out' (Output): needs exactly one incoming edge"),
    ([("inp", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("delay", "cuba"), ("cuba", "out"), ("fc2", "delay"),
      ("fc2", "delay")], "appears twice"),
    ([("inp", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("fc2", "delay"), ("delay", "cuba"), ("cuba", "out"),
      ("out", "lif")], "an Output node has no edges out"),
])
def test_bad_edges(good, capsys, edges, says):
    def fn(g):
        del g["edges"]
        if edges is not None:
            g.create_dataset("edges", data=np.array(edges, dtype=object), dtype=h5py.string_dtype())
    _edit(good, fn)
    _refused(good, capsys, says)


def test_a_loop_without_a_neuron_is_refused(tmp_path, capsys):
    nodes = {"inp": nir.Input(input_type=np.array([2])), "a": nir.Linear(weight=np.eye(2)),
             "b": nir.Linear(weight=np.eye(2)),
             "lif": nir.LIF(tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2)),
             "out": nir.Output(output_type=np.array([2]))}
    edges = [("inp", "a"), ("a", "b"), ("b", "a"), ("b", "lif"), ("lif", "out")]
    path = tmp_path / "loop.nir"
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    _refused(path, capsys, "'a'", "'b'", "no neuron on it")


@pytest.mark.parametrize("content, says", [(b"not hdf5 at all", "not an HDF5 file"), (None, "no /node group")])
def test_not_a_nir_file(tmp_path, capsys, content, says):
    path = tmp_path / "x.nir"
    if content is None:
        with h5py.File(path, "w") as f:
            f.create_dataset("spikes", data=[1, 2])
    else:
        path.write_bytes(content)
    _refused(path, capsys, says)


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_broken_parameter_is_refused_naming_its_node(tmp_path_factory, data):
    """Hypothesis breaks one parameter of one node (NaN, inf, wrong size, wrong rank, a string) and
    the import refuses the file, naming the file and the node; never a traceback."""
    path = tmp_path_factory.mktemp("bad") / "g.nir"
    nir.write(path, _good_graph())
    with h5py.File(path, "r") as f:
        fields = [(n, k) for n in f["node/nodes"] for k in f[f"node/nodes/{n}"] if k not in ("type", "shape")]
    node, field = data.draw(st.sampled_from(sorted(fields)))
    with h5py.File(path, "r+") as f:
        old = f[f"node/nodes/{node}/{field}"][()]
        # an element-wise node (Delay) may have any shape: only its values can be wrong
        bad = data.draw(st.sampled_from(["nan", "inf", "bigger", "text"] + ([] if node == "delay" else ["rank"])))
        new = np.array(old, dtype=np.float64)
        if bad in ("nan", "inf"):
            new = new.copy()
            new.ravel()[data.draw(st.integers(0, new.size - 1))] = math.nan if bad == "nan" else -math.inf
        elif bad == "bigger":
            new = np.concatenate([new.ravel(), [1.0]])
        elif bad == "rank":
            new = new.reshape(1, -1, 1)
        del f[f"node/nodes/{node}/{field}"]
        if bad == "text":
            f[f"node/nodes/{node}"].create_dataset(field, data="x", dtype=h5py.string_dtype())
        else:
            f[f"node/nodes/{node}"].create_dataset(field, data=new)
    with pytest.raises(FileFormatError) as e:
        import_nir(path, 0.1)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(str(path))
    assert f"'{node}'" in msg or "edge" in msg, msg  # a size that no longer fits is an edge's complaint


# -- export: what NIR cannot express -------------------------------------------------------------

def _net(**lif):
    net = sn.Network(0.1, 0)
    net.add_population("src", "spike_times", 2, params={"times": ((1.0,), ())})
    net.add_population("p", "lif", 3, params=dict(dict(t_ref=0.0, tau_e=0.0, tau_i=0.0), **lif))
    net.connect("src", "p", weight=2.0)
    return net


def _mixed_taus():
    net = _net(tau_e=5.0, tau_i=10.0)
    net.connect("src", "p", weight=-1.0, target="inh", name="inhibition")
    return net


def _izhikevich():
    net = _net()
    net.add_population("iz", "izhikevich", 2)
    return net


def _current_into_cubalif():
    net = _net(tau_e=5.0, tau_i=5.0)
    net.add_stimulus(sn.ConstantCurrent("p", 1.0))
    return net


@pytest.mark.parametrize("make, says", [
    (lambda: _net(t_ref=2.0), "population 'p': t_ref = 2.0 ms"),
    (lambda: _net(alpha=1.0), "population 'p': it has an adaptive threshold"),
    (_mixed_taus, "population 'p': its exc and inh inputs have different synaptic time constants"),
    (_izhikevich, "population 'iz': model izhikevich has no NIR node"),
    (_current_into_cubalif, "stimulus 0 .ConstantCurrent on 'p'.: a current injected into V has no NIR form"),
])
def test_export_refuses_what_nir_cannot_express(tmp_path, make, says):
    with pytest.raises(ConfigError, match=says):
        export_network(make(), tmp_path / "x.nir")
    assert not (tmp_path / "x.nir").exists()


def test_export_cli_refuses_a_scenario_with_refractory_neurons(tmp_path, capsys):
    code = cli.main(["nir", "export", "scenarios/cuba.toml", "-o", str(tmp_path / "c.nir")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "population 'exc': t_ref" in err


def test_export_lists_every_obstacle_at_once(tmp_path, capsys):
    """cuba.toml has four (two refractory periods, two pairs of unequal synaptic time constants):
    one message names them all, so one edit fixes the file."""
    code = cli.main(["nir", "export", "scenarios/cuba.toml", "-o", str(tmp_path / "c.nir")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("spikelm: error: scenarios/cuba.toml: 4 obstacles")
    for pop in ("exc", "inh"):
        assert f"population '{pop}': t_ref = 5.0 ms" in err
        assert f"population '{pop}': its exc and inh inputs have different synaptic time constants" in err
    net = _izhikevich()
    net.add_population("q", "lif", 2, params={"t_ref": 1.0, "alpha": 1.0})
    with pytest.raises(ConfigError, match=r"3 obstacles .*'iz'.*'q': t_ref.*'q': it has an adaptive"):
        export_network(net, tmp_path / "x.nir")
    assert not (tmp_path / "x.nir").exists()


@pytest.mark.parametrize("name", sorted(p.name for p in (Path(__file__).parents[1] / "scenarios").glob("*.toml")))
def test_every_shipped_scenario_exports_or_names_all_it_needs(tmp_path, capsys, name):
    code = cli.main(["nir", "export", f"scenarios/{name}", "-o", str(tmp_path / "x.nir")])
    err = capsys.readouterr().err
    if name == "cuba_nir.toml":     # the NIR-ready one (docs/nir.md)
        assert code == 0, err
    else:
        assert code == 2 and err.count("\n") == 1 and "obstacle" in err, err


def test_the_nir_ready_scenario_round_trips_with_the_same_spikes(tmp_path):
    from spikelm.io.scenario import load_scenario
    from spikelm.simulator import Simulator

    sc = load_scenario("scenarios/cuba_nir.toml")
    export_network(sc.build(), tmp_path / "c.nir")
    runs = []
    for net in (sc.build(), import_nir(tmp_path / "c.nir", 0.1).build()):
        sim = Simulator(net, backend="numba")
        sim.run(2000)
        runs.append({p: sim.spikes.get(p) for p in ("exc", "inh")})
    for p in ("exc", "inh"):
        assert runs[0][p][0].size > 100
        assert all(np.array_equal(a, b) for a, b in zip(runs[0][p], runs[1][p])), p


def test_missing_nir_package_is_named(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "nir", None)
    code = cli.main(["nir", "import", str(tmp_path / "x.nir"), "--dt", "0.1", "-o", str(tmp_path / "x.toml")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and 'pip install -e ".[nir]"' in err
