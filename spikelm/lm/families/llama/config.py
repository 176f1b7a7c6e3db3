"""The configuration of a Llama-family decoder (Llama, Qwen2, Mistral; field names as in Hugging Face's)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from spikelm.errors import ConfigError

MODEL_TYPES = ("llama", "qwen2", "mistral")
ARCHITECTURES = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2", "MistralForCausalLM": "mistral"}


@dataclass(frozen=True)
class LlamaConfig:
    """Shape of a Llama-family decoder (field names as in Hugging Face's configs).

    ``n_positions`` is the context spikelm builds neurons for (at most the model's
    ``max_position_embeddings``; attention neurons grow with its square).
    """

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    max_position_embeddings: int
    n_positions: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    model_type: str = "llama"
    bos_token_id: int | None = None

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "head_dim", "max_position_embeddings", "n_positions"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"model config: {name}={v!r}; must be a positive integer")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(f"model config: num_key_value_heads={self.num_key_value_heads} does not divide "
                              f"num_attention_heads={self.num_attention_heads}")
        if self.head_dim % 2:
            raise ConfigError(f"model config: head_dim={self.head_dim}; RoPE needs an even head_dim")
        if self.n_positions > self.max_position_embeddings:
            raise ConfigError(f"context {self.n_positions} exceeds the model's max_position_embeddings="
                              f"{self.max_position_embeddings}")
        for name in ("rms_norm_eps", "rope_theta"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"model config: {name}={v!r}; must be a finite number > 0")
        for name in ("tie_word_embeddings", "attention_bias"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"model config: {name}={getattr(self, name)!r}; must be true or false")
        b = self.bos_token_id
        if b is not None and (isinstance(b, bool) or not isinstance(b, int) or not 0 <= b < self.vocab_size):
            raise ConfigError(f"model config: bos_token_id={b!r}; must be a token id below vocab_size or null")

    # the names every family's config offers the rest of lm/ (spikelm.lm.families.registry.Family)
    @property
    def n_layer(self) -> int:
        return self.num_hidden_layers

    @property
    def n_embd(self) -> int:
        return self.hidden_size

    @property
    def n_head(self) -> int:
        return self.num_attention_heads

    @property
    def inner(self) -> int:
        return self.intermediate_size

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("n_positions")
        d["architectures"] = [next(a for a, f in ARCHITECTURES.items() if f == self.model_type)]
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "config", n_positions: int | None = None) -> "LlamaConfig":
        """From a Hugging Face config dict; features spikelm does not build are refused, one
        line naming the field. ``n_positions``: the context to build (default min(max, 1024))."""
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a JSON object")
        mt = d.get("model_type")
        if not isinstance(mt, str) or mt not in MODEL_TYPES:
            raise ConfigError(f"{source}: model_type={mt!r} is not a Llama-family model; supported: "
                              f"{', '.join(MODEL_TYPES)}")
        act = d.get("hidden_act", "silu")
        if act != "silu":
            raise ConfigError(f"{source}: hidden_act={act!r} is not supported; allowed: 'silu'")
        for key in ("rope_scaling", "rope_parameters"):  # older and newer transformers spell it apart
            scaling = d.get(key)
            if scaling in (None, {}):
                continue
            kind = scaling.get("rope_type", scaling.get("type", "default")) if isinstance(scaling, dict) else scaling
            if kind != "default":
                raise ConfigError(f"{source}: {key} of type {kind!r} is not built; supported: plain RoPE "
                                  "(rope_type 'default')")
            if "rope_theta" in scaling:
                d = {**d, "rope_theta": scaling["rope_theta"]}
        for moe in ("num_local_experts", "num_experts", "num_experts_per_tok", "moe_intermediate_size"):
            if d.get(moe):
                raise ConfigError(f"{source}: {moe}={d[moe]!r}: mixture-of-experts models are not supported")
        if d.get("mlp_bias"):
            raise ConfigError(f"{source}: mlp_bias=true is not supported; allowed: false")
        if d.get("pretraining_tp", 1) not in (1, None):
            raise ConfigError(f"{source}: pretraining_tp={d['pretraining_tp']!r} is not supported; allowed: 1")
        if d.get("layer_types") and any(t != "full_attention" for t in d["layer_types"]):
            raise ConfigError(f"{source}: layer_types holds {sorted(set(d['layer_types']))}; only "
                              "'full_attention' layers are supported (no sliding-window layers)")
        kw = {f.name: d[f.name] for f in fields(cls) if f.name in d and f.name != "n_positions"}
        for req in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"):
            if req not in kw:
                raise ConfigError(f"{source}: field {req!r} is missing")
        kw.setdefault("num_key_value_heads", kw["num_attention_heads"])
        if kw.get("head_dim") is None:
            if not isinstance(kw["hidden_size"], int) or not isinstance(kw["num_attention_heads"], int) \
                    or kw["num_attention_heads"] < 1:
                raise ConfigError(f"{source}: hidden_size and num_attention_heads must be positive integers")
            kw["head_dim"] = kw["hidden_size"] // kw["num_attention_heads"]
        kw.setdefault("max_position_embeddings", 2048)
        if mt == "qwen2":
            kw["attention_bias"] = True  # Qwen2's q/k/v projections always carry biases
        kw["model_type"] = mt
        ctx = n_positions if n_positions is not None else min(kw["max_position_embeddings"], 1024)
        window = d.get("sliding_window")
        if window is not None and (d.get("use_sliding_window", True) is not False) and window < ctx:
            raise ConfigError(f"{source}: sliding_window={window} is smaller than the context {ctx}: "
                              "sliding-window attention is not built (choose a context <= the window)")
        for key in ("rms_norm_eps", "rope_theta"):
            if key in kw and isinstance(kw[key], str):
                raise ConfigError(f"{source}: {key}={kw[key]!r}; must be a number")
        return cls(n_positions=ctx, **kw)
