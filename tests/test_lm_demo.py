"""The shipped demo model: files, size, conversion, exactness and QANN quality (issue 4, 2 and 5)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spikelm.lm import demo_model_path, load_demo
from spikelm.lm.evaluate import evaluate


@pytest.fixture(scope="module")
def demo():
    return load_demo(bits=8)


def test_demo_files_are_shipped_and_small():
    folder = demo_model_path()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "heldout.txt", "calibration.txt"):
        assert (folder / name).is_file(), name
    assert (folder / "model.safetensors").stat().st_size < 20 * 2**20
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["model_type"] == "gpt2"


def test_demo_qann_agrees_with_float_and_snn_is_exact(demo):
    snn, tok = demo
    n_params = sum(v.size for v in snn.params.values())
    assert 1_000_000 <= n_params <= 3_000_000
    text = tok.clean((demo_model_path() / "heldout.txt").read_text())[:512]
    r = evaluate(snn, tok.encode(text), snn_tokens=40)
    assert r["top1_agreement"] >= 0.93
    assert r["snn_logits_exact"] and r["snn_ppl"] == r["qann_ppl_same_tokens"]
    assert r["qann_ppl"] <= 1.05 * r["float_ppl"]


def test_demo_generate_is_greedy_reference(demo):
    snn, tok = demo
    prompt = tok.encode("Return the ")
    gen = snn.generate(prompt, 6)
    ids = list(prompt)
    for _ in range(6):
        ids.append(int(np.argmax(snn.reference(np.array(ids)).logits[-1])))
    assert gen.tokens.tolist() == ids
