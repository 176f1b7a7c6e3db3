"""Run files as Neo blocks (spikelm.io.neo_io): times, ids and units survive, both ways."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

neo = pytest.importorskip("neo", reason="the pynn extra (Neo) is not installed")
pq = pytest.importorskip("quantities", reason="the pynn extra (quantities) is not installed")

from spikelm.errors import ConfigError, FileFormatError  # noqa: E402
from spikelm.io.neo_io import SonataIO, read_block  # noqa: E402
from spikelm.io.sonata import SpikeWriter  # noqa: E402


def _write(path, spikes, dt, n, steps_total, state=None):
    """spikes: {population: (steps, ids)}; state: (population, variable, ids, steps, data, units)."""
    extra = {state[0]: n[state[0]]} if state and state[0] not in n else {}
    with SpikeWriter(path, n, dt, metadata={"steps": steps_total}, state_populations=extra) as w:
        for pop, (steps, ids) in spikes.items():
            order = np.lexsort((ids, steps))
            w.append(pop, steps[order], ids[order])
        if state:
            w.add_state(*state[:5], units=state[5])
        w.finish()


@st.composite
def runs(draw):
    dt = draw(st.sampled_from([0.1, 0.05, 1.0, 0.025]))
    total = draw(st.integers(1, 400))
    pops = {}
    for name in draw(st.lists(st.sampled_from(["exc", "inh", "in_put"]), min_size=1, max_size=3, unique=True)):
        n = draw(st.integers(1, 6))
        k = draw(st.integers(0, 30))
        pairs = draw(st.lists(st.tuples(st.integers(0, total - 1), st.integers(0, n - 1)), min_size=k, max_size=k,
                              unique=True))
        steps = np.array([p[0] for p in pairs], np.int64)
        ids = np.array([p[1] for p in pairs], np.int64)
        pops[name] = (n, steps, ids)
    return dt, total, pops


@settings(max_examples=25)
@given(run=runs())
def test_spikes_read_into_neo_with_times_ids_and_units(run, tmp_path_factory):
    dt, total, pops = run
    path = tmp_path_factory.mktemp("neo") / "run.h5"
    _write(path, {p: (s, i) for p, (n, s, i) in pops.items()}, dt, {p: n for p, (n, _, _) in pops.items()}, total)
    seg = read_block(path).segments[0]
    assert len(seg.spiketrains) == sum(n for n, _, _ in pops.values())     # silent neurons too
    for train in seg.spiketrains:
        pop, node = train.annotations["source_population"], train.annotations["source_index"]
        n, steps, ids = pops[pop]
        expected = np.sort(steps[ids == node]) * dt
        assert str(train.units.dimensionality) == "ms" and train.annotations["channel_id"] == node
        np.testing.assert_allclose(train.magnitude, expected, rtol=0, atol=1e-12)
        assert float(train.t_stop) == pytest.approx(total * dt) and float(train.t_start) == 0.0
    # and back: the block written as a SONATA file reads back the same
    again = tmp_path_factory.mktemp("neo") / "again.h5"
    SonataIO(again).write_block(read_block(path))
    seg2 = read_block(again).segments[0]
    assert [(t.annotations["source_population"], t.annotations["source_index"], t.magnitude.tolist())
            for t in seg2.spiketrains] == [(t.annotations["source_population"], t.annotations["source_index"],
                                            t.magnitude.tolist()) for t in seg.spiketrains]


def test_state_reports_are_analog_signals_with_their_units(tmp_path):
    path = tmp_path / "state.h5"
    data = np.linspace(-70.0, -50.0, 12).reshape(4, 3)
    _write(path, {"exc": (np.array([1, 3]), np.array([0, 2]))}, 0.1, {"exc": 3}, 40,
           state=("exc", "v", np.array([0, 2, 1]), np.array([0, 10, 20, 30]), data, "mV"))
    sig = read_block(path).segments[0].analogsignals[0]
    assert sig.name == "v" and str(sig.units.dimensionality) == "mV"
    assert float(sig.sampling_period.rescale("ms")) == pytest.approx(1.0) and float(sig.t_start) == 0.0
    assert list(sig.array_annotations["channel_index"]) == [0, 2, 1]
    np.testing.assert_allclose(sig.magnitude, data, rtol=1e-6)       # float32 in the file
    again = tmp_path / "again.h5"
    SonataIO(again).write_block(read_block(path))
    back = read_block(again).segments[0].analogsignals[0]
    np.testing.assert_allclose(back.magnitude, data, rtol=1e-6)
    assert list(back.array_annotations["channel_index"]) == [0, 2, 1]


def test_a_simulated_run_file_reads_back_its_spikes(tmp_path):
    import spikelm.network as sn
    from spikelm.simulator import Simulator

    net = sn.Network(dt=0.1, seed=3)
    net.add_population("src", "poisson", 20, {"rate": 50.0})
    net.add_population("out", "lif", 5)
    net.connect("src", "out", sn.AllToAll(), weight=4.0)
    sim = Simulator(net)
    with SpikeWriter(tmp_path / "run.h5", {"src": 20, "out": 5}, net.dt) as w:
        r = sim.run(500, writer=w)
        w.finish({"steps": r.steps})
    seg = read_block(tmp_path / "run.h5").segments[0]
    for pop in ("src", "out"):
        steps, ids, _ = sim.spikes.get(pop)
        got = sorted((round(float(t) / 0.1), tr.annotations["source_index"]) for tr in seg.spiketrains
                     if tr.annotations["source_population"] == pop for t in tr.magnitude)
        assert got == sorted(zip(steps.tolist(), ids.tolist())) and len(got) > 0


def test_bad_inputs_are_one_line(tmp_path):
    with SpikeWriter(tmp_path / "lm.h5", {"x": 2}, 1.0, time_unit="step") as w:
        w.append("x", np.array([0, 1]), np.array([0, 1]))
        w.finish()
    with pytest.raises(FileFormatError) as e:
        read_block(tmp_path / "lm.h5")
    assert "steps" in str(e.value) and "\n" not in str(e.value)
    block = neo.Block()
    block.segments = [neo.Segment(), neo.Segment()]
    with pytest.raises(ConfigError) as e:
        SonataIO(tmp_path / "two.h5").write_block(block)
    assert "segment" in str(e.value) and "\n" not in str(e.value)
    (tmp_path / "not.h5").write_text("no")
    with pytest.raises(FileFormatError):
        read_block(tmp_path / "not.h5")
