"""Threads of the numba backend: N threads give the spikes of one, bit for bit.

Each thread owns a block of post-synaptic neurons and walks the step's spikes in the one
global order (docs/design.md, "Threads"), so every float sum keeps its order. Hypothesis
draws random networks (every model, rule, per-synapse delays, every stimulus), plastic
networks, and the split itself: more blocks than threads, so block edges fall anywhere.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spikelm.network as sn
from helpers import assert_snapshots_agree, build, generic_numba_loop, network_specs, snapshot
from spikelm.errors import ConfigError
from spikelm.simulator import Simulator, StateMonitor
from spikelm.simulator import numba_backend as nb
from test_plasticity_props import build as build_plastic
from test_plasticity_props import plastic_specs

STEPS = 200
THREADS = min(2, nb.max_threads())


def _run(net, threads, blocks=None, steps=STEPS, chunks=(), **kw):
    state = [StateMonitor(p.name, p.model.state_vars, every=3)
             for p in list(net.populations.values())[:1] if not p.model.is_source]
    sim = Simulator(net, backend="numba", threads=threads, state=state, **kw)
    sim.plan.n_blocks = blocks
    with generic_numba_loop():
        for n in (*chunks, steps):
            sim.run(n)
    return sim


def _agree(make, blocks, **kw):
    one = _run(make(), 1, **kw)
    many = _run(make(), THREADS, blocks, **kw)
    assert_snapshots_agree(snapshot(one), snapshot(many), ulps=0)
    np.testing.assert_array_equal(one.plan.queue.buf, many.plan.queue.buf)  # the pending events too
    np.testing.assert_array_equal(one.plan.w, many.plan.w)
    return one


@settings(max_examples=30, deadline=None)
@given(spec=network_specs(steps=STEPS), blocks=st.integers(2, 9), chunk=st.integers(1, 80))
def test_threads_give_the_spikes_of_one_thread(spec, blocks, chunk):
    _agree(lambda: build(spec), blocks, chunk_steps=chunk)


@settings(max_examples=15, deadline=None)
@given(spec=plastic_specs(), blocks=st.integers(2, 7))
def test_threads_with_plasticity_give_the_spikes_of_one_thread(spec, blocks):
    _agree(lambda: build_plastic(spec), blocks, steps=150)


def test_threads_agree_on_a_network_that_fires(tmp_path):
    """A CUBA-like E/I network with per-synapse delays and noise: thousands of spikes, same on
    1 and N threads, and the split of N threads puts its edges inside both populations."""
    def make():
        net = sn.Network(0.1, 7)
        init = {"v": sn.Uniform(-60.0, -50.0)}
        net.add_population("exc", "lif", 240, params={"e_l": -49.0}, init=init)
        net.add_population("inh", "lif", 60, params={"e_l": -49.0}, init=init)
        for pre, w, tg in (("exc", 1.62, "exc"), ("inh", -9.0, "inh")):
            for post in ("exc", "inh"):
                net.connect(pre, post, sn.FixedProbability(0.1), weight=sn.Normal(w, abs(w) / 4),
                            delay=sn.Uniform(0.1, 2.0), target=tg)
        net.add_stimulus(sn.NoiseCurrent("exc", 1.0))
        return net
    one = _agree(make, 5, steps=3000)
    assert one.spikes.count("exc") > 300 and one.spikes.count("inh") > 50


def test_blocks_split_the_work_on_word_edges():
    net = sn.Network(0.1, 0)
    net.add_population("a", "lif", 1000)
    net.add_population("b", "lif", 37)
    net.connect("a", "b", sn.AllToAll(), weight=0.1)   # b's neurons have in-degree 1000: more work each
    sim = Simulator(net, backend="numba", threads=1)
    for n in (1, 2, 3, 8):
        bounds = nb.blocks(sim.plan, n)
        assert bounds[0] == 0 and bounds[-1] == 1037 and bounds.size == n + 1
        assert np.all(np.diff(bounds) >= 0) and np.all(bounds[1:-1] % 8 == 0)
    two = nb.blocks(sim.plan, 2)
    assert two[1] > 518   # b weighs as much as ~580 neurons of a: the split moves right of the middle


def test_thread_count_is_checked_and_numpy_takes_none(monkeypatch):
    net = sn.Network(0.1, 0)
    net.add_population("a", "lif", 10)
    for bad in (0, -1, 2.5, True, nb.max_threads() + 1):
        with pytest.raises(ConfigError, match="threads"):
            Simulator(net, backend="numba", threads=bad)
    with pytest.raises(ConfigError, match="numpy backend runs on one thread"):
        Simulator(net, backend="numpy", threads=2)
    assert Simulator(net, backend="numpy", threads=1).threads == 1
    monkeypatch.setenv("SPIKELM_THREADS", "1")
    assert Simulator(net, backend="numba").threads == 1
    monkeypatch.setenv("SPIKELM_THREADS", "two")
    with pytest.raises(ConfigError, match="SPIKELM_THREADS"):
        Simulator(net, backend="numba")
    monkeypatch.delenv("SPIKELM_THREADS")
    assert Simulator(net, backend="numba").threads == 1          # 10 neurons: one thread pays best
    assert nb.default_threads(10 ** 7) == nb.max_threads()       # a large network: every core


def test_more_than_one_block_runs_the_parallel_loop_and_one_block_the_serial_one():
    """The loop compiled for blocks is Numba's parallel one (prange over the blocks); one thread
    gets the loop without a parallel region. (Scaling is measured by python -m benchmarks.classic.)"""
    net = sn.Network(0.1, 0)
    net.add_population("a", "lif", 50)
    sim = Simulator(net, backend="numba", threads=1)
    assert not nb.loop_for(sim.plan, False)[0].targetoptions.get("parallel")
    sim.plan.n_blocks = 3
    assert nb.loop_for(sim.plan, False)[0].targetoptions.get("parallel")
    assert nb.work_for(sim.plan).bounds.size == 4
