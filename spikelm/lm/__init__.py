"""Converted language models: PyTorch GPT-2-style weights -> quantized reference -> spiking network.

    from spikelm.lm import convert
    snn = convert(model, calibration=token_ids, bits=8)
    ref = snn.reference(token_ids)            # dense QANN: .logits, .codes
    run = snn.simulate(token_ids, backend="numba")   # event-driven, token by token
    assert (run.logits == ref.logits).all()
    gen = snn.generate(prompt_ids, n_tokens)

See docs/lm.md for the quantizer points, the schedule and the exact counting rules.
"""

from spikelm.lm.convert import SpikingLM, convert, demo_model_path, load_demo
from spikelm.lm.gpt import GPTConfig, TinyGPT

__all__ = ["convert", "SpikingLM", "GPTConfig", "TinyGPT", "demo_model_path", "load_demo"]
