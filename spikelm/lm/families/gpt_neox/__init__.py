"""GPT-NeoX (Pythia): LayerNorm with bias, partial rotary (``rotary_pct``), a parallel residual
(``use_parallel_residual``), a GELU MLP, the query/key/value projection fused per head, an
untied head (``embed_out``).

Reads a transformers ``GPTNeoXForCausalLM``, a Hugging Face folder (safetensors, sharded or
not, or pytorch_model.bin) and a state dict with its config; transformers reads no GPT-NeoX
GGUF file. Built by the shared decoder builder (:mod:`spikelm.lm.families.decoder`): its parts
are :mod:`.config` (:class:`NeoXConfig`) and :mod:`.tensors` (names, shapes, the name map).
"""

from __future__ import annotations

from spikelm.lm.families.decoder import DecoderFamily
from spikelm.lm.families.gpt_neox import tensors
from spikelm.lm.families.gpt_neox.config import ARCHITECTURES, MODEL_TYPE, NeoXConfig
from spikelm.lm.families.registry import register
from spikelm.lm.tensors import check_tensors


class GPTNeoX(DecoderFamily):
    """The GPT-NeoX family (see the module docstring)."""

    name = MODEL_TYPE
    label = "GPT-NeoX"
    model_types = (MODEL_TYPE,)
    architectures = ARCHITECTURES
    config_class = NeoXConfig

    def config(self, raw, source, context=None):
        return NeoXConfig.from_dict(raw, source, context)

    def tensors(self, cfg):
        return tensors.LAYOUT

    def check_state_dict(self, cfg, state, source="state dict"):
        if isinstance(state, dict) and tensors.OLD_HEAD in state and "lm_head.weight" not in state:
            state = {("lm_head.weight" if k == tensors.OLD_HEAD else k): v for k, v in state.items()}
        return check_tensors(state, self.tensors(cfg), cfg, source)

    def weights(self, cfg, params):
        return tensors.builder_weights(cfg, params)


register(GPTNeoX())

__all__ = ["GPTNeoX", "NeoXConfig"]
