"""The Llama family (Llama, Qwen2, Mistral, SmolLM2): RMSNorm, RoPE, a SiLU-gated MLP,
grouped-query attention, Qwen2's q/k/v biases, tied or untied heads; scaled RoPE (Llama 3.1 /
3.2's ``llama3``, ``linear``, ``yarn``, ``dynamic``) and sliding windows (Mistral, Qwen2's
``use_sliding_window``).

Reads a transformers ``LlamaForCausalLM`` / ``Qwen2ForCausalLM`` / ``MistralForCausalLM``, a
Hugging Face folder (safetensors, sharded or not, any float dtype, or pytorch_model.bin), a
GGUF file, and a state dict with its config. Its parts: :mod:`.config`
(:class:`LlamaConfig`), :mod:`.forward` (the float forward), :mod:`.tensors` (names and
shapes), :mod:`.build` (calibration, per-channel scales, the sink prefix, the graph). The
families that vary it (Qwen3, Gemma) subclass :class:`Llama` and its config, whose hooks
the forward and the builder read.
"""

from __future__ import annotations

from spikelm.errors import ConfigError
from spikelm.lm.families.llama import build as builder, forward, tensors
from spikelm.lm.families.llama.config import ARCHITECTURES, MODEL_TYPES, LlamaConfig
from spikelm.lm.families.registry import Family, register


class Llama(Family):
    """The Llama family (see the module docstring)."""

    name = "llama"
    label = "Llama-family"
    model_types = MODEL_TYPES
    architectures = tuple(ARCHITECTURES)
    config_class = LlamaConfig
    default_bits = builder.DEFAULT_BITS
    options = {"context": None, "weight_bits": builder.DEFAULT_WEIGHT_BITS, "clamp": builder.DEFAULT_CLAMP,
               "sink": True, "methods": None, "budget": None}
    methods = ("rotate", "fisher", "row-exponents")
    reuses_calibration = True

    def config(self, raw, source, context=None):
        raw = dict(raw)
        if isinstance(raw.get("bos_token_id"), list):  # some configs list several
            raw["bos_token_id"] = raw["bos_token_id"][0] if raw["bos_token_id"] else None
        unknown = [a for a in raw.get("architectures") or [] if a not in self.architectures]
        if unknown:
            raise ConfigError(f"{source}: model_type={raw.get('model_type')!r} but architectures={unknown!r}: they "
                              f"disagree; a {self.label} folder names {', '.join(self.architectures)}")
        return self.config_class.from_dict(raw, source, context)

    def tensors(self, cfg):
        return tensors.LAYOUT

    def gguf_tensor(self, arch, name, w, meta):
        return tensors.from_llama_cpp(arch, name, w, meta)

    def float_logits(self, cfg, params, ids):
        return forward.float_forward(cfg, params, ids)

    def build(self, cfg, params, calibration, bits, coding, **options):
        o = {**self.options, **options}  # the context was the config's (self.config)
        return builder.build(cfg, params, calibration, bits, coding, weight_bits=o["weight_bits"], clamp=o["clamp"],
                             sink=o["sink"], methods=o["methods"], budget=o["budget"])


register(Llama())

__all__ = ["Llama", "LlamaConfig"]
