"""Phi-3: a Llama-like decoder with fused projections (``qkv_proj``, ``gate_up_proj``),
grouped-query attention, RMSNorm, a SiLU-gated MLP and RoPE over ``partial_rotary_factor`` of
each head (Phi-4-mini's 0.75 too); ``longrope`` / ``su`` scaling (the 128k models) is refused.

Reads a transformers ``Phi3ForCausalLM``, a Hugging Face folder (safetensors, sharded or not,
or pytorch_model.bin), a GGUF file (through transformers) and a state dict with its config.
Built by the shared decoder builder (:mod:`spikelm.lm.families.decoder`): its parts are
:mod:`.config` (:class:`Phi3Config`) and :mod:`.tensors` (names, shapes, the name map).
"""

from __future__ import annotations

from spikelm.lm.families.decoder import DecoderFamily
from spikelm.lm.families.phi3 import tensors
from spikelm.lm.families.phi3.config import ARCHITECTURES, MODEL_TYPE, Phi3Config
from spikelm.lm.families.registry import register


class Phi3(DecoderFamily):
    """The Phi-3 family (see the module docstring)."""

    name = MODEL_TYPE
    label = "Phi-3"
    model_types = (MODEL_TYPE,)
    architectures = ARCHITECTURES
    config_class = Phi3Config

    def config(self, raw, source, context=None):
        return Phi3Config.from_dict(raw, source, context)

    def tensors(self, cfg):
        return tensors.LAYOUT

    def weights(self, cfg, params):
        return tensors.builder_weights(cfg, params)


register(Phi3())

__all__ = ["Phi3", "Phi3Config"]
