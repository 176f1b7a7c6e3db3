"""Bad input: one clear error naming the thing (issue 4, "Bad input")."""

from __future__ import annotations

import json
import numpy as np
import pytest
import torch

from test_lm_helpers import random_tiny_gpt, token_ids
from spikelm.errors import ConfigError, FileFormatError, SpikelmError
from spikelm.lm import GPTConfig, convert


@pytest.fixture(scope="module")
def model():
    return random_tiny_gpt(0, vocab=20, ctx=8, width=8, layers=1, heads=2)


@pytest.fixture(scope="module")
def snn(model):
    return convert(model, calibration=token_ids(0, 16, 20), bits=4)


def save_folder(model, path, weights="safetensors"):
    from safetensors.torch import save_file

    path.mkdir(exist_ok=True)
    (path / "config.json").write_text(json.dumps(model.config.to_dict()))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if weights == "safetensors":
        save_file(state, str(path / "model.safetensors"))
    else:
        torch.save(state, str(path / "pytorch_model.bin"))
    return path


def test_unknown_module_architecture():
    with pytest.raises(ConfigError, match="Linear is an unknown architecture"):
        convert(torch.nn.Linear(3, 3), calibration=np.arange(10))


def test_unknown_folder_architecture(model, tmp_path):
    folder = save_folder(model, tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model_type"] = "falcon"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="model_type='falcon' is an unknown architecture"):
        convert(folder, calibration=np.arange(10))
    cfg["model_type"] = "llama"  # a GPT-2 folder that calls itself a Llama
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=r"model_type='llama' but architectures=\['GPT2LMHeadModel'\]: they disagree"):
        convert(folder, calibration=np.arange(10))
    cfg["model_type"], cfg["architectures"] = "gpt2", ["BertModel"]
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="BertModel"):
        convert(folder, calibration=np.arange(10))


def test_missing_and_extra_keys_are_named(model):
    state = dict(model.state_dict())
    del state["transformer.h.0.ln_1.bias"]
    with pytest.raises(ConfigError, match=r"missing keys transformer\.h\.0\.ln_1\.bias"):
        convert(state, calibration=np.arange(10), config=model.config)
    state = dict(model.state_dict())
    state["transformer.h.0.attn.rotary.weight"] = torch.zeros(3)
    with pytest.raises(ConfigError, match=r"unexpected keys transformer\.h\.0\.attn\.rotary\.weight"):
        convert(state, calibration=np.arange(10), config=model.config)


def test_shape_mismatch_is_named(model):
    state = dict(model.state_dict())
    state["transformer.h.0.mlp.c_fc.weight"] = torch.zeros(8, 31)
    with pytest.raises(ConfigError, match=r"mlp\.c_fc\.weight has shape \(8, 31\); the config needs \(8, 32\)"):
        convert(state, calibration=np.arange(10), config=model.config)


def test_state_dict_without_config(model):
    with pytest.raises(ConfigError, match="needs config="):
        convert(dict(model.state_dict()), calibration=np.arange(10))


class NeedsCode:
    def __reduce__(self):
        return (print, ("this pickle runs code",))


def test_pickle_that_needs_code_is_refused(model, tmp_path):
    folder = save_folder(model, tmp_path / "m", weights="bin")
    state = dict(model.state_dict())
    state["evil"] = NeedsCode()
    torch.save(state, str(folder / "pytorch_model.bin"))
    with pytest.raises(FileFormatError, match="needs code to load"):
        convert(folder, calibration=np.arange(10))


def test_folder_with_pytorch_bin_loads(model, tmp_path):
    folder = save_folder(model, tmp_path / "m", weights="bin")
    snn = convert(folder, calibration=token_ids(0, 16, 20), bits=4)
    ref = convert(model, calibration=token_ids(0, 16, 20), bits=4)
    ids = token_ids(1, 5, 20)
    assert np.array_equal(snn.reference(ids).logits, ref.reference(ids).logits)


def test_missing_weights_and_config(model, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileFormatError, match="config.json"):
        convert(tmp_path / "empty", calibration=np.arange(10))
    folder = save_folder(model, tmp_path / "m")
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileFormatError, match="no model.safetensors, model.safetensors.index.json or pytorch_model.bin"):
        convert(folder, calibration=np.arange(10))


@pytest.mark.parametrize("bits, named", [
    (1, "bits=1"), (17, "bits=17"), (0, "bits=0"), (2.5, "bits=2.5"), (True, "bits=True"), ("lin=20", "lin=20"),
    ("foo=8", "'foo=8' is not understood"), ("lin=8,lin=9", "'lin=9' is not understood"), ("", "'' is not"),
    ({"res": 1}, "res=1"), ({"xyz": 8}, "unknown group 'xyz'"), ([8], r"bits=\[8\]")])
def test_bits_outside_what_a_point_allows(model, bits, named):
    with pytest.raises(ConfigError, match=named) as e:
        convert(model, calibration=token_ids(0, 16, 20), bits=bits)
    assert "2" in str(e.value) and "16" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("coding", ["ternary", "", None, 3, "UNIT"])
def test_unknown_coding_names_the_allowed_ones(model, coding):
    with pytest.raises(ConfigError, match="coding=.*allowed: unit, bitplane, signed_digit"):
        convert(model, calibration=token_ids(0, 16, 20), coding=coding)


def test_calibration_too_short_empty_or_out_of_vocabulary(model):
    with pytest.raises(ConfigError, match="calibration: 5 tokens are too few"):
        convert(model, calibration=np.arange(5))
    with pytest.raises(ConfigError, match="calibration: token ids are empty"):
        convert(model, calibration=np.array([], dtype=np.int64))
    with pytest.raises(ConfigError, match=r"calibration: token id 20 is outside the vocabulary \[0, 20\)"):
        convert(model, calibration=np.arange(21))


def test_bad_token_ids(snn):
    for call in (snn.reference, snn.simulate):
        with pytest.raises(ConfigError, match="token_ids: token ids are empty"):
            call(np.array([], dtype=np.int64))
        with pytest.raises(ConfigError, match="token id -1 is outside"):
            call(np.array([1, -1]))
        with pytest.raises(ConfigError, match="token id 99 is outside"):
            call(np.array([99]))
        with pytest.raises(ConfigError, match="must be integers"):
            call(np.array([1.0, 2.0]))
        with pytest.raises(ConfigError, match="9 tokens exceed the model's context of 8"):
            call(np.zeros(9, dtype=np.int64))


def test_prompt_longer_than_context(snn):
    with pytest.raises(ConfigError, match="prompt: 9 tokens exceed the model's context of 8"):
        snn.generate(np.zeros(9, dtype=np.int64), 1)
    with pytest.raises(ConfigError, match="prompt: 6 tokens \\+ 4 new tokens exceed the model's context of 8"):
        snn.generate(np.zeros(6, dtype=np.int64), 4)
    with pytest.raises(ConfigError, match="prompt: token ids are empty"):
        snn.generate(np.array([], dtype=np.int64), 2)


def test_bad_backend_and_max_steps(snn):
    with pytest.raises(ConfigError, match="backend='cuda'; allowed: numpy, numba"):
        snn.simulate(np.array([1, 2]), backend="cuda")
    with pytest.raises(ConfigError, match="max_steps=0"):
        snn.simulate(np.array([1, 2]), max_steps=0)
    with pytest.raises(SpikelmError, match="no quiescence within max_steps=1"):
        snn.simulate(np.array([1, 2]), max_steps=1)


def test_bad_config_values():
    with pytest.raises(ConfigError, match="n_head=3 does not divide n_embd=8"):
        GPTConfig(vocab_size=10, n_positions=4, n_embd=8, n_layer=1, n_head=3)
    with pytest.raises(ConfigError, match="activation_function='relu'"):
        GPTConfig(vocab_size=10, n_positions=4, n_embd=8, n_layer=1, n_head=2, activation_function="relu")
    with pytest.raises(ConfigError, match="field 'n_head' is missing"):
        GPTConfig.from_dict({"vocab_size": 10, "n_positions": 4, "n_embd": 8, "n_layer": 1})


def test_hugging_face_save_pretrained_folder(tmp_path):
    from test_lm_helpers import random_hf_gpt2

    model = random_hf_gpt2(3, vocab=30, ctx=10, width=16, layers=2, heads=4)
    model.save_pretrained(tmp_path / "hf")
    calib = token_ids(0, 20, 30)
    a = convert(tmp_path / "hf", calibration=calib, bits=6)
    b = convert(model, calibration=calib, bits=6)
    c = convert(dict(model.state_dict()), calibration=calib, bits=6, config=model.config.to_dict())
    ids = token_ids(1, 10, 30)
    ref = b.reference(ids).logits
    assert np.array_equal(a.reference(ids).logits, ref)
    assert np.array_equal(c.reference(ids).logits, ref)
    assert np.array_equal(a.simulate(ids).logits, ref)
    # the float model read from the folder is the transformers model
    with torch.no_grad():
        hf = model(torch.tensor(ids)[None]).logits[0].double().numpy()
    assert np.allclose(a.float_logits(ids), hf, atol=1e-4)
