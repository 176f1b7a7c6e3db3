"""Phi-3 (issue 21): random configs (grouped-query attention, partial rotary fractions, tied or
untied heads, SiLU or GELU gates) converted from transformers modules and run spike by spike,
exactly their reference on numpy and numba in every coding, the reference at 12 bits within
3 % of the transformers forward (so the fused ``qkv_proj`` and ``gate_up_proj`` are split as
transformers splits them); folders in every layout, state dicts, the command line, and what is
refused (``longrope`` scaling, sliding windows shorter than the context)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_lm_family_helpers import (SETTINGS, TOLERANCE, assert_backends_agree, assert_exact_and_counted, cli_folder,
                                    closed_form_macs, edit_config, random_model, relative_error, run_cli, save,
                                    transformers_logits)
from test_lm_helpers import scaled, token_ids
from spikelm.errors import ConfigError
from spikelm.lm import convert
from spikelm.lm.codings import CODINGS
from spikelm.lm.load import open_model
from spikelm.lm.precision import GROUPS


def phi3(case):
    return random_model("phi3", case["seed"], case["std"], vocab_size=case["vocab"],
                        hidden_size=case["heads"] * case["head_dim"], num_hidden_layers=case["layers"],
                        num_attention_heads=case["heads"], num_key_value_heads=case["kv_heads"],
                        intermediate_size=case["inner"], max_position_embeddings=case["ctx"],
                        partial_rotary_factor=case["pct"], tie_word_embeddings=case["tied"], hidden_act=case["act"],
                        pad_token_id=0, bos_token_id=1, eos_token_id=2)


@st.composite
def phi3_cases(draw):
    head_dim = draw(st.sampled_from([4, 8, 12]))
    pct = draw(st.sampled_from([p for p in (0.25, 0.5, 0.75, 1.0) if int(head_dim * p) % 2 == 0]))
    kv_heads = draw(st.integers(1, 2))
    coding = draw(st.sampled_from(CODINGS))
    top = 8 if coding == "unit" else 12
    ctx = draw(st.integers(3, 12))
    return dict(seed=draw(st.integers(0, 2**16)), layers=draw(st.integers(1, 2)), kv_heads=kv_heads,
                heads=kv_heads * draw(st.integers(1, 2)), head_dim=head_dim, pct=pct, tied=draw(st.booleans()),
                act=draw(st.sampled_from(["silu", "gelu"])), inner=draw(st.sampled_from([8, 24])),
                std=draw(st.sampled_from([0.1, 0.3, 1.0])), ctx=ctx, length=draw(st.integers(1, ctx - 1)),
                vocab=draw(st.integers(10, 100)),
                bits=draw(st.one_of(st.integers(2, 8), st.fixed_dictionaries({g: st.integers(3, top) for g in GROUPS}))),
                coding=coding, weight_bits=draw(st.sampled_from([8, 10, 12])), sink=draw(st.booleans()))


def macs(snn, case, L):
    return closed_form_macs(snn, L, case["heads"] * case["head_dim"], case["heads"], case["kv_heads"],
                            case["head_dim"], case["inner"], True, case["vocab"])


@settings(max_examples=scaled(30), **SETTINGS)
@given(case=phi3_cases())
def test_random_phi3_runs_exact_and_its_reference_follows_transformers(case):
    model = phi3(case)
    calib, ids = token_ids(case["seed"] + 1, 40, case["vocab"]), token_ids(case["seed"] + 2, case["length"], case["vocab"])
    snn = convert(model, calibration=calib, bits=case["bits"], coding=case["coding"],
                  weight_bits=case["weight_bits"], sink=case["sink"])
    assert snn.family.name == "phi3" and snn.graph.n_prefix == int(case["sink"])
    assert_exact_and_counted(snn, ids, macs(snn, case, len(ids)))
    at12 = convert(model, calibration=calib, bits=12, sink=case["sink"])
    assert relative_error(at12.reference(ids).logits, transformers_logits(model, at12, ids)) <= TOLERANCE


@settings(max_examples=scaled(8), **SETTINGS)
@given(case=phi3_cases())
def test_random_phi3_numpy_and_numba_agree_bit_for_bit(case):
    bits = 4 if case["coding"] == "unit" else case["bits"]  # the NumPy runner is the slow oracle
    snn = convert(phi3(case), calibration=token_ids(case["seed"] + 1, 40, case["vocab"]), bits=bits,
                  coding=case["coding"], sink=case["sink"])
    assert_backends_agree(snn, token_ids(case["seed"] + 2, min(case["length"], 5), case["vocab"]))


@pytest.mark.parametrize("kv_heads, pct, tied", [(2, 0.5, False), (4, 1.0, True), (1, 0.75, False)])
def test_float_forward_equals_transformers(kv_heads, pct, tied):
    case = dict(seed=3, std=0.2, vocab=40, heads=4, kv_heads=kv_heads, head_dim=8, layers=2, inner=24, ctx=12,
                pct=pct, tied=tied, act="silu")
    model = phi3(case)
    snn = convert(model, calibration=token_ids(1, 40, 40))
    ids = token_ids(2, 9, 40)
    assert relative_error(snn.float_logits(ids), transformers_logits(model, snn, ids)) <= 1e-6
    assert snn.graph.pop("h0.qr").params.rotary_dim == int(8 * pct)
    assert snn.graph.pop("h0.k").size == kv_heads * 8 and snn.graph.pop("h0.up").size == 24


# ---------------------------------------------------------------- loading

CASE = dict(seed=5, std=0.3, vocab=40, heads=4, kv_heads=2, head_dim=8, layers=2, inner=24, ctx=12, pct=0.5,
            tied=False, act="silu")


@pytest.mark.parametrize("layout", ["safetensors", "sharded", "bin"])
def test_folders_state_dicts_and_modules_convert_alike(tmp_path, layout):
    model = phi3(CASE)
    calib, ids = token_ids(1, 40, 40), token_ids(2, 8, 40)
    want = convert(model, calibration=calib).reference(ids).logits
    folder = save(model, tmp_path / "m", layout)
    loaded = open_model(folder)
    for k, v in model.state_dict().items():
        assert np.array_equal(loaded.params[k], v.double().numpy()), k
    assert np.array_equal(convert(folder, calibration=calib).reference(ids).logits, want)
    state = dict(model.state_dict())
    for config in (model.config, model.config.to_dict()):  # a transformers config, a config dict
        assert np.array_equal(convert(state, calibration=calib, config=config).reference(ids).logits, want)


def write_gguf(model, path):
    """``model`` as a float32 GGUF file under llama.cpp's Phi-3 names (fused attn_qkv and
    ffn_up), with a sentencepiece vocabulary of placeholder tokens."""
    gguf = pytest.importorskip("gguf", reason="writing a GGUF file needs the gguf package (the lm extra)")
    c = model.config
    w = gguf.GGUFWriter(str(path), "phi3")
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(c.hidden_size // c.num_attention_heads)
    w.add_tokenizer_model("llama")
    w.add_token_list(["<unk>", "<s>", "</s>"] + [f"t{i}" for i in range(c.vocab_size - 3)])
    w.add_token_scores([0.0] * c.vocab_size)
    w.add_token_types([2, 3, 3] + [1] * (c.vocab_size - 3))
    for add, token in ((w.add_unk_token_id, 0), (w.add_bos_token_id, 1), (w.add_eos_token_id, 2), (w.add_pad_token_id, 0)):
        add(token)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    for i in range(c.num_hidden_layers):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        names.update({p + "input_layernorm.weight": b + "attn_norm.weight",
                      p + "post_attention_layernorm.weight": b + "ffn_norm.weight",
                      p + "self_attn.qkv_proj.weight": b + "attn_qkv.weight",
                      p + "self_attn.o_proj.weight": b + "attn_output.weight",
                      p + "mlp.gate_up_proj.weight": b + "ffn_up.weight", p + "mlp.down_proj.weight": b + "ffn_down.weight"})
    state = model.state_dict()
    for theirs, ggufs in names.items():
        w.add_tensor(ggufs, state[theirs].float().numpy())
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_a_gguf_file_converts_as_its_module(tmp_path):
    """transformers reads Phi-3 GGUF files (not GPT-NeoX's or OPT's): the same model from a
    GGUF file, through transformers, as from its module. Not bit for bit: GGUF stores
    rms_norm_eps as a float32."""
    pytest.importorskip("accelerate", reason="transformers reads GGUF files with accelerate (the lm extra)")
    model = phi3({**CASE, "pct": 1.0})  # transformers reads no partial rotary from a GGUF (rope.dimension_count)
    calib, ids = token_ids(1, 40, 40), token_ids(2, 8, 40)
    want = convert(model, calibration=calib).reference(ids).logits
    path = write_gguf(model, tmp_path / "phi3.gguf")
    loaded = open_model(path)
    assert loaded.family.name == "phi3" and loaded.tokenizer is not None
    got = convert(path, calibration=calib)
    assert got.family.name == "phi3" and relative_error(got.reference(ids).logits, want) <= 1e-9


def test_the_command_line_generates_and_checks_exact(tmp_path, capsys):
    folder = cli_folder(phi3({**CASE, "vocab": 96, "ctx": 24}), tmp_path / "phi3")
    code, out, _ = run_cli(["lm", "generate", "--model", str(folder), "--prompt", "Return the", "--tokens", "3"], capsys)
    assert code == 0 and "generated: 'Return the|" in out
    code, out, _ = run_cli(["lm", "check", "--model", str(folder), "--prompts", "2", "--length", "8"], capsys)
    assert code == 0 and "exact agreement: yes on 2 prompts of 8 tokens; largest code difference 0" in out


# ---------------------------------------------------------------- refusals

LONGROPE = {"rope_type": "longrope", "rope_theta": 1e4, "short_factor": [1.0] * 4, "long_factor": [2.0] * 4,
            "original_max_position_embeddings": 8}


@pytest.mark.parametrize("field, value, match", [
    ("rope_parameters", LONGROPE, "rope_parameters of type 'longrope' is not built; supported: plain RoPE"),
    ("rope_scaling", {"type": "su", "short_factor": [1.0], "long_factor": [1.0]},
     "rope_scaling of type 'su' is not built"),
    ("sliding_window", 4, "sliding_window=4 is smaller than the context 12: sliding-window attention is not built"),
    ("num_key_value_heads", 3, "num_key_value_heads=3 does not divide num_attention_heads=4"),
    ("hidden_act", "gelu_10", "hidden_act='gelu_10' is not supported; allowed: gelu, "),
    ("intermediate_size", None, "field 'intermediate_size' is missing"),
    ("architectures", ["Phi3ForTokenClassification"], r"architectures=\['Phi3ForTokenClassification'\]: they disagree"),
])
def test_what_is_not_built_is_refused_in_one_line_naming_the_field(tmp_path, field, value, match):
    folder = save(phi3(CASE), tmp_path / "m")
    edit_config(folder, **{field: value})
    with pytest.raises(ConfigError, match=match) as e:
        convert(folder, calibration=token_ids(1, 40, 40))
    assert "\n" not in str(e.value) and str(folder / "config.json") in str(e.value)


def test_the_command_line_exits_2_on_a_refused_config(tmp_path, capsys):
    folder = cli_folder(phi3({**CASE, "vocab": 96}), tmp_path / "m")
    edit_config(folder, rope_parameters=LONGROPE)
    code, _, err = run_cli(["lm", "check", "--model", str(folder)], capsys)
    assert code == 2 and err.count("\n") == 1 and "rope_parameters of type 'longrope' is not built" in err
