"""The Qwen3 family (Qwen3-0.6B to 32B, dense): the Llama family's decoder with an RMSNorm per
attention head on q and k before RoPE, and an explicit ``head_dim``.

Reads a transformers ``Qwen3ForCausalLM``, a Hugging Face folder (safetensors, sharded or not,
or pytorch_model.bin), a GGUF file (transformers reads ``qwen3``) and a state dict with its
config. Its config (:class:`~.config.Qwen3Config`) switches the shared decoder's ``qk_norm``
hook on; the float forward, the tensors and the builder are the Llama family's
(:mod:`spikelm.lm.families.llama`). Qwen3's mixture-of-experts models (``qwen3_moe``) are not
built.
"""

from __future__ import annotations

from spikelm.lm.families.llama import Llama
from spikelm.lm.families.qwen3.config import ARCHITECTURES, MODEL_TYPES, Qwen3Config
from spikelm.lm.families.registry import register


class Qwen3(Llama):
    """The Qwen3 family (see the module docstring)."""

    name = "qwen3"
    label = "Qwen3"
    model_types = MODEL_TYPES
    architectures = tuple(ARCHITECTURES)
    config_class = Qwen3Config


register(Qwen3())

__all__ = ["Qwen3", "Qwen3Config"]
