"""The Qwen3 family (issue 21): random Qwen3 models (GQA, tied or untied heads, biases, sliding
windows shorter than the sequence, every RoPE scaling type) run exact in every coding on numpy
and numba, follow transformers at 12 bits, and load from every source Qwen3 ships in."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings

from lm_hf_families import (cases, check_backends_agree, check_exact, check_follows_transformers, random_model,
                            save_folder)
from test_lm_helpers import scaled, token_ids
from spikelm.errors import ConfigError
from spikelm.lm import convert
from spikelm.lm.load import open_model

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
QWEN3 = ["qwen3"]


@settings(max_examples=scaled(25), **SETTINGS)
@given(case=cases(QWEN3))
def test_random_qwen3_runs_exact_in_every_coding(case):
    snn = check_exact(case)
    assert snn.family.name == "qwen3" and "h0.qn" in snn.graph.index and "h0.kn" in snn.graph.index


@settings(max_examples=scaled(6), **SETTINGS)
@given(case=cases(QWEN3))
def test_random_qwen3_numpy_and_numba_agree_bit_for_bit(case):
    check_backends_agree(case)


@settings(max_examples=scaled(12), **SETTINGS)
@given(case=cases(QWEN3))
def test_random_qwen3_follows_transformers_at_12_bits(case):
    check_follows_transformers(case)


def base_case(**kw):
    return {**dict(model_type="qwen3", seed=5, vocab=40, ctx=12, layers=2, hidden=16, heads=4, kv_heads=2, head_dim=8,
                   inner=24, tied=False, std=0.3, bias=False, window=None, rope="default"), **kw}


def test_the_per_head_norms_are_what_differs_from_qwen2():
    """Qwen3's q/k norms change the model: without them (a Qwen2 reading of the same weights, less
    the norms) the float logits move, and the graph has one RMSNorm per head."""
    model = random_model(base_case())
    snn = convert(model, calibration=token_ids(1, 40, 40), bits=12)
    qn = snn.graph.pop("h0.qn")
    assert qn.op == "rmsnorm" and qn.params.group == 8 and qn.size == 4 * 8
    assert snn.graph.pop("h0.kn").size == 2 * 8
    import dataclasses

    plain = dataclasses.replace(snn.config)  # the same config, norms off
    object.__setattr__(plain, "qk_norm", False)
    ids = np.concatenate([[1], token_ids(2, 8, 40)])
    a = snn.family.float_logits(snn.config, snn.params, ids)
    b = snn.family.float_logits(plain, snn.params, ids)
    assert np.abs(a - b).max() > 0.05 * np.abs(a).max()


@pytest.mark.parametrize("how", ["safetensors", "sharded", "bin", "state_dict", "module"])
def test_qwen3_loads_from_every_source_alike(tmp_path, how):
    model = random_model(base_case(window=3, bias=True))
    calib, ids = token_ids(1, 40, 40), token_ids(2, 9, 40)
    want = convert(model, calibration=calib, bits=8).reference(ids).logits
    if how == "module":
        got = convert(model, calibration=calib, bits=8)
    elif how == "state_dict":
        got = convert(dict(model.state_dict()), calibration=calib, bits=8, config=model.config.to_dict())
    else:
        kw = {"sharded": dict(max_shard_size="20KB"), "bin": dict(bin=True)}.get(how, {})
        folder = save_folder(model, tmp_path / "m", **kw)
        names = sorted(p.name for p in folder.iterdir())
        if how == "sharded":
            assert "model.safetensors.index.json" in names
        if how == "bin":
            assert "pytorch_model.bin" in names and "model.safetensors" not in names
        got = convert(folder, calibration=calib, bits=8)
        assert open_model(folder).config == got.config
    assert got.family.name == "qwen3" and [e.window for e in got.graph.edges if e.kind == "scores"] == [3, 3]
    assert np.array_equal(got.reference(ids).logits, want)


@pytest.mark.parametrize("field, value, match", [
    ("hidden_act", "gelu", "hidden_act='gelu' is not supported; allowed: 'silu'"),
    ("rope_parameters", {"rope_type": "longrope", "rope_theta": 1e4, "short_factor": [1.0], "long_factor": [1.0]},
     "rope_parameters of type 'longrope' is not built"),
    ("sliding_window", -1, "sliding_window=-1; must be a positive integer or null"),
    ("num_experts", 8, "num_experts=8: mixture-of-experts models are not supported"),
    ("model_type", "qwen3_moe", "model_type='qwen3_moe'"),
    ("architectures", ["Qwen2ForCausalLM"], r"architectures=\['Qwen2ForCausalLM'\]: they disagree"),
    ("layer_types", ["full_attention"], r"layer_types=\['full_attention'\]; must list 2 of"),
])
def test_what_qwen3_cannot_build_is_one_line_naming_the_field(tmp_path, field, value, match):
    model = random_model(base_case(window=3))
    folder = save_folder(model, tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    cfg[field] = value
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=match) as e:
        convert(folder, calibration=token_ids(1, 30, 40))
    assert "\n" not in str(e.value) and str(folder / "config.json") in str(e.value)


def test_qwen3_tensors_are_checked_by_name(tmp_path):
    model = random_model(base_case())
    state = dict(model.state_dict())
    state.pop("model.layers.1.self_attn.k_norm.weight")
    with pytest.raises(ConfigError, match="missing keys model.layers.1.self_attn.k_norm.weight"):
        convert(state, calibration=token_ids(1, 30, 40), config=model.config.to_dict())
    state = dict(model.state_dict())
    state["model.layers.0.self_attn.q_norm.weight"] = torch.ones(4)
    with pytest.raises(ConfigError, match=r"q_norm.weight has shape \(4,\); the config needs \(8,\)"):
        convert(state, calibration=token_ids(1, 30, 40), config=model.config.to_dict())
