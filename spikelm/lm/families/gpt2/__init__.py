"""GPT-2: LayerNorm, learned positions, a GELU MLP, int8 weights per output channel.

Reads spikelm's :class:`TinyGPT`, a transformers ``GPT2LMHeadModel``, a Hugging Face folder
or GGUF file (``model_type`` gpt2), and a state dict with a GPT-2 config. Its parts:
:mod:`.config` (:class:`GPTConfig`), :mod:`.model` (the torch module), :mod:`.forward` (the
float forward and calibration), :mod:`.tensors` (names and shapes), :mod:`.build` (the graph).
"""

from __future__ import annotations

import json

import numpy as np

from spikelm.lm.families.gpt2 import build as builder, forward, tensors
from spikelm.lm.families.gpt2.config import GPTConfig
from spikelm.lm.families.gpt2.model import TinyGPT
from spikelm.lm.families.registry import Family, register


#: the GPT-2 GGUF tensors stored as [out, in]
GGUF_TRANSPOSED = ("attn_qkv.weight", "ffn_down.weight", "ffn_up.weight", "attn_output.weight")


class GPT2(Family):
    """The GPT-2 family (see the module docstring)."""

    name = "gpt2"
    label = "GPT-2"
    model_types = ("gpt2",)
    architectures = ("GPT2LMHeadModel", "GPT2Model")
    config_class = GPTConfig
    default_bits = builder.DEFAULT_BITS
    options: dict = {}
    missing = {"context": "GPT-2's is its n_positions", "weight_bits": "GPT-2 weights are int8",
               "clamp": "GPT-2 weights are int8",
               "methods": "the conversion methods are built on the Llama decoder",
               "budget": "the conversion methods are built on the Llama decoder"}
    reads_untyped = True  # spikelm's first config files named no model_type

    def config(self, raw, source, context=None):
        return self.config_class.from_dict(raw, source=source)

    def tensors(self, cfg):
        return tensors.LAYOUT

    def gguf_tensor(self, arch, name, w, meta):
        # llama.cpp stores the Conv1D weights [in, out] transposed; transformers' loader turns them back
        return w.T if arch == "gpt2" and name.endswith(GGUF_TRANSPOSED) else w

    def reads_module(self, model):
        # spikelm's TinyGPT is this family's when its config is (a variant's config class claims
        # it for the variant); a bare GPT2Model has no head: only the LM module converts
        if isinstance(model, TinyGPT):
            return type(model.config) is self.config_class
        return type(model).__name__ == self.architectures[0]

    def from_module(self, model, context=None):
        if isinstance(model, TinyGPT):
            return model.config, self.check_state_dict(model.config, model.state_dict(), type(model).__name__)
        return super().from_module(model, context)

    def float_logits(self, cfg, params, ids):
        return forward.float_forward(cfg, params, ids)

    def build(self, cfg, params, calibration, bits, coding, **options):
        return builder.build(cfg, params, calibration, self.default_bits if bits is None else bits, coding)

    def save_folder(self, cfg, params, folder):
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in params.items()},
                  str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1) + "\n")


register(GPT2())

__all__ = ["GPT2", "GPTConfig", "TinyGPT"]
