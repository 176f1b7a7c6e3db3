"""Model families as plugins (issue 20): a toy family added as one folder (tests/lm_toy_family, a
GPT-2 with a ReLU MLP that registers itself in one line) converts from a torch module, a state
dict and a Hugging Face folder and runs exact on numpy and numba in every coding; how a model
is recognised, and the one-line refusals of what no family claims."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import lm_toy_family
from lm_toy_family.config import ReluGPTConfig
from test_lm_helpers import assert_lm_agree, assert_matches_reference, random_tiny_gpt, token_ids
from spikelm.errors import ConfigError
from spikelm.lm import GPTConfig, TinyGPT, convert, families
from spikelm.lm.codings import CODINGS

VOCAB = 30


def random_relu_gpt(seed, ctx=10, width=16, layers=2, heads=2):
    """A TinyGPT of the toy family with large random weights (codes use their whole range)."""
    torch.manual_seed(seed)
    model = TinyGPT(ReluGPTConfig(vocab_size=VOCAB, n_positions=ctx, n_embd=width, n_layer=layers, n_head=heads))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            norm = name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight"))
            p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g) if norm else 0.3 * torch.randn(p.shape, generator=g))
    return model.eval()


def test_the_toy_family_is_one_folder_registered_by_itself():
    fam = families.get("relu_gpt")
    assert type(fam).__module__ == lm_toy_family.__name__ and "relu_gpt" in families.names()
    assert families.of_config({"model_type": "relu_gpt"}, "c") is fam
    assert families.of_config({"architectures": ["ReluGPTLMHeadModel"]}, "c") is fam
    assert families.of_module(random_relu_gpt(0)) is fam
    assert families.of_module(random_tiny_gpt(0)) is families.get("gpt2")  # its base family keeps its own


@pytest.mark.parametrize("coding", CODINGS)
def test_the_toy_family_runs_exact_on_numpy_and_numba_in_every_coding(coding):
    model = random_relu_gpt(4)
    snn = convert(model, calibration=token_ids(5, 60, VOCAB), bits=6, coding=coding)
    assert snn.family.name == "relu_gpt" and snn.graph.meta["family"] == "relu_gpt"
    ids = token_ids(6, 10, VOCAB)
    ref = snn.reference(ids)
    relu = ref.codes["h0.relu"]
    assert relu.min() == 0 and relu.max() > 0  # a ReLU's codes (a GELU's go below 0)
    runs = {b: snn.simulate(ids, backend=b, record=True) for b in ("numpy", "numba")}
    for run in runs.values():
        assert_matches_reference(snn, ids, run, ref)
    assert_lm_agree(runs["numpy"], runs["numba"])


def test_the_toy_float_model_is_its_torch_module_and_the_qann_follows_it():
    model = random_relu_gpt(7)
    ids = token_ids(8, 10, VOCAB)
    with torch.no_grad():
        torch_logits = model(torch.tensor(ids)).double().numpy()[0]
    snn = convert(model, calibration=token_ids(9, 80, VOCAB), bits=12)
    f = snn.float_logits(ids)
    np.testing.assert_allclose(f, torch_logits, rtol=1e-5, atol=1e-5 * np.abs(torch_logits).max())
    q = snn.reference(ids).logits  # int8 weights: within several percent of the float logits, and
    assert np.abs(q - f).max() < 0.1 * np.abs(f).max()  # nearer the ReLU model than the same weights with a GELU
    gelu = families.get("gpt2").float_logits(GPTConfig(**{**vars(model.config), "activation_function": "gelu_new"}),
                                             snn.params, ids)
    assert np.abs(q - f).mean() < 0.5 * np.abs(q - gelu).mean()


def test_the_toy_family_reads_state_dicts_and_hugging_face_folders(tmp_path):
    from safetensors.torch import save_file

    model = random_relu_gpt(10)
    calib, ids = token_ids(11, 60, VOCAB), token_ids(12, 8, VOCAB)
    want = convert(model, calibration=calib, bits=6).reference(ids).logits
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    from_dict = convert(state, calibration=calib, bits=6, config=model.config.to_dict())
    assert from_dict.family.name == "relu_gpt" and np.array_equal(from_dict.reference(ids).logits, want)
    folder = tmp_path / "relu"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(model.config.to_dict()))
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    from_folder = convert(folder, calibration=calib, bits=6)
    assert np.array_equal(from_folder.reference(ids).logits, want)


def test_what_the_toy_family_cannot_read_is_one_line_naming_the_field():
    model = random_relu_gpt(13)
    calib = token_ids(14, 30, VOCAB)
    raw = model.config.to_dict()
    with pytest.raises(ConfigError, match=r"model_type='relu_gpt' but architectures=\['GPT2LMHeadModel'\]: "
                                          r"they disagree; a ReLU GPT \(the test family\) folder names "
                                          r"ReluGPTLMHeadModel"):
        convert(model.state_dict(), calibration=calib, config={**raw, "architectures": ["GPT2LMHeadModel"]})
    with pytest.raises(ConfigError, match="activation_function='gelu_new'; allowed: relu"):
        convert(model.state_dict(), calibration=calib, config={**raw, "activation_function": "gelu_new"})
    with pytest.raises(ConfigError, match=r"weight_bits=12: only for .*Llama-family.* models \(GPT-2 weights are int8\)"):
        convert(model, calibration=calib, weight_bits=12)


def test_the_registry_refuses_a_second_family_for_a_taken_model_type():
    class Impostor(families.Family):
        name = "impostor"
        model_types = ("relu_gpt",)

    with pytest.raises(ConfigError, match="family 'impostor': its model_type is taken by 'relu_gpt'"):
        families.register(Impostor())
    with pytest.raises(ConfigError, match="model family 'nope' is unknown; registered: (.+, )?gpt2, (.+, )?llama, (.+, )?relu_gpt"):
        families.get("nope")
