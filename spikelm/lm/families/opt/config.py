"""The configuration of an OPT decoder (field names as in Hugging Face's ``OPTConfig``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from spikelm.errors import ConfigError
from spikelm.lm.families.registry import HFNames
from spikelm.lm.families.decoder import Decoder
from spikelm.lm.families.decoder import fields as F

MODEL_TYPE = "opt"
ARCHITECTURES = ("OPTForCausalLM",)
#: OPT's learned positions start at row 2 of their table (OPTLearnedPositionalEmbedding.offset)
POSITION_OFFSET = 2
#: OPT's LayerNorms take torch's default epsilon (its config has no field for it)
LAYER_NORM_EPS = 1e-5


@dataclass(frozen=True)
class OPTConfig(HFNames):
    """Shape of an OPT decoder (Hugging Face's field names; ``remove_final_layer_norm`` is its
    ``_remove_final_layer_norm``).

    ``word_embed_proj_dim`` below ``hidden_size`` (OPT-350m) adds ``project_in`` after the
    token embedding and ``project_out`` before the head; ``do_layer_norm_before=false``
    (OPT-350m too) makes the blocks post-norm, without a final LayerNorm. ``n_positions`` is
    the context spikelm builds neurons for (at most ``max_position_embeddings``).
    """

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    ffn_dim: int
    max_position_embeddings: int
    n_positions: int
    word_embed_proj_dim: int
    activation_function: str = "relu"
    do_layer_norm_before: bool = True
    remove_final_layer_norm: bool = False
    enable_bias: bool = True
    layer_norm_elementwise_affine: bool = True
    tie_word_embeddings: bool = True
    bos_token_id: int | None = 2

    model_type = MODEL_TYPE

    def __post_init__(self, source="model config"):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "ffn_dim",
                     "max_position_embeddings", "n_positions", "word_embed_proj_dim"):
            F.positive_int(source, name, getattr(self, name))
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(f"{source}: num_attention_heads={self.num_attention_heads} does not divide "
                              f"hidden_size={self.hidden_size}")
        F.activation(source, "activation_function", self.activation_function)
        for name in ("do_layer_norm_before", "remove_final_layer_norm", "enable_bias", "layer_norm_elementwise_affine",
                     "tie_word_embeddings"):
            F.boolean(source, name, getattr(self, name))
        F.token_id(source, "bos_token_id", self.bos_token_id, self.vocab_size)
        F.context(source, self.n_positions, self.max_position_embeddings)

    @property
    def projected(self) -> bool:
        """True when the embedding's width differs from the blocks' (project_in and project_out)."""
        return self.word_embed_proj_dim != self.hidden_size

    @property
    def final_norm(self) -> bool:
        return self.do_layer_norm_before and not self.remove_final_layer_norm

    @property
    def decoder(self) -> Decoder:
        H = self.num_attention_heads
        return Decoder(self.vocab_size, self.n_positions, self.num_hidden_layers, self.hidden_size, H, H,
                       self.hidden_size // H, self.ffn_dim, "layernorm", LAYER_NORM_EPS, self.activation_function,
                       norm_before=self.do_layer_norm_before, final_norm=self.final_norm, learned_positions=True,
                       position_offset=POSITION_OFFSET, proj_out=self.word_embed_proj_dim if self.projected else None,
                       bos_token_id=self.bos_token_id)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("n_positions")
        d["_remove_final_layer_norm"] = d.pop("remove_final_layer_norm")
        return {"model_type": MODEL_TYPE, "architectures": list(ARCHITECTURES), **d}

    @classmethod
    def from_dict(cls, d: dict, source: str = "config", n_positions: int | None = None) -> "OPTConfig":
        """From a Hugging Face config dict; what spikelm does not build is refused in one line
        naming the field. ``n_positions``: the context to build (default min(max, 1024))."""
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a JSON object")
        F.require(d, source, ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "ffn_dim"))
        kw = {f.name: d[f.name] for f in fields(cls) if f.name in d and f.name != "n_positions"}
        if "_remove_final_layer_norm" in d:
            kw["remove_final_layer_norm"] = d["_remove_final_layer_norm"]
        kw.setdefault("word_embed_proj_dim", d["hidden_size"])
        kw["bos_token_id"] = F.first_token(d.get("bos_token_id", 2))
        kw.setdefault("max_position_embeddings", 2048)
        F.positive_int(source, "max_position_embeddings", kw["max_position_embeddings"])
        ctx = F.context(source, n_positions, kw["max_position_embeddings"])
        try:
            return cls(n_positions=ctx, **kw)
        except ConfigError as exc:  # name the file: "<source>: activation_function=..."
            raise ConfigError(f"{source}: {str(exc).removeprefix('model config: ')}") from None
