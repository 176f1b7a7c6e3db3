"""The configuration of a GPT-NeoX decoder (Pythia; field names as in Hugging Face's ``GPTNeoXConfig``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from spikelm.errors import ConfigError
from spikelm.lm.families.registry import HFNames
from spikelm.lm.families.decoder import Decoder
from spikelm.lm.families.decoder import fields as F

MODEL_TYPE = "gpt_neox"
ARCHITECTURES = ("GPTNeoXForCausalLM",)


@dataclass(frozen=True)
class NeoXConfig(HFNames):
    """Shape of a GPT-NeoX decoder (Hugging Face's field names; ``rotary_pct`` and
    ``rotary_emb_base`` of older configs are ``partial_rotary_factor`` and ``rope_theta``).

    ``n_positions`` is the context spikelm builds neurons for (at most ``max_position_embeddings``).
    """

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    n_positions: int
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    partial_rotary_factor: float = 0.25
    use_parallel_residual: bool = True
    attention_bias: bool = True
    tie_word_embeddings: bool = False
    bos_token_id: int | None = 0

    model_type = MODEL_TYPE

    def __post_init__(self, source="model config"):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "max_position_embeddings", "n_positions"):
            F.positive_int(source, name, getattr(self, name))
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(f"{source}: num_attention_heads={self.num_attention_heads} does not divide "
                              f"hidden_size={self.hidden_size}")
        F.activation(source, "hidden_act", self.hidden_act)
        F.positive_number(source, "layer_norm_eps", self.layer_norm_eps)
        F.positive_number(source, "rope_theta", self.rope_theta)
        F.fraction(source, "partial_rotary_factor", self.partial_rotary_factor)
        F.rotary_dim(source, self.head_dim, self.partial_rotary_factor)
        for name in ("use_parallel_residual", "attention_bias", "tie_word_embeddings"):
            F.boolean(source, name, getattr(self, name))
        F.token_id(source, "bos_token_id", self.bos_token_id, self.vocab_size)
        F.context(source, self.n_positions, self.max_position_embeddings)

    # with HFNames' n_layer and n_embd: the names every family's config offers the rest of lm/
    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def decoder(self) -> Decoder:
        H = self.num_attention_heads
        return Decoder(self.vocab_size, self.n_positions, self.num_hidden_layers, self.hidden_size, H, H,
                       self.head_dim, self.intermediate_size, "layernorm", self.layer_norm_eps, self.hidden_act,
                       rotary_dim=F.rotary_dim("config", self.head_dim, self.partial_rotary_factor),
                       rope_theta=self.rope_theta, parallel_residual=self.use_parallel_residual,
                       bos_token_id=self.bos_token_id)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("n_positions")
        # the older spelling, which every transformers version reads
        d["rotary_emb_base"], d["rotary_pct"] = d.pop("rope_theta"), d.pop("partial_rotary_factor")
        return {"model_type": MODEL_TYPE, "architectures": list(ARCHITECTURES), **d}

    @classmethod
    def from_dict(cls, d: dict, source: str = "config", n_positions: int | None = None) -> "NeoXConfig":
        """From a Hugging Face config dict; what spikelm does not build is refused in one line
        naming the field. ``n_positions``: the context to build (default min(max, 1024))."""
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a JSON object")
        F.require(d, source, ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                              "intermediate_size"))
        theta, factor = F.rope(d, source, 10000.0, 0.25, "rotary_emb_base", "rotary_pct")
        kw = {f.name: d[f.name] for f in fields(cls) if f.name in d and f.name != "n_positions"}
        kw.update(rope_theta=theta, partial_rotary_factor=factor, bos_token_id=F.first_token(d.get("bos_token_id", 0)))
        kw.setdefault("max_position_embeddings", 2048)
        F.positive_int(source, "max_position_embeddings", kw["max_position_embeddings"])
        ctx = F.context(source, n_positions, kw["max_position_embeddings"])
        try:
            return cls(n_positions=ctx, **kw)
        except ConfigError as exc:  # name the file: "<source>: hidden_act=..."
            raise ConfigError(f"{source}: {str(exc).removeprefix('model config: ')}") from None
