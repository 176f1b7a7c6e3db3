"""OPT (issue 21): random configs (project_in/out where word_embed_proj_dim differs, pre- and
post-norm blocks, biases and affine LayerNorms on or off, tied or untied heads, ReLU or GELU)
converted from transformers modules and run spike by spike, exactly their reference on numpy
and numba in every coding, the reference at 12 bits within 3 % of the transformers forward;
learned positions read from row 2 of their table; folders in every layout (the original
checkpoints' ``decoder.`` names too), state dicts, the command line, and what is refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from test_lm_family_helpers import (SETTINGS, TOLERANCE, assert_backends_agree, assert_exact_and_counted, cli_folder,
                                    closed_form_macs, edit_config, random_model, relative_error, run_cli, save,
                                    transformers_logits)
from test_lm_helpers import scaled, token_ids
from spikelm.errors import ConfigError
from spikelm.lm import convert
from spikelm.lm.codings import CODINGS
from spikelm.lm.precision import GROUPS


def opt(case):
    d = case["heads"] * case["head_dim"]
    return random_model("opt", case["seed"], case["std"], vocab_size=case["vocab"], hidden_size=d,
                        num_hidden_layers=case["layers"], num_attention_heads=case["heads"], ffn_dim=case["inner"],
                        max_position_embeddings=case["ctx"], word_embed_proj_dim=case["proj"] or d,
                        do_layer_norm_before=case["pre"], enable_bias=case["bias"],
                        layer_norm_elementwise_affine=case["affine"], tie_word_embeddings=case["tied"],
                        activation_function=case["act"], _remove_final_layer_norm=case.get("remove", False),
                        pad_token_id=1, bos_token_id=2, eos_token_id=2)


@st.composite
def opt_cases(draw):
    coding = draw(st.sampled_from(CODINGS))
    top = 8 if coding == "unit" else 12
    ctx = draw(st.integers(3, 12))
    return dict(seed=draw(st.integers(0, 2**16)), layers=draw(st.integers(1, 2)), heads=draw(st.integers(1, 4)),
                head_dim=draw(st.sampled_from([4, 8])), proj=draw(st.sampled_from([None, 4, 12])),
                pre=draw(st.booleans()), bias=draw(st.booleans()), affine=draw(st.booleans()),
                tied=draw(st.booleans()), act=draw(st.sampled_from(["relu", "gelu"])),
                inner=draw(st.sampled_from([8, 24, 40])), std=draw(st.sampled_from([0.1, 0.3, 1.0])), ctx=ctx,
                length=draw(st.integers(1, ctx - 1)), vocab=draw(st.integers(10, 100)),
                bits=draw(st.one_of(st.integers(2, 8), st.fixed_dictionaries({g: st.integers(3, top) for g in GROUPS}))),
                coding=coding, weight_bits=draw(st.sampled_from([8, 10, 12])), sink=draw(st.booleans()))


def macs(snn, case, L):
    d = case["heads"] * case["head_dim"]
    proj = case["proj"] if case["proj"] not in (None, d) else None
    return closed_form_macs(snn, L, d, case["heads"], case["heads"], case["head_dim"], case["inner"], False,
                            case["vocab"], final_norm=case["pre"], proj_out=proj)


@settings(max_examples=scaled(30), **SETTINGS)
@given(case=opt_cases())
def test_random_opt_runs_exact_and_its_reference_follows_transformers(case):
    model = opt(case)
    calib, ids = token_ids(case["seed"] + 1, 40, case["vocab"]), token_ids(case["seed"] + 2, case["length"], case["vocab"])
    snn = convert(model, calibration=calib, bits=case["bits"], coding=case["coding"],
                  weight_bits=case["weight_bits"], sink=case["sink"])
    assert snn.family.name == "opt" and snn.graph.n_prefix == int(case["sink"])
    assert_exact_and_counted(snn, ids, macs(snn, case, len(ids)))
    at12 = convert(model, calibration=calib, bits=12, sink=case["sink"])
    assert relative_error(at12.reference(ids).logits, transformers_logits(model, at12, ids)) <= TOLERANCE


@settings(max_examples=scaled(8), **SETTINGS)
@given(case=opt_cases())
def test_random_opt_numpy_and_numba_agree_bit_for_bit(case):
    bits = 4 if case["coding"] == "unit" else case["bits"]  # the NumPy runner is the slow oracle
    snn = convert(opt(case), calibration=token_ids(case["seed"] + 1, 40, case["vocab"]), bits=bits,
                  coding=case["coding"], sink=case["sink"])
    assert_backends_agree(snn, token_ids(case["seed"] + 2, min(case["length"], 5), case["vocab"]))


@pytest.mark.parametrize("proj, pre, bias, affine, tied, remove", [
    (8, True, True, True, True, False), (None, False, True, True, False, False), (24, True, False, False, False, False),
    (None, True, True, True, True, True)])
def test_float_forward_equals_transformers(proj, pre, bias, affine, tied, remove):
    case = dict(seed=3, std=0.2, vocab=40, heads=2, head_dim=8, layers=2, inner=24, ctx=12, proj=proj, pre=pre,
                bias=bias, affine=affine, tied=tied, act="relu", remove=remove)
    model = opt(case)
    snn = convert(model, calibration=token_ids(1, 40, 40))
    ids = token_ids(2, 9, 40)
    assert relative_error(snn.float_logits(ids), transformers_logits(model, snn, ids)) <= 1e-6
    assert ("proj_out" in snn.graph.index) == (proj is not None)
    assert ("normf" in snn.graph.index) == (pre and not remove)
    assert "h0.qr" not in snn.graph.index  # learned positions, no RoPE


def test_positions_are_read_from_row_2_of_the_table():
    """Moving the table's first two rows changes nothing; changing row 2 + p changes the logits
    from position p on (and none before)."""
    case = dict(seed=4, std=0.3, vocab=40, heads=2, head_dim=8, layers=1, inner=24, ctx=12, proj=None, pre=True,
                bias=True, affine=True, tied=True, act="relu")
    model = opt(case)
    ids = token_ids(2, 8, 40)
    snn = convert(model, calibration=token_ids(1, 40, 40), sink=False)
    base = snn.float_logits(ids)
    table = model.model.decoder.embed_positions.weight
    with torch.no_grad():
        table[:2] += 5.0
        assert np.array_equal(convert(model, calibration=token_ids(1, 40, 40), sink=False).float_logits(ids), base)
        table[2 + 3] += torch.linspace(-1, 1, table.shape[1])  # not a constant: LayerNorm would remove one
    moved = convert(model, calibration=token_ids(1, 40, 40), sink=False).float_logits(ids)
    assert np.array_equal(moved[:3], base[:3]) and not np.allclose(moved[3], base[3])


# ---------------------------------------------------------------- loading

CASE = dict(seed=5, std=0.3, vocab=40, heads=2, head_dim=8, layers=2, inner=24, ctx=12, proj=8, pre=True, bias=True,
            affine=True, tied=True, act="relu")


@pytest.mark.parametrize("layout", ["safetensors", "sharded", "bin"])
def test_folders_state_dicts_and_modules_convert_alike(tmp_path, layout):
    model = opt(CASE)
    calib, ids = token_ids(1, 40, 40), token_ids(2, 8, 40)
    want = convert(model, calibration=calib).reference(ids).logits
    folder = save(model, tmp_path / "m", layout)
    assert np.array_equal(convert(folder, calibration=calib).reference(ids).logits, want)
    state = dict(model.state_dict())
    for config in (model.config, model.config.to_dict()):  # a transformers config, a config dict
        assert np.array_equal(convert(state, calibration=calib, config=config).reference(ids).logits, want)


def test_the_original_checkpoints_names_convert(tmp_path):
    """facebook/opt-* files hold an OPTModel's keys (``decoder.layers...``) and no head."""
    model = opt(CASE)
    calib, ids = token_ids(1, 40, 40), token_ids(2, 8, 40)
    want = convert(model, calibration=calib).reference(ids).logits
    folder = save(model, tmp_path / "opt", "bin")
    state = {k.removeprefix("model."): v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    assert all(k.startswith("decoder.") for k in state)
    torch.save(state, folder / "pytorch_model.bin")
    assert np.array_equal(convert(folder, calibration=calib).reference(ids).logits, want)


def test_the_command_line_generates_and_checks_exact(tmp_path, capsys):
    folder = cli_folder(opt({**CASE, "vocab": 96, "ctx": 24}), tmp_path / "opt")
    code, out, _ = run_cli(["lm", "generate", "--model", str(folder), "--prompt", "Return the", "--tokens", "3"], capsys)
    assert code == 0 and "generated: 'Return the|" in out
    code, out, _ = run_cli(["lm", "check", "--model", str(folder), "--prompts", "2", "--length", "8"], capsys)
    assert code == 0 and "exact agreement: yes on 2 prompts of 8 tokens; largest code difference 0" in out


# ---------------------------------------------------------------- refusals

@pytest.mark.parametrize("field, value, match", [
    ("activation_function", "gelu_10", "activation_function='gelu_10' is not supported; allowed: gelu, "),
    ("do_layer_norm_before", "yes", "do_layer_norm_before='yes'; must be true or false"),
    ("num_attention_heads", 3, "num_attention_heads=3 does not divide hidden_size=16"),
    ("word_embed_proj_dim", 0, "word_embed_proj_dim=0; must be a positive integer"),
    ("ffn_dim", None, "field 'ffn_dim' is missing"),
    ("architectures", ["OPTForSequenceClassification"], r"architectures=\['OPTForSequenceClassification'\]: they disagree"),
])
def test_what_is_not_built_is_refused_in_one_line_naming_the_field(tmp_path, field, value, match):
    folder = save(opt(CASE), tmp_path / "m")
    edit_config(folder, **{field: value})
    with pytest.raises(ConfigError, match=match) as e:
        convert(folder, calibration=token_ids(1, 40, 40))
    assert "\n" not in str(e.value) and str(folder / "config.json") in str(e.value)


def test_the_command_line_exits_2_on_a_refused_config(tmp_path, capsys):
    folder = cli_folder(opt({**CASE, "vocab": 96}), tmp_path / "m")
    edit_config(folder, activation_function="swish_or_not")
    code, _, err = run_cli(["lm", "check", "--model", str(folder)], capsys)
    assert code == 2 and err.count("\n") == 1 and "activation_function='swish_or_not' is not supported" in err
