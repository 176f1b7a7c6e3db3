"""The Gemma family (issue 21): random Gemma 1, Gemma 2 and Gemma 3 text models (GeGLU, 1 + w
norms, scaled embeddings, post norms, soft-capping, alternating sliding windows shorter than the
sequence, Gemma 3's q/k norms and two RoPE bases, every RoPE scaling type) run exact in every
coding on numpy and numba, follow transformers at 12 bits, and load from every source."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from lm_hf_families import (cases, check_backends_agree, check_exact, check_follows_transformers, hf_logits,
                            random_model, save_folder)
from test_lm_helpers import scaled, token_ids
from spikelm.errors import ConfigError
from spikelm.lm import convert

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
GEMMAS = ["gemma", "gemma2", "gemma3_text"]


@settings(max_examples=scaled(30), **SETTINGS)
@given(case=cases(GEMMAS))
def test_random_gemma_runs_exact_in_every_coding(case):
    snn = check_exact(case)
    g = snn.graph
    assert snn.family.name == "gemma" and "h0.gelu" in g.index and "h0.silu" not in g.index
    assert ("h0.onorm" in g.index) == ("h0.dnorm" in g.index) == (case["model_type"] != "gemma")
    assert ("h0.qn" in g.index) == (case["model_type"] == "gemma3_text")


@settings(max_examples=scaled(8), **SETTINGS)
@given(case=cases(GEMMAS))
def test_random_gemma_numpy_and_numba_agree_bit_for_bit(case):
    check_backends_agree(case)


@settings(max_examples=scaled(15), **SETTINGS)
@given(case=cases(GEMMAS))
def test_random_gemma_follows_transformers_at_12_bits(case):
    check_follows_transformers(case)


def base_case(model_type, **kw):
    return {**dict(model_type=model_type, seed=7, vocab=40, ctx=14, layers=3, hidden=16, heads=4, kv_heads=2,
                   head_dim=8, inner=24, tied=True, std=0.3, bias=False, window=None, rope="default", scalar=16), **kw}


def windows(snn):
    return [e.window for e in snn.graph.edges if e.kind == "scores"]


def test_gemma2_windows_alternate_and_its_soft_caps_bound_scores_and_logits():
    model = random_model(base_case("gemma2", window=3, softcap=(1.0, 2.0), std=1.0))
    snn = convert(model, calibration=token_ids(1, 60, 40), bits=12)
    assert windows(snn) == [3, 0, 3]  # layers 0 and 2 slide, layer 1 is global (transformers' pattern)
    ids = token_ids(2, 12, 40)
    ref = snn.reference(ids)
    assert np.abs(ref.logits).max() <= 2.0 and np.abs(ref.logits).max() > 1.5  # the final cap, reached
    assert np.abs(ref.logits - hf_logits(model, ids)).max() <= 0.03 * 2.0
    # the softmax of capped scores: no probability beyond e^(2 cap) times another's in the same window
    last = ref.codes["h1.att"].reshape(len(ids), 4, -1)[-1, :, 1 : len(ids) + 1]  # the global layer's last row
    for head in last:
        seen = head[head > 0]
        assert seen.max() <= np.exp(2 * 1.0) * seen.min() * 1.01 + 1
    uncapped = random_model(base_case("gemma2", window=3, softcap=None, std=1.0))
    assert np.abs(hf_logits(uncapped, ids)).max() > 4.0  # the same weights reach further without the caps


def test_gemma3_local_layers_rotate_with_their_own_base():
    case = base_case("gemma3_text", window=4, pattern=3, rope="linear", layers=3)
    model = random_model(case)
    snn = convert(model, calibration=token_ids(1, 60, 40), bits=12)
    cfg = snn.config
    assert windows(snn) == [4, 4, 0]  # two local layers, then a global one
    assert cfg.rotary_of(0).rope_theta == 10.0 and cfg.rotary_of(2).rope_theta == 100.0
    assert cfg.rotary_of(2).rope_type == "linear" and cfg.rotary_of(0).rope_type == "default"
    cos_local, cos_global = snn.graph.pop("h0.qr").params.cos, snn.graph.pop("h2.qr").params.cos
    assert not np.allclose(cos_local, cos_global)
    assert snn.graph.pop("h0.qn").params.group == 8
    ids = token_ids(2, 12, 40)
    assert np.abs(snn.float_logits(ids) - hf_logits(model, ids)).max() <= 1e-4 * np.abs(hf_logits(model, ids)).max()


def test_gemma_embeddings_are_scaled_and_its_norm_gains_are_one_plus_w():
    model = random_model(base_case("gemma"))
    snn = convert(model, calibration=token_ids(1, 60, 40), bits=12)
    emb = snn.graph.pop("emb").params.wte
    assert np.allclose(emb, model.model.embed_tokens.weight.detach().double().numpy() * 4.0)  # sqrt(16)
    w = model.model.layers[0].input_layernorm.weight.detach().double().numpy()
    prm = snn.graph.pop("h0.norm1").params
    s_in, s_out = snn.graph.pop("emb").scale, snn.graph.pop("h0.norm1").scale
    assert np.allclose(prm.gain, s_in * (1 + w) / s_out)


@pytest.mark.parametrize("model_type", GEMMAS)
@pytest.mark.parametrize("how", ["safetensors", "sharded", "bin", "state_dict", "module"])
def test_gemma_loads_from_every_source_alike(tmp_path, model_type, how):
    model = random_model(base_case(model_type, window=3, bias=True, tied=how != "bin", softcap=(20.0, 10.0)))
    calib, ids = token_ids(1, 40, 40), token_ids(2, 9, 40)
    want = convert(model, calibration=calib, bits=8).reference(ids).logits
    if how == "module":
        got = convert(model, calibration=calib, bits=8)
    elif how == "state_dict":
        got = convert(dict(model.state_dict()), calibration=calib, bits=8, config=model.config.to_dict())
    else:
        kw = {"sharded": dict(max_shard_size="20KB"), "bin": dict(bin=True)}.get(how, {})
        got = convert(save_folder(model, tmp_path / "m", **kw), calibration=calib, bits=8)
    assert got.family.name == "gemma" and got.config.model_type == model_type
    assert np.array_equal(got.reference(ids).logits, want)


@pytest.mark.parametrize("model_type, field, value, match", [
    ("gemma2", "hidden_activation", "gelu", "hidden_activation='gelu' is not supported"),
    ("gemma", "hidden_act", "silu", "hidden_act='silu' is not supported"),
    ("gemma2", "rope_parameters", {"rope_type": "longrope", "rope_theta": 1e4}, "of type 'longrope' is not built"),
    ("gemma3_text", "rope_parameters", {"full_attention": {"rope_type": "su"}}, "rope_parameters.full_attention of type 'su'"),
    ("gemma3_text", "use_bidirectional_attention", True, "use_bidirectional_attention=true is not supported"),
    ("gemma3_text", "layer_types", ["global"] * 3, r"layer_types=\['global', 'global', 'global'\]"),
    ("gemma2", "final_logit_softcapping", -3.0, "final_logit_softcapping=-3.0; must be a finite number > 0"),
    ("gemma3_text", "model_type", "gemma3", "model_type='gemma3' is Gemma 3 with its vision tower"),
    ("gemma2", "model_type", "recurrent_gemma", "model_type='recurrent_gemma'"),
])
def test_what_gemma_cannot_build_is_one_line_naming_the_field(tmp_path, model_type, field, value, match):
    folder = save_folder(random_model(base_case(model_type)), tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    cfg[field] = value
    if field == "model_type":
        cfg.pop("architectures")
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=match) as e:
        convert(folder, calibration=token_ids(1, 30, 40))
    assert "\n" not in str(e.value) and str(folder / "config.json") in str(e.value)


def test_the_hubs_older_gemma3_config_reads_as_transformers_reads_it():
    """Gemma 3 configs on the Hub name rope_theta, rope_local_base_freq, rope_scaling and
    sliding_window_pattern; transformers turns them into per-layer-type rope_parameters."""
    import transformers

    from spikelm.lm import families

    old = dict(model_type="gemma3_text", architectures=["Gemma3ForCausalLM"], vocab_size=40, hidden_size=16,
               intermediate_size=24, num_hidden_layers=6, num_attention_heads=2, num_key_value_heads=1, head_dim=8,
               max_position_embeddings=64, rope_theta=1e6, rope_local_base_freq=1e4, sliding_window=8,
               sliding_window_pattern=6, rope_scaling={"rope_type": "linear", "factor": 8.0}, bos_token_id=2)
    cfg = families.get("gemma").config(old, "config.json", 32)
    hf = transformers.Gemma3TextConfig(**{k: v for k, v in old.items() if k not in ("model_type", "architectures")})
    assert [cfg.window(i) for i in range(6)] == [8 if t == "sliding_attention" else 0 for t in hf.layer_types]
    assert cfg.rotary_of(5).to_hf() == {**hf.rope_parameters["full_attention"]}
    assert cfg.rotary_of(0).to_hf() == {**hf.rope_parameters["sliding_attention"]}
    again = families.get("gemma").config(cfg.to_dict(), "again", 32)
    assert again == cfg
