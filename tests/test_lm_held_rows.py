"""Held rows (docs/lm.md, "Held rows"): a row source's spikes wait in slots, one a step, and go
into their weight rows when the source settles (its targets start only then) or its slots are
full: neuron by neuron, each spike its own row addition, through int32 partial sums where the
accumulators are int64. Every neuron still receives exactly the additions it receives step by
step, so logits, codes, spikes, steps and SynOps stay the reference's bit for bit, whatever the
accumulator type, the bound of the partial sums or the team of threads."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_lm_exact import SETTINGS, gpt_cases
from test_lm_helpers import assert_lm_agree, assert_matches_reference, random_tiny_gpt, scaled, token_ids
from test_lm_llama import build as build_llama, llama_cases
from test_lm_threads import quick_gpt2, run_on
from spikelm.lm import convert, numba_runner
from spikelm.lm.rows import add_held as add_held_nb
from spikelm.lm.numba_runner import HELD_STEPS, NumbaRunner, held_rows
from spikelm.lm.results import drive



def run(snn, ids, threads=1, wide=False, wmax_scale=1):
    """``ids`` on a numba runner; ``wide``: int64 accumulators forced (so rows go through the int32
    partial sums), with the weight bound multiplied by ``wmax_scale`` (a looser bound: the partial
    sums are added into the accumulators after fewer rows, or not used at all)."""
    if not wide:
        return run_on(snn, ids, threads)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(numba_runner, "acc_dtype", lambda *a, **k: np.int64)
        r = NumbaRunner(snn.graph, record=True, threads=threads)
    assert r.acc.dtype == np.int64 and r.struct.pj_wmax.min() >= 1
    r.struct = r.struct._replace(pj_wmax=r.struct.pj_wmax * wmax_scale)
    return drive(r, ids, None, None, "numba")


def assert_held_rows_exact(snn, ids, threads, wmax_scale):
    plain = run(snn, ids)
    assert_matches_reference(snn, ids, plain)
    assert_lm_agree(plain, run(snn, ids, threads, wide=True, wmax_scale=wmax_scale))


@settings(max_examples=scaled(6), **SETTINGS)
@given(case=gpt_cases(), threads=st.integers(1, 2), wmax_scale=st.sampled_from([1, 2**6, 2**12, 2**40]))
def test_random_gpt2_models_run_exact_through_int32_partial_sums(case, threads, wmax_scale):
    assert_held_rows_exact(*quick_gpt2(case), threads, wmax_scale)


@settings(max_examples=scaled(6), **SETTINGS)
@given(case=llama_cases(), threads=st.integers(1, 2), wmax_scale=st.sampled_from([1, 2**6, 2**12, 2**40]))
def test_random_llama_models_run_exact_through_int32_partial_sums(case, threads, wmax_scale):
    if case["coding"] == "unit":
        case["bits"] = 4
    _, snn = build_llama(case)
    ids = token_ids(case["seed"] + 2, min(case["length"], 6), case["vocab"])
    assert_held_rows_exact(snn, ids, threads, wmax_scale)


@pytest.mark.parametrize("threads", [1, 2])
def test_spike_trains_longer_than_the_slots_are_added_slots_at_a_time(threads):
    """Unit coding at 6 bits: codes up to 31, so row sources fire for more steps than they have
    slots, and their held spikes go into the rows before they settle, more than once."""
    snn = convert(random_tiny_gpt(3, width=32, heads=2, layers=2), calibration=token_ids(2, 30, 40), bits=6,
                  coding="unit")
    ids = token_ids(4, 5, 40)
    ref = snn.reference(ids)
    sources = {snn.graph.pops[pr.pre].name for pr in snn.graph.projections}
    longest = max(int(np.abs(ref.codes[name]).max()) for name in sources if name in ref.codes)
    assert longest > 2 * HELD_STEPS  # (a row source spells at least this many unit spikes)
    plain = run(snn, ids, threads)
    assert_matches_reference(snn, ids, plain, ref)
    assert_lm_agree(plain, run(snn, ids, threads, wide=True))


@settings(max_examples=scaled(40), deadline=None)
@given(data=st.data(), size=st.integers(1, 12), width=st.integers(1, 70), n_held=st.integers(1, HELD_STEPS),
       top_bit=st.integers(0, 15), c_lo=st.integers(0, 5))
def test_held_spikes_add_their_rows_exactly_with_any_safe_room(data, size, width, n_held, top_bit, c_lo):
    """add_held against int64 NumPy, with weights at the int16 extremes and spike values up to
    2^top_bit: every room from 0 (straight into the accumulators) up to the most rows an int32
    partial sum can take, floor((2^31 - 1) / (max|w| max|v|)) with v a neuron's held spikes
    summed, gives the same sums."""
    npost = width + c_lo + data.draw(st.integers(0, 3))
    W = np.array(data.draw(st.lists(st.sampled_from([-32768, -32767, -1, 0, 1, 12345, 32767]),
                                    min_size=size * npost, max_size=size * npost)), np.int16)
    values = st.sampled_from([0, 0, 1, -1] + [s * 2**k for k in range(1, top_bit + 1) for s in (1, -1)])
    dsl = data.draw(st.integers(0, 4))
    dbuf = np.zeros((HELD_STEPS, dsl + size + 2), np.int32)
    dbuf[:n_held, dsl : dsl + size] = np.array(data.draw(st.lists(values, min_size=n_held * size,
                                                                   max_size=n_held * size))).reshape(n_held, size)
    a0 = np.array(data.draw(st.lists(st.integers(-2**62, 2**62), min_size=width, max_size=width)), np.int64)
    rows = W.reshape(size, npost)[:, c_lo : c_lo + width].astype(np.int64)
    want = a0 + dbuf[:n_held, dsl : dsl + size].astype(np.int64).sum(0) @ rows
    vtop = max(int(np.abs(dbuf[:n_held, dsl : dsl + size].astype(np.int64).sum(0)).max()), 1)  # a neuron's value
    safe = (2**31 - 1) // (max(int(np.abs(W.astype(np.int64)).max(initial=0)), 1) * vtop)
    room = data.draw(st.integers(0, max(safe, 0)))
    a = a0.copy()
    ps = np.zeros(width + 3, np.int32)
    add_held_nb(dbuf, n_held, dsl, size, W, 0, npost, c_lo, a, room, ps[:width])
    assert np.array_equal(a, want)
    assert not ps.any()  # the partial sums are left cleared


def test_held_rows_hold_every_row_source_once_and_learning_runs_none():
    snn = convert(random_tiny_gpt(2, width=32, heads=2, layers=2), calibration=token_ids(1, 20, 40), bits=6)
    g = snn.graph
    wmax, dslot, n = held_rows(g, np.int64, True)
    sources = sorted({pr.pre for pr in g.projections})
    assert sorted(np.flatnonzero(dslot >= 0)) == sources
    spans = sorted((dslot[p], dslot[p] + g.pops[p].size) for p in sources)
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # side by side, none shared
    assert list(wmax) == [max(int(np.abs(pr.weights.astype(np.int64)).max()), 1) for pr in g.projections]
    w32, d_learn, n_learn = held_rows(g, np.int32, False)
    assert not w32.any() and (d_learn == -1).all() and n_learn == 0


@pytest.mark.parametrize("k", [0, 7, 10])
def test_the_room_is_the_most_rows_an_int32_partial_sum_takes(k):
    """The worst case: every weight -2^15 and every neuron holding -2^k (spikes of -2^(k+1) and
    +2^k: the room goes by a neuron's summed value, not by its largest spike), so each row adds
    2^(15 + k). The room floor((2^31 - 1) / 2^(15 + k)) = 2^(16 - k) - 1 rows stays exact; one
    more row would reach 2^31."""
    size, n_held = 2 ** (16 - k) + 1, 2
    W = np.full(size * 3, -(2**15), np.int16)
    dbuf = np.zeros((HELD_STEPS, size), np.int32)
    dbuf[0], dbuf[1] = -(2 ** (k + 1)), 2**k
    room = (2**31 - 1) // (2**15 * 2**k)
    assert room == 2 ** (16 - k) - 1 and size > room
    a = np.zeros(3, np.int64)
    add_held_nb(dbuf, n_held, 0, size, W, 0, 3, 0, a, room, np.zeros(3, np.int32))
    assert (a == size * 2 ** (15 + k)).all()
