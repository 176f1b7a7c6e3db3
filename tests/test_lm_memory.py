"""Conversion that keeps only what each phase needs: the float weights dropped as they are folded
(``convert(..., keep_float=False)``) and lookup tables in their narrowest integer type, each
giving the same integer model and the same logits as before."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_lm_helpers import token_ids
from test_lm_llama import SETTINGS, random_llama, save_llama
from spikelm.errors import ConfigError
from spikelm.lm import convert
from spikelm.lm.fingerprint import fingerprint
from spikelm.lm.ops.table import TableParams, narrowest


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    model = random_llama("qwen2", 5, vocab=60, ctx=12, layers=2, heads=4, kv_heads=2, inner=40, std=0.3)
    return save_llama(model, tmp_path_factory.mktemp("qwen2") / "m")


def test_dropping_the_float_weights_as_they_are_folded_builds_the_same_model(folder, monkeypatch):
    from spikelm.lm.families.llama import build as llama_build
    from spikelm.lm.load import open_model

    calib, ids = token_ids(1, 40, 60), token_ids(2, 9, 60)
    kept = convert(folder, calibration=calib)
    loaded = open_model(folder)
    params, held = loaded.params, []
    fold = llama_build.folded_weight_codes

    def spy(*a, **k):  # how many float tensors the model still holds at each fold
        held.append(len(params))
        return fold(*a, **k)

    monkeypatch.setattr(llama_build, "folded_weight_codes", spy)
    lean = convert(loaded, calibration=calib, keep_float=False)
    # 2 layers x 7 weights, each dropped before it is folded (its float64 copy is folded), then
    # the head (folded from the stored float32 array, dropped after)
    assert held == list(range(held[0], held[0] - 14, -1)) + [held[0] - 13]
    assert len(params) == held[-1] - 1
    assert lean.params is None and loaded.params is None
    assert fingerprint(lean.graph) == fingerprint(kept.graph)
    assert np.array_equal(lean.reference(ids).logits, kept.reference(ids).logits)
    assert np.array_equal(lean.simulate(ids).logits, kept.simulate(ids).logits)
    with pytest.raises(ConfigError, match="float model was released"):
        lean.float_logits(ids)
    assert np.isfinite(kept.float_logits(ids)).all()  # the default keeps it


@settings(max_examples=60, **SETTINGS)
@given(st.lists(st.integers(-2**40, 2**40), min_size=1, max_size=20), st.sampled_from([1, 2**7, 2**15, 2**31]))
def test_narrowest_holds_every_value_in_the_narrowest_type(values, scale):
    a = np.array([v // scale for v in values], dtype=np.int64)
    n = narrowest(a)
    assert np.array_equal(n.astype(np.int64), a)
    types = (np.int8, np.int16, np.int32, np.int64)
    fits = [t for t in types if np.iinfo(t).min <= a.min() and a.max() <= np.iinfo(t).max]
    assert n.dtype == fits[0]


def test_narrow_tables_run_as_the_wide_ones(folder):
    """The SiLU tables are stored narrow (int32 at the default 12 bits); widened back to int64 they
    give the same reference and spiking logits, on NumPy and Numba."""
    snn = convert(folder, calibration=token_ids(1, 40, 60))
    ids = token_ids(3, 8, 60)
    tables = [p.params for p in snn.graph.pops if p.op == "table"]
    assert tables and all(t.lut.dtype == np.int32 for t in tables)
    narrow = snn.reference(ids).logits, snn.simulate(ids).logits, snn.simulate(ids, backend="numpy").logits
    for t in tables:
        t.lut = t.lut.astype(np.int64)  # past __post_init__: the table as it was stored before
    wide = snn.reference(ids).logits, snn.simulate(ids).logits, snn.simulate(ids, backend="numpy").logits
    for a, b in zip(narrow, wide):
        assert np.array_equal(a, b)
    assert TableParams(np.array([0, 5, -3]), 0).lut.dtype == np.int8


@pytest.mark.parametrize("window, snn_tokens", [(None, 0), (5, 7), (11, 30)])
def test_float_scores_before_conversion_give_evaluate_its_figures_without_the_float_model(folder, window,
                                                                                          snn_tokens):
    """The float model scored on its own (:func:`float_scores`), then released while converting:
    every figure of ``evaluate`` equals the one it gives with the float model kept; floats of
    other windows are refused in one line."""
    from spikelm.lm.evaluate import evaluate, float_scores
    from spikelm.lm.load import open_model

    calib, ids = token_ids(1, 40, 60), token_ids(3, 30, 60)
    kept = evaluate(convert(folder, calibration=calib), ids, snn_tokens, window=window)
    loaded = open_model(folder)
    floats = float_scores(loaded, ids, snn_tokens, window=window)
    lean = convert(loaded, calibration=calib, keep_float=False)
    assert lean.params is None
    assert evaluate(lean, ids, snn_tokens, window=window, floats=floats) == kept
    other = float_scores(open_model(folder), ids, snn_tokens, window=4 if window != 4 else 6)
    with pytest.raises(ConfigError, match=r"^evaluate: floats were scored on other windows"):
        evaluate(lean, ids, snn_tokens, window=window, floats=other)
