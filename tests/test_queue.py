"""The event queue on its own: push / deliver (deliver also advances: it clears the slot),
ring wrap-around over many cycles, and conservation, against a plain dict oracle."""
from collections import defaultdict

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import spikelm.network as sn
from spikelm.simulator import EventQueue, Simulator


def test_push_arrives_exactly_after_its_delay_and_targets_stay_apart():
    q = EventQueue(4, max_delay=3)
    assert q.n_slots == 4
    q.push(0, [1, 3, 3, 2], [0, 0, 1, 1], [2, 2, 2, 0], [1.5, 2.0, -4.0, 7.0])
    exc, inh = q.deliver(0)
    assert not exc.any() and not inh.any()
    exc, inh = q.deliver(1)
    np.testing.assert_array_equal(exc, [0, 0, 1.5, 0])
    np.testing.assert_array_equal(inh, 0)
    exc, inh = q.deliver(2)
    np.testing.assert_array_equal(inh, [7.0, 0, 0, 0])
    np.testing.assert_array_equal(exc, 0)
    exc, inh = q.deliver(3)
    np.testing.assert_array_equal(exc, [0, 0, 2.0, 0])
    np.testing.assert_array_equal(inh, [0, 0, -4.0, 0])
    assert (q.pushed, q.delivered, q.pending) == (4, 4, 0)


def test_events_to_one_neuron_and_slot_add_up():
    q = EventQueue(2, max_delay=2)
    q.push(5, [2, 2, 2], [0, 0, 0], [1, 1, 1], [1.0, 2.0, 3.0])  # repeated index: np.add.at, not fancy assignment
    q.deliver(6)
    exc, _ = q.deliver(7)
    np.testing.assert_array_equal(exc, [0.0, 6.0])
    assert (q.pushed, q.delivered, q.pending) == (3, 3, 0)


def test_deliver_clears_its_slot_and_returns_a_copy():
    q = EventQueue(3, max_delay=1)
    q.push(0, [1], [0], [0], [5.0])
    exc, _ = q.deliver(1)
    exc[:] = 99.0  # the caller owns what it got
    assert not q.buf.any()
    q.push(1, [1], [0], [1], [1.0])  # reuses slot 0 after the wrap
    exc, _ = q.deliver(2)
    np.testing.assert_array_equal(exc, [0.0, 1.0, 0.0])


@settings(max_examples=60)
@given(n=st.integers(1, 6), max_delay=st.integers(1, 7), data=st.data())
def test_ring_wraps_around_many_times_without_losing_or_misrouting_events(n, max_delay, data):
    """Over several cycles of the ring, each step delivers exactly what the oracle says, and
    pushed = delivered + pending holds after every operation."""
    q = EventQueue(n, max_delay)
    oracle = defaultdict(lambda: np.zeros((2, n)))  # step -> expected sums
    pending = defaultdict(int)
    n_steps = data.draw(st.integers(1, 6 * (max_delay + 1)))
    batch = st.lists(st.tuples(st.integers(1, max_delay), st.integers(0, 1), st.integers(0, n - 1),
                               st.integers(-8, 8).map(float)), max_size=6)
    for t in range(n_steps):
        exc, inh = q.deliver(t)
        np.testing.assert_array_equal(exc, oracle[t][0], err_msg=f"exc at step {t}")
        np.testing.assert_array_equal(inh, oracle[t][1], err_msg=f"inh at step {t}")
        pending.pop(t, None)
        assert q.pushed == q.delivered + q.pending
        events = data.draw(batch)
        if events:
            d, tg, post, val = (np.array(c) for c in zip(*events))
            q.push(t, d, tg, post, val)
            for di, ti, pi, vi in events:
                oracle[t + di][ti, pi] += vi
                pending[t + di] += 1
        assert q.pending == sum(pending.values())
        assert q.pushed == q.delivered + q.pending


def test_simulator_queue_has_max_delay_plus_one_slots():
    """docs/design.md: a ring of max_delay + 1 slots (here 7 steps of delay at dt 0.5 ms)."""
    net = sn.Network(0.5, 0)
    net.add_population("a", "lif", 3)
    net.connect("a", "a", weight=1.0, delay=sn.Uniform(0.3, 2.7))
    net.connect("a", "a", sn.OneToOne(), weight=1.0, delay=3.5, name="far")
    sim = Simulator(net, backend="numpy")
    assert sim.plan.queue.n_slots == 8
