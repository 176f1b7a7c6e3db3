"""The configuration of a Qwen3 decoder: a Llama-family config with per-head q/k RMSNorm."""

from __future__ import annotations

from dataclasses import dataclass

from spikelm.lm.families.llama.config import LlamaConfig

MODEL_TYPES = ("qwen3",)
ARCHITECTURES = {"Qwen3ForCausalLM": "qwen3"}


@dataclass(frozen=True)
class Qwen3Config(LlamaConfig):
    """Shape of a Qwen3 decoder (Hugging Face's fields; see :class:`LlamaConfig`).

    What differs from Qwen2: q and k pass an RMSNorm per head (over ``head_dim``, which the
    config gives explicitly: 128 for every Qwen3, whatever ``hidden_size / heads``) before RoPE;
    ``attention_bias`` (false in every release) puts biases on q, k, v and o alike; the sliding
    window reads ``use_sliding_window`` and ``max_window_layers`` as Qwen2's.
    """

    model_type: str = "qwen3"

    MODEL_TYPES = MODEL_TYPES
    ARCHITECTURES = ARCHITECTURES
    LABEL = "Qwen3"

    qk_norm = True
