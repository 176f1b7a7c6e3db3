"""OPT: learned positions from row 2 of their table, a ReLU MLP, LayerNorm with bias before
(or, ``do_layer_norm_before=false``, after) each block, ``project_in`` / ``project_out`` where
``word_embed_proj_dim`` differs from ``hidden_size``, the head tied to the token embedding.

Reads a transformers ``OPTForCausalLM``, a Hugging Face folder (safetensors, sharded or not, or
pytorch_model.bin; the keys of the original checkpoints, ``decoder.layers...``, too) and a
state dict with its config; transformers reads no OPT GGUF file. Built by the shared decoder
builder (:mod:`spikelm.lm.families.decoder`): its parts are :mod:`.config` (:class:`OPTConfig`)
and :mod:`.tensors` (names, shapes, the name map).
"""

from __future__ import annotations

from spikelm.errors import ConfigError
from spikelm.lm.families.decoder import DecoderFamily
from spikelm.lm.families.opt import tensors
from spikelm.lm.families.opt.config import ARCHITECTURES, MODEL_TYPE, OPTConfig
from spikelm.lm.families.registry import register
from spikelm.lm.tensors import check_tensors


class OPT(DecoderFamily):
    """The OPT family (see the module docstring)."""

    name = MODEL_TYPE
    label = "OPT"
    model_types = (MODEL_TYPE,)
    architectures = ARCHITECTURES
    config_class = OPTConfig

    def config(self, raw, source, context=None):
        return OPTConfig.from_dict(raw, source, context)

    def tensors(self, cfg):
        return tensors.LAYOUT

    def check_state_dict(self, cfg, state, source="state dict"):
        if isinstance(state, dict):
            # facebook/opt-* checkpoints hold an OPTModel's keys (decoder.layers...), not the causal LM's
            if any(isinstance(k, str) and k.startswith("decoder.") for k in state):
                state = {("model." + k if isinstance(k, str) and k.startswith("decoder.") else k): v
                         for k, v in state.items()}
            head = state.get("lm_head.weight")
            if cfg.tie_word_embeddings and head is not None:  # a tied copy of embed_tokens: checked, then dropped
                want = (cfg.vocab_size, cfg.word_embed_proj_dim)
                shape = tuple(getattr(head, "shape", ()))
                if shape != want:
                    raise ConfigError(f"{source}: lm_head.weight has shape {shape}; the config needs {want}")
                state = {k: v for k, v in state.items() if k != "lm_head.weight"}
        return check_tensors(state, self.tensors(cfg), cfg, source)

    def weights(self, cfg, params):
        return tensors.builder_weights(cfg, params)


register(OPT())

__all__ = ["OPT", "OPTConfig"]
