"""The configuration of a Phi-3 decoder (field names as in Hugging Face's ``Phi3Config``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from spikelm.errors import ConfigError
from spikelm.lm.families.registry import HFNames
from spikelm.lm.families.decoder import Decoder
from spikelm.lm.families.decoder import fields as F

MODEL_TYPE = "phi3"
ARCHITECTURES = ("Phi3ForCausalLM",)


@dataclass(frozen=True)
class Phi3Config(HFNames):
    """Shape of a Phi-3 decoder (Hugging Face's field names).

    A Llama-like decoder with fused projections (``qkv_proj``: the queries, keys and values
    one after another; ``gate_up_proj``: the gate, then the up projection), grouped-query
    attention, RMSNorm, a SiLU-gated MLP, RoPE over ``partial_rotary_factor`` of each head.
    ``n_positions`` is the context spikelm builds neurons for (at most ``max_position_embeddings``).
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
    hidden_act: str = "silu"
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    partial_rotary_factor: float = 1.0
    tie_word_embeddings: bool = False
    bos_token_id: int | None = 1

    model_type = MODEL_TYPE

    def __post_init__(self, source="model config"):
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "head_dim", "max_position_embeddings", "n_positions"):
            F.positive_int(source, name, getattr(self, name))
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(f"{source}: num_key_value_heads={self.num_key_value_heads} does not divide "
                              f"num_attention_heads={self.num_attention_heads}")
        F.activation(source, "hidden_act", self.hidden_act)
        F.positive_number(source, "rms_norm_eps", self.rms_norm_eps)
        F.positive_number(source, "rope_theta", self.rope_theta)
        F.fraction(source, "partial_rotary_factor", self.partial_rotary_factor)
        F.rotary_dim(source, self.head_dim, self.partial_rotary_factor)
        F.boolean(source, "tie_word_embeddings", self.tie_word_embeddings)
        F.token_id(source, "bos_token_id", self.bos_token_id, self.vocab_size)
        F.context(source, self.n_positions, self.max_position_embeddings)

    @property
    def decoder(self) -> Decoder:
        return Decoder(self.vocab_size, self.n_positions, self.num_hidden_layers, self.hidden_size,
                       self.num_attention_heads, self.num_key_value_heads, self.head_dim, self.intermediate_size,
                       "rmsnorm", self.rms_norm_eps, self.hidden_act,
                       rotary_dim=F.rotary_dim("config", self.head_dim, self.partial_rotary_factor),
                       rope_theta=self.rope_theta, gated=True, bos_token_id=self.bos_token_id)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("n_positions")
        return {"model_type": MODEL_TYPE, "architectures": list(ARCHITECTURES), **d}

    @classmethod
    def from_dict(cls, d: dict, source: str = "config", n_positions: int | None = None) -> "Phi3Config":
        """From a Hugging Face config dict; what spikelm does not build (``longrope`` / ``su``
        scaling, sliding windows shorter than the context) is refused in one line naming the
        field. ``n_positions``: the context to build (default min(max, 1024))."""
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a JSON object")
        F.require(d, source, ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                              "num_attention_heads"))
        theta, factor = F.rope(d, source)
        kw = {f.name: d[f.name] for f in fields(cls) if f.name in d and f.name != "n_positions"}
        kw.update(rope_theta=theta, partial_rotary_factor=factor, bos_token_id=F.first_token(d.get("bos_token_id", 1)))
        kw.setdefault("num_key_value_heads", kw["num_attention_heads"])
        if kw["num_key_value_heads"] is None:
            kw["num_key_value_heads"] = kw["num_attention_heads"]
        if kw.get("head_dim") is None:
            for name in ("hidden_size", "num_attention_heads"):
                F.positive_int(source, name, kw[name])
            kw["head_dim"] = kw["hidden_size"] // kw["num_attention_heads"]
        kw.setdefault("max_position_embeddings", 4096)
        F.positive_int(source, "max_position_embeddings", kw["max_position_embeddings"])
        ctx = F.context(source, n_positions, kw["max_position_embeddings"])
        F.sliding_window(source, d, ctx)
        try:
            return cls(n_positions=ctx, **kw)
        except ConfigError as exc:  # name the file: "<source>: hidden_act=..."
            raise ConfigError(f"{source}: {str(exc).removeprefix('model config: ')}") from None
