"""``spikelm lm generate --model DIR`` and ``spikelm lm check`` on a saved Hugging Face folder of
each family and feature of issue 21 part B (random weights, spikelm's character tokenizer): the
text generated is the reference's greedy continuation and the check says exact."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lm_hf_families import random_model, read_config, save_folder
from spikelm.errors import ConfigError
from spikelm.lm import cli, convert
from spikelm.lm.tokenizer import CharTokenizer

TEXT = "Return the value of the attribute.\nIf the file does not exist, raise an error.\n" * 10
SHAPE = dict(seed=11, ctx=32, layers=2, hidden=16, heads=4, kv_heads=2, head_dim=8, inner=24, std=0.3, bias=False)
#: one folder per family or feature: the model type and what it turns on
FOLDERS = {
    "qwen3": dict(model_type="qwen3", tied=True, window=None),
    "gemma": dict(model_type="gemma", tied=True),
    "gemma2": dict(model_type="gemma2", tied=True, window=4, softcap=(50.0, 30.0), scalar=16),
    "gemma3_text": dict(model_type="gemma3_text", tied=True, window=4, pattern=2, rope="linear", scalar=16),
    "llama3": dict(model_type="llama", tied=False, rope="llama3"),
    "mistral": dict(model_type="mistral", tied=False, window=4),
}


def folder_of(tmp_path, name):
    tok = CharTokenizer()
    model = random_model({**SHAPE, **FOLDERS[name], "vocab": tok.vocab_size})
    path = save_folder(model, tmp_path / name, tokenizer=tok)
    (path / "calibration.txt").write_text(TEXT[::-1])
    return path


@pytest.mark.parametrize("name", list(FOLDERS))
def test_generate_and_check_on_a_saved_folder(tmp_path, name, capsys):
    folder = folder_of(tmp_path, name)
    assert cli.main(["lm", "generate", "--model", str(folder), "--prompt", "If the", "--tokens", "3",
                     "--bits", "8"]) == 0
    shown = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("generated:")][0]
    tok = CharTokenizer.load(folder / "tokenizer.json")
    snn = convert(folder, calibration=tok.encode(tok.clean(TEXT[::-1])), bits=8)
    assert snn.config.model_type == read_config(folder)["model_type"]
    assert shown == "generated: " + repr("If the|" + tok.decode(snn.generate(tok.encode("If the"), 3).new_tokens))
    assert cli.main(["lm", "check", "--model", str(folder), "--prompts", "2", "--length", "10", "--bits", "5"]) == 0
    assert "exact agreement: yes on 2 prompts of 10 tokens; largest code difference 0" in capsys.readouterr().out


def test_the_command_line_exits_2_with_one_line_on_a_refused_field(tmp_path):
    """Through ``python -m spikelm.cli``: a Gemma folder with an activation it does not build."""
    folder = folder_of(tmp_path, "gemma2")
    cfg = read_config(folder)
    cfg["hidden_activation"] = "relu"
    (folder / "config.json").write_text(json.dumps(cfg))
    run = subprocess.run([sys.executable, "-m", "spikelm.cli", "lm", "check", "--model", str(folder)],
                         capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}, timeout=300)
    assert run.returncode == 2
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "hidden_activation='relu' is not supported" in lines[0], run.stderr


@pytest.mark.parametrize("model_type", ["mixtral", "qwen3_moe", "mamba", "falcon_mamba", "t5", "bart", "bloom"])
def test_what_stays_unbuilt_is_one_line_naming_model_type(tmp_path, model_type):
    """Mixture of experts, state-space models, encoder-decoders and ALiBi (BLOOM) are refused by
    their ``model_type`` before any weight is read."""
    (tmp_path / "config.json").write_text(json.dumps({"model_type": model_type, "vocab_size": 10}))
    with pytest.raises(ConfigError, match=f"config.json: model_type='{model_type}' is an unknown architecture; "
                                          "supported: .*gemma3_text.*qwen3") as e:
        convert(tmp_path, calibration=[1, 2, 3, 4, 5, 6, 7, 8])
    assert "\n" not in str(e.value)

