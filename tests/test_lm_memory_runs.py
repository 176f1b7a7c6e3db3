"""What a run holds (issue 23, memory): an executor's per-position state is made for the
positions the run needs and grows, with the same results, when it goes further; a finished
generation or simulation holds a compact copy of the spike counts of the positions it ran, not
views that keep its executor's state alive; the copy has the same values, narrower where they fit."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_lm_helpers import assert_lm_agree, token_ids
from test_lm_llama import SETTINGS, random_llama, save_llama
from spikelm.lm import convert
from spikelm.lm.convert import SpikingLM
from spikelm.lm.results import compact, drive
from spikelm.lm.runner import NumpyRunner
from spikelm.lm.numba_runner import NumbaRunner


@pytest.fixture(scope="module")
def snn(tmp_path_factory):
    model = random_llama("qwen2", 7, vocab=50, ctx=14, layers=2, heads=4, kv_heads=2, inner=32, std=0.3)
    folder = save_llama(model, tmp_path_factory.mktemp("qwen2") / "m")
    return convert(folder, calibration=token_ids(1, 40, 50))


def view_counts(snn, ids):
    """The run's spike counts as views into a runner kept alive here (what runs returned before)."""
    runner = snn.runner(threads=1)
    return drive(runner, ids, None, None, "numba", own=False).counts, runner


def spy_runners(monkeypatch, rows=None):
    """Weak references to the spike-count arrays of every runner SpikingLM makes from now on
    (and, in ``rows``, the positions each was made for)."""
    made = []
    runner = SpikingLM.runner

    def spy(self, *a, **k):
        r = runner(self, *a, **k)
        made.append(weakref.ref(r.counts))
        if rows is not None:
            rows.append(r.counts.shape[0])
        return r

    monkeypatch.setattr(SpikingLM, "runner", spy)
    return made


def test_runs_make_their_state_for_the_positions_they_use(snn, monkeypatch):
    rows = []
    spy_runners(monkeypatch, rows)
    P0, ids = snn.graph.n_prefix, token_ids(5, 4, 50)
    assert snn.graph.n_positions - P0 > 7
    snn.generate(ids, 3)  # the last new token is not run
    snn.simulate(ids[:2])
    assert rows == [P0 + 4 + 2, P0 + 2]


@pytest.mark.parametrize("cls", [NumpyRunner, NumbaRunner])
def test_a_runner_made_for_fewer_positions_grows_with_the_same_results(snn, cls):
    ids = token_ids(6, 5, 50)  # 1, 2, 4, 8 rows as it goes, of a context of 14
    full = cls(snn.graph, record=True)
    small = cls(snn.graph, record=True, positions=snn.graph.n_prefix + 1)
    assert small.counts.shape[0] == snn.graph.n_prefix + 1 < full.counts.shape[0] == snn.graph.n_positions
    a = drive(full, ids, None, None, "x", own=True)
    b = drive(small, ids, None, None, "x", own=True)
    assert_lm_agree(a, b)
    assert small.counts.shape[0] < snn.graph.n_positions  # doubled as it went, not the whole context
    assert np.array_equal(small.head_acc[: small.n], full.head_acc[: full.n])


def test_a_small_runner_restores_a_longer_sequence_and_goes_on_as_the_full_one(snn):
    ids = token_ids(8, 8, 50)
    full = NumbaRunner(snn.graph)
    first = drive(full, ids[:5], None, None, "numba", own=True)
    saved = (full.counts[: full.n].copy(), full.head_acc[: full.n].copy(), full.n, full.clock,
             {k: getattr(full.counters, k).copy() for k in ("spikes_pos", "spikes_neg", "op_evals", "synops",
                                                          "synops_products", "shift_adds")})
    small = NumbaRunner(snn.graph, positions=1)
    small.restore(*saved)
    rest_small = drive(small, ids[5:], None, None, "numba", own=True)
    rest_full = drive(full, ids[5:], None, None, "numba", own=True)
    assert first.logits.shape[0] == 5
    assert_lm_agree(rest_full, rest_small)


@pytest.mark.parametrize("run", ["generate", "simulate"])
def test_a_finished_run_keeps_a_copy_of_its_counts_not_its_runner(snn, monkeypatch, run):
    made = spy_runners(monkeypatch)
    ids = token_ids(3, 5, 50)
    sim = snn.generate(ids, 4).simulation if run == "generate" else snn.simulate(ids)
    gc.collect()
    assert len(made) == 1 and made[0]() is None  # the runner's state went with the runner
    ran = sim.logits.shape[0]
    views, runner = view_counts(snn, (snn.generate(ids, 4).tokens[:-1] if run == "generate" else ids))
    assert runner.counts.shape[0] == snn.graph.n_positions > ran
    assert set(sim.counts) == set(views)
    for name, c in sim.counts.items():
        assert c.base is None and c.shape == views[name].shape == (ran, views[name].shape[1])
        assert np.array_equal(c, views[name])


def test_a_learning_feed_still_returns_views_of_its_running_sequence(snn):
    # a learning sequence is summarized after every call: copying every position each time
    # would be quadratic, and its runner lives on in the session anyway
    learning = snn.learning()
    sim = learning.feed(token_ids(4, 3, 50))
    assert all(np.shares_memory(c, learning.runner.counts) for c in sim.counts.values())


@settings(max_examples=60, **SETTINGS)
@given(st.lists(st.integers(-2**20, 2**20), min_size=0, max_size=12), st.sampled_from([1, 2**3, 2**6, 2**7]),
       st.sampled_from([np.int16, np.int32, np.int64]))
def test_compact_keeps_every_value_and_narrows_only_where_differences_fit(values, scale, dtype):
    top = np.iinfo(dtype).max
    a = np.clip(np.array([v // scale for v in values], dtype=np.int64), -top, top).astype(dtype)
    c = compact(a)
    assert c.base is None and np.array_equal(c, a)
    small = a.size == 0 or int(np.abs(a.astype(np.int64)).max()) < 2**14
    assert c.dtype == (np.int16 if small else dtype)
    if small:  # a difference of two compact arrays cannot wrap
        d = c[:, None] - c[None, :] if c.ndim == 1 else c
        assert np.array_equal(d.astype(np.int64), a.astype(np.int64)[:, None] - a.astype(np.int64)[None, :])
