"""BrainGPT STDP gated by the readout's error (``gated_braingpt_stdp``, issue 25): the gate against
a transcription (plain BrainGPT STDP switched on and off token by token by the test's own
surprise of each token), numpy == numba, checkpoint + resume, and an infinite-like threshold
changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from test_lm_helpers import assert_lm_agree, token_ids
from test_lm_learn_readout import VOCAB, tiny
from spikelm.lm.learn.session import Learning

STDP_FIELDS = {"eta_w": 0.05, "a_plus": 2.0, "a_minus": 1.0, "tau_plus": 5.0, "tau_minus": 5.0}


def gated(surprise, post="h0.fc"):
    return {"projections": {post: {"plasticity": {"rule": "gated_braingpt_stdp", "surprise": surprise,
                                                  **STDP_FIELDS}}}}


def surprise_of(logits, y):
    m = logits.max()
    return m + np.log(np.exp(logits - m).sum()) - logits[y]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_the_gate_opens_on_surprising_tokens_only(backend):
    snn = tiny(4, ctx=12)
    ids = token_ids(4, 12, VOCAB)
    # the threshold: the median surprise of the exact model, so that the gate opens and closes
    exact = snn.simulate(ids).logits
    s = float(np.median([surprise_of(exact[i], ids[i + 1]) for i in range(len(ids) - 1)]))
    run = Learning(snn, gated(s), backend)
    got = run.feed(ids)
    # the transcription: plain BrainGPT STDP, switched per token by the surprise the run reports
    manual = Learning(snn, {"projections": {"h0.fc": {"plasticity": {"rule": "braingpt_stdp", **STDP_FIELDS}}}},
                      backend)
    opened = []
    for i, t in enumerate(ids):
        on = i > 0 and surprise_of(manual.logits[-1][-1], t) >= s
        opened.append(on)
        manual.set_enabled(bool(on))
        manual.feed([t], drift=False)
    assert 0 < sum(opened) < len(ids) - 1  # the gate did both
    assert np.array_equal(np.concatenate(manual.logits), got.logits)
    assert np.array_equal(manual.state.a["wm"], run.state.a["wm"])
    assert run.state.stats()["w_changed"] > 0


def test_gated_learning_is_identical_on_numpy_and_numba_and_resumes_identically(tmp_path):
    snn = tiny(5, ctx=12)
    ids = token_ids(5, 11, VOCAB)
    pl = gated(1.0)
    runs = {be: Learning(snn, pl, be) for be in ("numpy", "numba")}
    sims = {be: r.feed(ids) for be, r in runs.items()}
    assert np.array_equal(sims["numpy"].logits, sims["numba"].logits)
    for k, v in runs["numpy"].state.state_dict().items():
        assert np.array_equal(runs["numba"].state.state_dict()[k], v), k
    first = Learning(snn, pl, "numba")
    first.feed(ids[:5])
    first.save_checkpoint(tmp_path / "ck.h5")
    again = Learning.resume(snn, tmp_path / "ck.h5", "numpy")
    assert np.array_equal(again.feed(ids[5:]).logits, sims["numba"].logits[5:])


def test_a_gate_that_never_opens_changes_nothing():
    snn = tiny(6, ctx=12)
    ids = token_ids(6, 9, VOCAB)
    run = Learning(snn, gated(1e9), "numba")
    assert_lm_agree(snn.simulate(ids, record=True), run.feed(ids, record=True))
    assert run.state.stats()["w_changed"] == 0
