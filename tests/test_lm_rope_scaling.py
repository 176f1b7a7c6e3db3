"""RoPE scaling and sliding windows in the Llama family (issue 21): the rotary frequencies of
every rope type equal transformers' own; random Llama 3-style (llama3, yarn, linear, dynamic),
Mistral v0.1 (a window on every layer) and Qwen2 (``use_sliding_window`` from
``max_window_layers``) models with windows shorter than the sequence run exact in every coding
on numpy and numba and follow transformers at 12 bits."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lm_hf_families import (cases, check_backends_agree, check_exact, check_follows_transformers, hf_logits,
                            random_model, rope_params)
from test_lm_helpers import scaled, token_ids
from spikelm.errors import ConfigError
from spikelm.lm import convert
from spikelm.lm.families.rotary import Rotary

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
LLAMAS = ["llama", "mistral", "qwen2"]


@st.composite
def rope_cases(draw):
    kind = draw(st.sampled_from(["default", "linear", "dynamic", "llama3", "yarn"]))
    theta = draw(st.sampled_from([10.0, 1e4, 5e5]))
    original = draw(st.sampled_from([8, 64, 8192]))
    params = rope_params(kind, theta, original)
    if kind in ("linear", "dynamic", "llama3", "yarn"):
        params["factor"] = draw(st.sampled_from([1.5, 4.0, 32.0]))
    if kind == "llama3":
        params["low_freq_factor"], params["high_freq_factor"] = draw(st.sampled_from([(1.0, 4.0), (0.5, 2.0)]))
    if kind == "yarn":
        params.update(draw(st.sampled_from([{}, {"beta_fast": 16.0, "beta_slow": 2.0}, {"attention_factor": 0.8},
                                            {"truncate": False}])))
    return params, draw(st.sampled_from([4, 8, 64, 128])), original * 4


@settings(max_examples=scaled(60), **SETTINGS)
@given(rope_cases())
def test_rotary_frequencies_of_every_type_equal_transformers(case):
    """The inverse frequencies and yarn's attention factor, against transformers' rope functions."""
    import transformers
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    params, dim, max_pos = case
    cfg = transformers.LlamaConfig(hidden_size=dim * 2, num_attention_heads=2, head_dim=dim,
                                   max_position_embeddings=max_pos, rope_parameters=dict(params))
    rot = Rotary.from_hf(params, params["rope_theta"], max_pos, "test", "rope_parameters")
    kind = params["rope_type"]
    if kind == "default":
        want = 1.0 / params["rope_theta"] ** (np.arange(0, dim, 2) / dim)
        factor = 1.0
    else:
        inv, factor = ROPE_INIT_FUNCTIONS[kind](cfg, "cpu")
        want = inv.double().numpy()
    assert np.allclose(rot.inv_freq(dim), want, rtol=1e-6, atol=0)
    assert rot.scale == pytest.approx(factor, rel=1e-6)
    cos, sin = rot.tables(dim, 5)
    assert np.allclose(cos ** 2 + sin ** 2, rot.scale ** 2)


@settings(max_examples=scaled(25), **SETTINGS)
@given(case=cases(LLAMAS))
def test_random_scaled_and_windowed_llamas_run_exact_in_every_coding(case):
    snn = check_exact(case)
    want = {"llama": None, "mistral": case["window"], "qwen2": case["window"]}[case["model_type"]]
    wins = [e.window for e in snn.graph.edges if e.kind == "scores"]
    if case["model_type"] == "qwen2" and want:  # layers below max_window_layers attend to everything
        assert wins == [0 if i < case["first_window_layer"] else want for i in range(case["layers"])]
    else:
        assert wins == [want or 0] * case["layers"]


@settings(max_examples=scaled(6), **SETTINGS)
@given(case=cases(LLAMAS))
def test_random_scaled_and_windowed_llamas_numpy_and_numba_agree_bit_for_bit(case):
    check_backends_agree(case)


@settings(max_examples=scaled(15), **SETTINGS)
@given(case=cases(LLAMAS))
def test_random_scaled_and_windowed_llamas_follow_transformers_at_12_bits(case):
    check_follows_transformers(case)


def test_a_window_shorter_than_the_sequence_changes_the_logits_as_in_transformers():
    """The window is not a no-op: the same Mistral weights with and without it differ on the
    later tokens, and each matches transformers' forward (the BOS counts as position 0 of the
    window, as transformers sees it)."""
    base = dict(model_type="mistral", seed=3, vocab=40, ctx=14, layers=2, heads=4, kv_heads=2, head_dim=8, hidden=16,
                inner=24, tied=False, std=0.5)
    ids = token_ids(2, 12, 40)
    got = {}
    for window in (None, 3):
        model = random_model({**base, "window": window})
        snn = convert(model, calibration=token_ids(1, 40, 40), bits=12)
        got[window] = snn.float_logits(ids)
        want = hf_logits(model, ids)
        assert np.abs(got[window] - want).max() <= 1e-4 * np.abs(want).max()
    assert np.allclose(got[None][:2], got[3][:2])  # within the window: the same
    assert np.abs(got[None][-1] - got[3][-1]).max() > 1e-3


@pytest.mark.parametrize("params, match", [
    ({"rope_type": "longrope", "rope_theta": 1e4, "short_factor": [1.0], "long_factor": [1.0]},
     "rope_parameters of type 'longrope' is not built"),
    ({"rope_type": "llama3", "rope_theta": 1e4, "factor": 8.0}, "rope_parameters of type 'llama3' needs 'low_freq_factor'"),
    ({"rope_type": "linear", "rope_theta": 1e4, "factor": 0}, r"rope_parameters.factor=0; must be a finite number > 0"),
])
def test_rope_types_not_built_are_one_line_naming_the_field(params, match):
    with pytest.raises(ConfigError, match=match) as e:
        Rotary.from_hf(params, 1e4, 64, "config.json", "rope_parameters")
    assert "\n" not in str(e.value) and str(e.value).startswith("config.json: ")


@pytest.mark.parametrize("window", [None, 1, 3, 20])
def test_dense_macs_of_a_windowed_layer_in_closed_form(window):
    """Per layer and position n: the projections' d dh (2 heads + 2 kv_heads) + 3 d inner, the
    gated product's inner, and Q·K^T plus A·V over min(n + 1, window) keys, 2 heads dh each (n
    counts the BOS prefix)."""
    d, H, KV, dh, inner, L = 16, 4, 2, 8, 24, 9
    model = random_model(dict(model_type="mistral", seed=4, vocab=30, ctx=14, layers=2, heads=H, kv_heads=KV,
                              head_dim=dh, hidden=d, inner=inner, tied=False, std=0.3, window=window))
    snn = convert(model, calibration=token_ids(1, 40, 30), bits=8)
    run = snn.simulate(token_ids(2, L, 30))
    start = snn.graph.n_prefix
    keys = [min(n + 1, window or n + 1) for n in range(start, start + L)]
    want = L * (d * dh * (2 * H + 2 * KV) + 3 * d * inner + inner) + 2 * H * dh * sum(keys)
    assert run.macs["h0"] == run.macs["h1"] == want
