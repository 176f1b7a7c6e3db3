"""GPT-NeoX / Pythia (issue 21): random configs (partial rotary fractions, parallel residual on
and off, biases, tied or untied heads, GELU or ReLU) converted from transformers modules and
run spike by spike, exactly their reference on numpy and numba in every coding, the reference
at 12 bits within 3 % of the transformers forward; folders in every layout (Pythia's own
names included), state dicts, the command line, and what is refused."""

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
from spikelm.lm.load import open_model
from spikelm.lm.precision import GROUPS


def neox(case):
    return random_model("gpt_neox", case["seed"], case["std"], vocab_size=case["vocab"],
                        hidden_size=case["heads"] * case["head_dim"], num_hidden_layers=case["layers"],
                        num_attention_heads=case["heads"], intermediate_size=case["inner"],
                        max_position_embeddings=case["ctx"], rotary_pct=case["pct"],
                        use_parallel_residual=case["parallel"], attention_bias=case["bias"],
                        tie_word_embeddings=case["tied"], hidden_act=case["act"], bos_token_id=1, eos_token_id=2)


@st.composite
def neox_cases(draw):
    head_dim = draw(st.sampled_from([4, 8, 12, 16]))
    pct = draw(st.sampled_from([p for p in (0.0, 0.25, 0.5, 0.75, 1.0) if int(head_dim * p) % 2 == 0]))
    coding = draw(st.sampled_from(CODINGS))
    top = 8 if coding == "unit" else 12
    ctx = draw(st.integers(3, 12))
    return dict(seed=draw(st.integers(0, 2**16)), layers=draw(st.integers(1, 2)), heads=draw(st.integers(1, 4)),
                head_dim=head_dim, pct=pct, parallel=draw(st.booleans()), bias=draw(st.booleans()),
                tied=draw(st.booleans()), act=draw(st.sampled_from(["gelu", "gelu_new", "relu"])),
                inner=draw(st.sampled_from([8, 24, 40])), std=draw(st.sampled_from([0.1, 0.3, 1.0])), ctx=ctx,
                length=draw(st.integers(1, ctx - 1)), vocab=draw(st.integers(10, 100)),
                bits=draw(st.one_of(st.integers(2, 8), st.fixed_dictionaries({g: st.integers(3, top) for g in GROUPS}))),
                coding=coding, weight_bits=draw(st.sampled_from([8, 10, 12])), sink=draw(st.booleans()))


def macs(snn, case, L):
    d = case["heads"] * case["head_dim"]
    return closed_form_macs(snn, L, d, case["heads"], case["heads"], case["head_dim"], case["inner"], False,
                            case["vocab"])


@settings(max_examples=scaled(30), **SETTINGS)
@given(case=neox_cases())
def test_random_neox_runs_exact_and_its_reference_follows_transformers(case):
    model = neox(case)
    calib, ids = token_ids(case["seed"] + 1, 40, case["vocab"]), token_ids(case["seed"] + 2, case["length"], case["vocab"])
    snn = convert(model, calibration=calib, bits=case["bits"], coding=case["coding"],
                  weight_bits=case["weight_bits"], sink=case["sink"])
    assert snn.family.name == "gpt_neox" and snn.graph.n_prefix == int(case["sink"])
    assert_exact_and_counted(snn, ids, macs(snn, case, len(ids)))
    at12 = convert(model, calibration=calib, bits=12, sink=case["sink"])
    assert relative_error(at12.reference(ids).logits, transformers_logits(model, at12, ids)) <= TOLERANCE


@settings(max_examples=scaled(8), **SETTINGS)
@given(case=neox_cases())
def test_random_neox_numpy_and_numba_agree_bit_for_bit(case):
    bits = 4 if case["coding"] == "unit" else case["bits"]  # the NumPy runner is the slow oracle
    snn = convert(neox(case), calibration=token_ids(case["seed"] + 1, 40, case["vocab"]), bits=bits,
                  coding=case["coding"], sink=case["sink"])
    assert_backends_agree(snn, token_ids(case["seed"] + 2, min(case["length"], 5), case["vocab"]))


@pytest.mark.parametrize("pct, parallel, bias, tied", [(0.25, True, True, False), (1.0, False, False, True),
                                                       (0.0, True, True, True)])
def test_float_forward_equals_transformers(pct, parallel, bias, tied):
    case = dict(seed=3, std=0.2, vocab=40, heads=4, head_dim=8, layers=2, inner=24, ctx=12, pct=pct,
                parallel=parallel, bias=bias, tied=tied, act="gelu")
    model = neox(case)
    snn = convert(model, calibration=token_ids(1, 40, 40))
    ids = token_ids(2, 9, 40)
    want = transformers_logits(model, snn, ids)
    assert relative_error(snn.float_logits(ids), want) <= 1e-6
    rotary = snn.graph.pop("h0.qr").params.rotary_dim if pct else None
    assert rotary == (int(8 * pct) if pct else None)  # the graph rotates what the model rotates
    assert ("h0.res" in snn.graph.index) == parallel and ("h0.res1" in snn.graph.index) == (not parallel)


# ---------------------------------------------------------------- loading

CASE = dict(seed=5, std=0.3, vocab=40, heads=2, head_dim=8, layers=2, inner=24, ctx=12, pct=0.25, parallel=True,
            bias=True, tied=False, act="gelu")


@pytest.mark.parametrize("layout", ["safetensors", "sharded", "bin"])
def test_folders_state_dicts_and_modules_convert_alike(tmp_path, layout):
    model = neox(CASE)
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


def test_a_pythia_folder_with_its_own_names_converts(tmp_path):
    """Pythia's checkpoints: the head is ``embed_out``, the config says ``rotary_pct`` and
    ``rotary_emb_base``, and the blocks carry their causal mask and rotary table as buffers."""
    model = neox(CASE)
    calib, ids = token_ids(1, 40, 40), token_ids(2, 8, 40)
    want = convert(model, calibration=calib).reference(ids).logits
    folder = save(model, tmp_path / "pythia", "bin")
    state = {("embed_out.weight" if k == "lm_head.weight" else k): v for k, v in model.state_dict().items()}
    for i in range(CASE["layers"]):
        p = f"gpt_neox.layers.{i}.attention."
        state[p + "bias"] = torch.ones(1, 1, 12, 12, dtype=torch.bool).tril()
        state[p + "masked_bias"] = torch.tensor(-1e9)
        state[p + "rotary_emb.inv_freq"] = torch.ones(1)
    torch.save(state, folder / "pytorch_model.bin")
    edit_config(folder, rope_parameters=None, rotary_pct=0.25, rotary_emb_base=10000)
    assert np.array_equal(convert(folder, calibration=calib).reference(ids).logits, want)


def test_the_command_line_generates_and_checks_exact(tmp_path, capsys):
    folder = cli_folder(neox({**CASE, "vocab": 96, "ctx": 24}), tmp_path / "pythia")
    code, out, _ = run_cli(["lm", "generate", "--model", str(folder), "--prompt", "Return the", "--tokens", "3"], capsys)
    assert code == 0 and "generated: 'Return the|" in out
    code, out, _ = run_cli(["lm", "check", "--model", str(folder), "--prompts", "2", "--length", "8"], capsys)
    assert code == 0 and "exact agreement: yes on 2 prompts of 8 tokens; largest code difference 0" in out


# ---------------------------------------------------------------- refusals

@pytest.mark.parametrize("field, value, match", [
    ("rope_parameters", {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1e4},
     "rope_parameters of type 'dynamic' is not built; supported: plain RoPE"),
    ("rope_parameters", {"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.1875},
     "partial_rotary_factor=0.1875 of head_dim 8 rotates 1 channels; RoPE needs an even number"),
    ("hidden_act", "gelu_10", "hidden_act='gelu_10' is not supported; allowed: gelu, "),
    ("use_parallel_residual", "yes", "use_parallel_residual='yes'; must be true or false"),
    ("num_attention_heads", 3, "num_attention_heads=3 does not divide hidden_size=16"),
    ("architectures", ["GPTNeoXForTokenClassification"],
     r"architectures=\['GPTNeoXForTokenClassification'\]: they disagree"),
    ("intermediate_size", None, "field 'intermediate_size' is missing"),
])
def test_what_is_not_built_is_refused_in_one_line_naming_the_field(tmp_path, field, value, match):
    folder = save(neox(CASE), tmp_path / "m")
    edit_config(folder, **{field: value})
    with pytest.raises(ConfigError, match=match) as e:
        convert(folder, calibration=token_ids(1, 40, 40))
    assert "\n" not in str(e.value) and str(folder / "config.json") in str(e.value)


def test_the_command_line_exits_2_on_a_refused_config(tmp_path, capsys):
    folder = cli_folder(neox({**CASE, "vocab": 96}), tmp_path / "m")
    with pytest.raises(ConfigError, match="context 13 exceeds the model's max_position_embeddings=12"):
        open_model(folder, context=13)
    edit_config(folder, rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4})
    code, _, err = run_cli(["lm", "check", "--model", str(folder)], capsys)
    assert code == 2 and err.count("\n") == 1 and "rope_parameters of type 'linear' is not built" in err
