"""Converted language models: PyTorch weights -> quantized reference -> spiking network.

    from spikelm.lm import convert
    snn = convert(model, calibration=token_ids, bits=8)
    ref = snn.reference(token_ids)            # dense QANN: .logits, .codes
    run = snn.simulate(token_ids, backend="numba")   # event-driven, token by token
    assert (run.logits == ref.logits).all()
    gen = snn.generate(prompt_ids, n_tokens)

Model families (GPT-2, the Llama family, ...) are folders of :mod:`spikelm.lm.families`.
See docs/lm.md for the quantizer points, the schedule and the exact counting rules.
"""

from spikelm.lm.convert import SpikingLM, convert, demo_model_path, load_demo
# spikelm's own small GPT-2 and its config, public since the demo model was trained with them
from spikelm.lm.families.gpt2 import GPTConfig, TinyGPT

__all__ = ["convert", "SpikingLM", "GPTConfig", "TinyGPT", "demo_model_path", "load_demo"]
