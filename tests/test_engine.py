"""Engine properties: event conservation, SynOp counting, delays, quiescence, determinism.

Each property is checked on both CPU backends (the ``backend`` fixture) and, where it
makes sense, on hypothesis-drawn random networks (tests/helpers.py).
"""
import random

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

import spikelm.network as sn
from helpers import (assert_snapshots_agree, build, generic_numba_loop, network_specs, signed_if_specs, simulate,
                     snapshot)
from spikelm.errors import ConfigError
from spikelm.simulator import Simulator, StateMonitor


def _spike_synapses(net, sim):
    """Per projection: (pre neuron, spike step, delay) of every synaptic event the recorded spikes cause."""
    out = {}
    for name, proj in net.projections.items():
        steps, ids, _ = sim.spikes.get(proj.pre.name)
        deg = proj.out_degree()
        rows = [(np.full(deg[j], s), proj.delay[proj.indptr[j]:proj.indptr[j + 1]]) for s, j in zip(steps, ids)]
        s = np.concatenate([r[0] for r in rows]) if rows else np.zeros(0, np.int64)
        d = np.concatenate([r[1] for r in rows]) if rows else np.zeros(0, np.int64)
        out[name] = (s.astype(np.int64), d.astype(np.int64))
    return out


@settings(max_examples=25)
@given(spec=network_specs(steps=120))
def test_events_are_conserved_at_every_step(backend, spec):
    """pushed = delivered + pending after every step, and each count equals what the recorded
    spikes imply: pushed = spikes x out-degree so far, delivered = those whose delay has elapsed."""
    net = build(spec)
    sim = Simulator(net, backend=backend)
    for t in range(120):
        with generic_numba_loop():
            sim.run(1)
        pushed, delivered, pending = sim.events
        assert pushed == delivered + pending, (t, sim.events)
        assert pushed == sum(sim.synops.values())
        ev = _spike_synapses(net, sim)
        assert pushed == sum(s.size for s, _ in ev.values())
        assert delivered == sum(int(np.count_nonzero(s + d <= t)) for s, d in ev.values()), t


@settings(max_examples=40)
@given(spec=network_specs(steps=200))
def test_synops_equal_out_degree_summed_over_spikes(backend, spec):
    net = build(spec)
    sim = Simulator(net, backend=backend)
    with generic_numba_loop():
        res = sim.run(200)
    for name, proj in net.projections.items():
        _, ids, _ = sim.spikes.get(proj.pre.name)
        assert sim.synops[name] == int(proj.out_degree()[ids].sum()), name
    assert res.synops == sim.synops  # a first run's increments are the totals
    for name in net.populations:  # the rate monitor counts the same spikes
        steps, _, _ = sim.spikes.get(name)
        np.testing.assert_array_equal(sim.rates.counts(name), np.bincount(steps, minlength=200))


def test_spikes_arrive_exactly_after_their_per_synapse_delay(backend):
    """A source spike at step s reaches post neuron i at s + d_i: SignedIF relays it at that step."""
    delays = np.arange(1, 11)
    net = sn.Network(1.0, 0)
    net.add_population("src", "spike_times", 2, params={"times": ((3.0,), (20.0, 40.0))})
    net.add_population("q", "signed_if", 20, params={"q_min": 0, "q_max": 1})
    pre = np.repeat([0, 1], 10)
    net.connect("src", "q", sn.FromArrays(tuple(pre), tuple(range(20))), weight=1.0,
                delay=np.concatenate([delays, delays]).astype(float))
    sim = Simulator(net, backend=backend)
    sim.run(60)
    steps, ids, vals = sim.spikes.get("q")
    np.testing.assert_array_equal(ids, np.argsort(np.r_[3 + delays, 20 + delays], kind="stable"))
    np.testing.assert_array_equal(steps, np.r_[3 + delays, 20 + delays])
    assert np.all(vals == 1)


def test_spike_times_round_to_the_nearest_step(backend):
    """Off-grid times go to the nearest step (halves to even); other neurons are independent."""
    net = sn.Network(0.1, 0)
    net.add_population("src", "spike_times", 3, params={"times": ((1.04, 2.0), (), (0.0, 0.96))})
    net.add_population("other", "spike_times", 1, params={"times": ((1.0,),)})
    sim = Simulator(net, backend=backend)
    res = sim.run(until_quiescent=True, max_steps=100)
    steps, ids, _ = sim.spikes.get("src")
    np.testing.assert_array_equal(steps, [0, 10, 10, 20])
    np.testing.assert_array_equal(ids, [2, 0, 2, 0])
    np.testing.assert_array_equal(sim.spikes.get("other")[0], [10])
    assert res.quiescent and res.steps == 22  # stops after step 21, the first silent one


@pytest.mark.parametrize("times", [(1.0, 1.04), (0.96, 1.0), (2.0, 2.0)])
def test_two_spike_times_in_one_step_are_refused_not_merged(times):
    """They used to merge silently into one spike (a lost spike); Brian2 refuses them too."""
    net = sn.Network(0.1, 0)
    with pytest.raises(ConfigError) as info:
        net.add_population("src", "spike_times", 2, params={"times": ((0.5,), times)})
    msg = str(info.value)
    assert "\n" not in msg and "population 'src': times[1]" in msg and "one step" in msg
    assert f"{times[0]:g}" in msg and f"{times[1]:g}" in msg


def _dense_reference(net):
    """Layer codes of a feed-forward SignedIF spec computed densely, layer by layer."""
    pops = list(net.populations.values())
    counts = {"L0": np.array([len(set(np.rint(np.asarray(ts) / net.dt).astype(int)))
                              for ts in pops[0].params.times], dtype=float)}
    for k in range(1, len(pops)):
        proj = net.projections[f"w{k - 1}"]
        v = counts[f"L{k - 1}"] @ proj.dense()
        p = pops[k].params
        counts[f"L{k}"] = np.clip(np.floor(v + 0.5), p.q_min, p.q_max)
    return counts


@settings(max_examples=40)
@given(spec=signed_if_specs())
def test_feed_forward_signed_if_settles_at_the_dense_reference(backend, spec):
    """At quiescence every layer's net spike count is the quantized dense result (the LM contract)."""
    net = build(spec)
    expect = _dense_reference(net)
    sim = Simulator(net, backend=backend)
    res = sim.run(until_quiescent=True, max_steps=5000)
    assert res.quiescent and sim.events[2] == 0
    for k in range(1, len(net.populations)):
        name = f"L{k}"
        _, ids, vals = sim.spikes.get(name)
        n = net.populations[name].n
        np.testing.assert_array_equal(np.bincount(ids, weights=vals, minlength=n), expect[name], err_msg=name)
        np.testing.assert_array_equal(net.populations[name].state["count"], expect[name])
    # quiescent means it: nothing happens afterwards
    more = sim.run(50)
    assert sum(more.spikes.values()) == 0 and sum(more.synops.values()) == 0


def test_run_to_quiescence_respects_the_step_cap(backend):
    """A driven population never settles: the run stops at max_steps and says it is not quiescent."""
    net = sn.Network(1.0, 0)
    net.add_population("q", "signed_if", 3)
    net.add_stimulus(sn.ConstantCurrent("q", 1.0))
    sim = Simulator(net, backend=backend)
    res = sim.run(until_quiescent=True, max_steps=37)
    assert (res.steps, res.quiescent, sim.t) == (37, False, 37)


def test_quiescence_waits_for_pending_events(backend):
    """No spike for 9 steps while a delayed event is in flight: the run must not stop early."""
    net = sn.Network(1.0, 0)
    net.add_population("src", "spike_times", 1, params={"times": ((0.0,),)})
    net.add_population("q", "signed_if", 1)
    net.connect("src", "q", weight=3.0, delay=10.0)
    sim = Simulator(net, backend=backend)
    res = sim.run(until_quiescent=True, max_steps=1000)
    steps, _, _ = sim.spikes.get("q")
    np.testing.assert_array_equal(steps, [10, 11, 12])
    # steps 0..13: the run stops at the end of the first silent step after the last spike
    assert res.quiescent and res.steps == 14


@settings(max_examples=40)
@given(spec=network_specs(steps=300))
def test_quiescent_means_nothing_more_happens(backend, spec):
    """When run(until_quiescent) reports quiescence, further steps bring no spike and no event."""
    spec = dict(spec, stims=[])
    sim = Simulator(build(spec), backend=backend)
    with generic_numba_loop():
        res = sim.run(until_quiescent=True, max_steps=300)
        event(f"quiescent: {res.quiescent}")
        if not res.quiescent:
            return
        assert sim.events[2] == 0
        more = sim.run(200)
    assert sum(more.spikes.values()) == 0 and sum(more.synops.values()) == 0, (more.spikes, more.synops)


def test_lif_resting_above_threshold_is_not_quiescent(backend):
    """e_l > v_th (as in CUBA: e_l -49, v_th -50): with no input at all the neuron still fires."""
    net = sn.Network(0.1, 0)
    net.add_population("x", "lif", 1, params={"e_l": -49.0}, init={"v": -60.0})
    sim = Simulator(net, backend=backend)
    res = sim.run(until_quiescent=True, max_steps=2000)  # V reaches v_th after 20 ln(11) = 48 ms
    assert res.spikes["x"] > 0 and not res.quiescent


def test_lif_above_base_threshold_while_adapted_is_not_quiescent(backend):
    """Adaptive threshold: V = -48 sits between v_th = -50 and v_th + a = -45. The trace a decays
    (tau_a 10 ms) much faster than V (tau_m 1 s), so the threshold falls below V and the neuron
    fires with no input at all; the run must not stop as quiescent before that."""
    net = sn.Network(0.1, 0)
    net.add_population("x", "lif", 1, params=dict(tau_m=1000.0, e_l=-70.0, v_th=-50.0, v_reset=-60.0, alpha=5.0,
                                                 tau_a=10.0), init={"v": -48.0, "a": 5.0})
    sim = Simulator(net, backend=backend)
    res = sim.run(until_quiescent=True, max_steps=2000)
    assert res.spikes["x"] == 1


def test_eiif_below_its_grown_threshold_is_quiescent(backend):
    """r = 0 keeps V = 0.7 forever, but theta = 0.5 + t already exceeds it: nothing can fire again."""
    net = sn.Network(1.0, 0)
    net.add_population("s", "spike_times", 1, params={"times": ((0.0,),)})
    net.add_population("e", "eiif", 1, params=dict(theta_base=0.5, alpha=1.0, r=0.0))
    net.connect("s", "e", weight=0.7)
    sim = Simulator(net, backend=backend)
    res = sim.run(until_quiescent=True, max_steps=500)
    assert sim.spikes.count("e") == 0
    assert res.quiescent and res.steps < 10


@settings(max_examples=15)
@given(spec=network_specs(steps=150), global_seed=st.integers(0, 2**32 - 1))
def test_same_seed_same_spikes_whatever_the_global_rng(backend, spec, global_seed):
    """No hidden global RNG: reseeding numpy's and Python's global generators changes nothing."""
    snaps = []
    for g in (global_seed, global_seed + 1):
        np.random.seed(g % 2**32)
        random.seed(g)
        snaps.append(snapshot(simulate(spec, backend, 150)))
    assert_snapshots_agree(snaps[0], snaps[1], ulps=0)


def _random_net(seed):
    net = sn.Network(0.5, seed)
    net.add_population("src", "poisson", 50, params={"rate": 80.0})
    net.add_population("n", "lif", 30, init={"v": sn.Uniform(-60.0, -50.0)})
    net.connect("src", "n", sn.FixedProbability(0.2), weight=sn.Normal(2.0, 1.0), delay=sn.Uniform(0.5, 3.0))
    net.add_stimulus(sn.NoiseCurrent("n", 3.0, 5.0))
    return net


def test_different_seeds_give_different_spikes(backend):
    runs = {}
    for seed in (1, 1, 2):
        sim = Simulator(_random_net(seed), backend=backend)
        sim.run(400)
        runs.setdefault(seed, []).append((sim.spikes.get("src"), sim.spikes.get("n")))
    (a_src, a_n), (b_src, b_n) = runs[1]
    for x, y in zip(a_src + a_n, b_src + b_n):
        np.testing.assert_array_equal(x, y)
    c_src, c_n = runs[2][0]
    assert a_src[0].size > 100 and a_n[0].size > 10
    assert not (a_src[0].size == c_src[0].size and np.array_equal(a_src[1], c_src[1]))
    assert not (a_n[0].size == c_n[0].size and np.array_equal(a_n[1], c_n[1]))


@settings(max_examples=20)
@given(spec=network_specs(steps=150), cuts=st.lists(st.integers(0, 60), max_size=3))
def test_record_buffer_flushes_and_run_splits_change_nothing(backend, spec, cuts):
    """A tiny spike buffer (a flush every few spikes) and split run() calls give the same run."""
    ref = snapshot(simulate(spec, backend, 150))
    cuts = [c for c in cuts if c] + [150 - sum(c for c in cuts if c)]
    if cuts[-1] <= 0:
        cuts = [150]
    got = snapshot(simulate(spec, backend, chunks=cuts, spike_buffer=1, chunk_steps=17))
    assert_snapshots_agree(ref, got, ulps=0)


def test_poisson_source_rate(backend):
    """Spike count of a Poisson population ~ Binomial(n steps, rate dt): within 5 sigma."""
    net = sn.Network(0.1, 7)
    net.add_population("src", "poisson", 200, params={"rate": 40.0})
    sim = Simulator(net, backend=backend)
    sim.run(5000)
    p = 40.0 * 0.1e-3
    trials = 200 * 5000
    n = sim.spikes.count("src")
    assert abs(n - trials * p) < 5 * np.sqrt(trials * p * (1 - p))
    steps, ids, _ = sim.spikes.get("src")
    assert np.unique(steps * 200 + ids).size == n  # at most one spike per neuron and step


def test_poisson_input_is_neither_a_synop_nor_a_queued_event(backend):
    net = sn.Network(0.1, 0)
    net.add_population("n", "lif", 20)
    net.add_stimulus(sn.PoissonInput("n", 2000.0, 1.0))
    sim = Simulator(net, backend=backend)
    sim.run(500)
    assert sim.spikes.count("n") > 0
    assert sim.events == (0, 0, 0) and sim.synops == {}


def test_current_steps_switch_at_their_step(backend):
    """CurrentSteps: amplitude a_k from t_k on. A SignedIF integrates it exactly (no leak)."""
    net = sn.Network(1.0, 0)
    net.add_population("q", "signed_if", 1, params={"q_min": -1000, "q_max": 1000})
    net.add_stimulus(sn.CurrentSteps("q", (5.0, 12.0, 20.0), (2.0, -1.0, 0.0)))
    mon = StateMonitor("q", ["v"])
    sim = Simulator(net, backend=backend, state=[mon])
    sim.run(10)
    sim.run(20)  # the current in force must survive the split
    _, v = mon.get("v")
    t = np.arange(30)
    expect = np.cumsum(np.where(t < 5, 0.0, np.where(t < 12, 2.0, np.where(t < 20, -1.0, 0.0))))
    np.testing.assert_array_equal(v[:, 0], expect)


_SETTLE_SCRIPT = """
import spikelm.network as n
from spikelm.simulator import Simulator
net = n.Network(1.0, 0)
net.add_population("s", "spike_times", 1, params={"times": ((0.0,),)})
net.add_population("q", "signed_if", 1)
net.connect("s", "q", weight=5.0)
sim = Simulator(net, backend="numba")
sim.run(until_quiescent=True, max_steps=100)
print(int(net.populations["q"].state["count"][0]))
"""


@pytest.mark.slow
def test_numba_cache_sees_edits_to_the_kernel_module(tmp_path):
    """Editing a model kernel must change what the numba backend computes.

    Numba's on-disk cache validates a function by its own source file only, so a cached time
    loop that calls the kernels of simulator/kernels/ would keep running the old kernels after
    they are edited (the generated loop module is named by a hash of every source it compiles
    in). Here a copy of the package (with its warm cache) gets a SignedIF kernel whose
    up-threshold is 2.5 instead of 0.5: an input of 5 must then settle at count 3, not 5.
    """
    import os
    import shutil
    import subprocess
    import sys

    import spikelm

    src = os.path.dirname(spikelm.__file__)
    dst = tmp_path / "spikelm"
    shutil.copytree(src, dst, copy_function=shutil.copy2)  # keeps mtimes: the copied cache stays valid
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    env.pop("NUMBA_CACHE_DIR", None)
    run = lambda: subprocess.run([sys.executable, "-c", _SETTLE_SCRIPT], env=env, cwd=tmp_path, capture_output=True,
                                 text=True, timeout=600)
    first = run()
    assert first.returncode == 0, first.stderr
    assert first.stdout.split()[-1] == "5"
    kernels = dst / "simulator" / "kernels" / "signed_if.py"
    text = kernels.read_text()
    assert "d >= 0.5" in text
    kernels.write_text(text.replace("d >= 0.5", "d >= 2.5", 1))  # the first is update's
    os.utime(kernels, None)
    second = run()
    assert second.returncode == 0, second.stderr
    assert second.stdout.split()[-1] == "3"


def test_a_long_run_is_a_few_compiled_calls_not_one_per_step(backend, monkeypatch):
    """docs/design.md: one call from Python advances many steps (up to the next record flush)."""
    net = sn.Network(0.1, 0)
    net.add_population("x", "lif", 50, params={"e_l": -49.0}, init={"v": sn.Uniform(-60.0, -50.0)})
    net.connect("x", "x", sn.FixedProbability(0.1), weight=0.5)
    sim = Simulator(net, backend=backend, chunk_steps=2000)
    calls = []
    original = sim.backend.run_chunk
    monkeypatch.setattr(sim.backend, "run_chunk", lambda *a, **k: calls.append(a[3]) or original(*a, **k))
    res = sim.run(10_000)
    assert res.steps == 10_000 and sim.spikes.count("x") > 0
    assert calls == [2000] * 5
