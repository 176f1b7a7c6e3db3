"""The Gemma family: Gemma 1 (2B, 7B), Gemma 2 (2B, 9B, 27B) and Gemma 3 text (270M, 1B).

The Llama family's decoder with Gemma's differences switched on through its config's hooks
(:class:`~.config.GemmaConfig`, whose docstring tables them): GeGLU with the tanh GELU, RMSNorm
gains ``1 + w``, embeddings scaled by sqrt(hidden_size); Gemma 2 and 3 add an RMSNorm after
attention and after the MLP, ``query_pre_attn_scalar``, sliding-window layers (every other one;
five of every six) and, Gemma 2, attention and final-logit soft-capping; Gemma 3 adds per-head
q/k RMSNorm and a second RoPE base for its local layers. The float forward, the tensors and
the builder are the Llama family's (:mod:`spikelm.lm.families.llama`).

Reads a transformers ``GemmaForCausalLM`` / ``Gemma2ForCausalLM`` / ``Gemma3ForCausalLM``, a
Hugging Face folder (safetensors, sharded or not, or pytorch_model.bin), a GGUF file
(transformers reads ``gemma2`` and ``gemma3``) and a state dict with its config. Gemma 3 with
its vision tower (``Gemma3ForConditionalGeneration``) is refused in one line.
"""

from __future__ import annotations

from spikelm.lm.families.gemma.config import ARCHITECTURES, MODEL_TYPES, GemmaConfig
from spikelm.lm.families.llama import Llama
from spikelm.lm.families.registry import register


class Gemma(Llama):
    """The Gemma family (see the module docstring)."""

    name = "gemma"
    label = "Gemma"
    model_types = MODEL_TYPES
    architectures = tuple(ARCHITECTURES)
    config_class = GemmaConfig

    def gguf_tensor(self, arch, name, w, meta):
        # llama.cpp stores Gemma 2/3 norms as 1 + w; transformers' loader takes the 1 off (in float32)
        return w - 1 if arch in ("gemma2", "gemma3") and "norm.weight" in name else w


register(Gemma())

__all__ = ["Gemma", "GemmaConfig"]
