"""What a run writes equals what it recorded; a checkpointed run continues exactly."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import spikelm.network as sn
from spikelm.errors import CheckpointMismatchError
from spikelm.io import checkpoint
from spikelm.io.sonata import SpikeWriter, read_metadata, read_spikes, read_state
from spikelm.simulator import Simulator, StateMonitor


def small_net(seed, n_exc=30, n_sif=12, p=0.3, max_delay_ms=2.0):
    net = sn.Network(dt=0.1, seed=seed)
    net.add_population("exc", "lif", n_exc, params={"e_l": -48.0}, init={"v": sn.Uniform(-60, -50)})
    net.add_population("sif", "signed_if", n_sif, params={"q_min": -5, "q_max": 5})
    net.add_population("src", "poisson", 8, params={"rate": 200.0})
    net.connect("exc", "exc", sn.FixedProbability(p), weight=sn.Uniform(0.0, 2.0), delay=sn.Uniform(0.1, max_delay_ms))
    net.connect("exc", "sif", sn.FixedProbability(p), weight=1.0, delay=sn.Uniform(0.1, max_delay_ms))
    net.connect("src", "sif", sn.AllToAll(), weight=-1.0, delay=0.3, target="inh")
    net.add_stimulus(sn.NoiseCurrent("exc", 1.5))
    return net


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), steps=st.integers(1, 400), chunk=st.integers(7, 150))
def test_hdf5_round_trip_equals_the_in_memory_record(tmp_path, seed, steps, chunk):
    net = small_net(seed)
    mon = StateMonitor("exc", ["v", "i_e"], every=3, neurons=[0, 5, 7])
    sim = Simulator(net, backend="numba", state=[mon], chunk_steps=chunk)
    path = tmp_path / f"r{seed}_{steps}_{chunk}.h5"
    with SpikeWriter(path, {p.name: p.n for p in net.populations.values()}, net.dt, chunk=64,
                     signed={"sif": True}) as w:
        sim.run(steps, writer=w)
        w.finish({"steps": sim.t, "synops": sim.synops})
    files = read_spikes(path)
    for name in net.populations:
        steps_mem, ids_mem, vals_mem = sim.spikes.get(name)
        table = files[name]
        np.testing.assert_array_equal(table.node_ids, ids_mem.astype(np.uint64))
        np.testing.assert_array_equal(table.steps(net.dt), steps_mem)
        if name == "sif":
            np.testing.assert_array_equal(table.values, vals_mem)
    assert read_metadata(path)["synops"] == sim.synops
    ids, times, data = read_state(path, "exc", "v")
    mem_steps, mem_v = mon.get("v")
    np.testing.assert_array_equal(ids, [0, 5, 7])
    np.testing.assert_allclose(data, mem_v.astype(np.float32))  # SONATA reports are float32
    assert len(times) == len(mem_steps)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), first=st.integers(1, 250), second=st.integers(1, 250))
def test_save_load_continue_equals_an_uninterrupted_run(tmp_path, backend, seed, first, second):
    whole = Simulator(small_net(seed), backend=backend)
    whole.run(first + second)
    a = Simulator(small_net(seed), backend=backend)
    a.run(first)
    ck = tmp_path / f"ck_{backend}_{seed}_{first}.h5"
    checkpoint.save(a, ck)
    b = Simulator(small_net(seed), backend=backend)  # a fresh process would build the same network
    checkpoint.load(b, ck)
    b.run(second)
    for name in whole.spikes.populations:
        s_w, i_w, v_w = whole.spikes.get(name)
        s_a, i_a, v_a = a.spikes.get(name)
        s_b, i_b, v_b = b.spikes.get(name)
        np.testing.assert_array_equal(s_w, np.concatenate([s_a, s_b]))
        np.testing.assert_array_equal(i_w, np.concatenate([i_a, i_b]))
        np.testing.assert_array_equal(v_w, np.concatenate([v_a, v_b]))
    np.testing.assert_array_equal(whole.plan.S, b.plan.S)
    assert whole.synops == b.synops and whole.events == b.events


def test_checkpoint_refuses_another_network(tmp_path):
    a = Simulator(small_net(1), backend="numpy")
    a.run(5)
    checkpoint.save(a, tmp_path / "a.h5")
    other = Simulator(small_net(1, n_exc=31), backend="numpy")
    with pytest.raises(CheckpointMismatchError, match="population 'exc'"):
        checkpoint.load(other, tmp_path / "a.h5")


def test_failed_checkpoint_save_keeps_the_old_file(tmp_path, monkeypatch):
    a = Simulator(small_net(2), backend="numpy")
    path = tmp_path / "c.h5"
    path.write_bytes(b"old")

    def boom(*args, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "_arrays", boom)
    with pytest.raises(OSError):
        checkpoint.save(a, path)
    assert path.read_bytes() == b"old"
    assert not (tmp_path / "c.h5.partial").exists()


def test_compressed_files_read_back_the_same_and_are_smaller(tmp_path):
    net = small_net(7)
    sim = Simulator(net, backend="numba")
    sim.run(400)
    sizes = {}
    for compress in (False, True):
        path = tmp_path / f"c{compress}.h5"
        with SpikeWriter(path, {p.name: p.n for p in net.populations.values()}, net.dt, compress=compress) as w:
            for name in net.populations:
                s, i, _ = sim.spikes.get(name)
                w.append(name, s, i)
            w.finish()
        files = read_spikes(path)
        for name in net.populations:
            s, i, _ = sim.spikes.get(name)
            np.testing.assert_array_equal(files[name].node_ids, i.astype(np.uint64))
            np.testing.assert_array_equal(files[name].steps(net.dt), s)
        sizes[compress] = path.stat().st_size
    assert sizes[True] < sizes[False]
