"""What a finished run keeps (issue 23, memory): a generation or a simulation holds a compact
copy of the spike counts of the positions it ran, not views that keep its executor's state
(sized for the whole context) alive; the copy has the same values, narrower where they fit."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_lm_helpers import token_ids
from test_lm_llama import SETTINGS, random_llama, save_llama
from spikelm.lm import convert
from spikelm.lm.convert import SpikingLM
from spikelm.lm.results import compact, drive


@pytest.fixture(scope="module")
def snn(tmp_path_factory):
    model = random_llama("qwen2", 7, vocab=50, ctx=14, layers=2, heads=4, kv_heads=2, inner=32, std=0.3)
    folder = save_llama(model, tmp_path_factory.mktemp("qwen2") / "m")
    return convert(folder, calibration=token_ids(1, 40, 50))


def view_counts(snn, ids):
    """The run's spike counts as views into a runner kept alive here (what runs returned before)."""
    runner = snn.runner(threads=1)
    return drive(runner, ids, None, None, "numba", own=False).counts, runner


def spy_runners(monkeypatch):
    """Weak references to the spike-count arrays of every runner SpikingLM makes from now on."""
    made = []
    runner = SpikingLM.runner

    def spy(self, *a, **k):
        r = runner(self, *a, **k)
        made.append(weakref.ref(r.counts))
        return r

    monkeypatch.setattr(SpikingLM, "runner", spy)
    return made


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
