"""The shape and the options of a decoder-only transformer, as the shared builder reads them."""

from __future__ import annotations

from dataclasses import dataclass

from spikelm.errors import ConfigError
from spikelm.lm.activations import ACTIVATIONS

NORMS = ("layernorm", "rmsnorm")


@dataclass(frozen=True)
class Decoder:
    """A decoder-only transformer described by its options (a family's config gives one).

    Shape: ``vocab_size``; ``n_positions``, the context built; ``n_layer``; ``d``, the width;
    ``heads``, ``kv_heads`` (grouped-query attention: query head h reads key/value head
    h // (heads / kv_heads)); ``head_dim``; ``inner``, the MLP width.

    Options:

    - ``norm``: ``layernorm`` (mean and variance, weight and bias) or ``rmsnorm`` (weight);
      ``norm_eps``; ``norm_before``: pre-norm blocks (False: post-norm, OPT-350m's
      ``do_layer_norm_before=false``: the norm follows each residual sum); ``final_norm``: a
      norm before the head;
    - positions: ``rotary_dim`` channels of each head rotated by RoPE (``rope_theta``; 0: no
      RoPE; below ``head_dim``: partial rotary), or ``learned_positions``: a table added to the
      embedding, its row ``position + position_offset`` (OPT's offset of 2);
    - ``parallel_residual``: ``x + attn(norm1(x)) + mlp(norm2(x))`` in one residual sum
      (GPT-NeoX) instead of two in sequence;
    - the MLP: ``activation`` (a Hugging Face name, :mod:`spikelm.lm.activations`) of one
      projection, or ``gated``: ``activation(gate) * up``;
    - ``proj_out``: the width of a projection between the final norm and the head (OPT's
      ``project_out`` to ``word_embed_proj_dim``), None without one;
    - ``bos_token_id``: the attention-sink prefix token (None: no prefix).
    """

    vocab_size: int
    n_positions: int
    n_layer: int
    d: int
    heads: int
    kv_heads: int
    head_dim: int
    inner: int
    norm: str
    norm_eps: float
    activation: str
    norm_before: bool = True
    final_norm: bool = True
    rotary_dim: int = 0
    rope_theta: float = 10000.0
    learned_positions: bool = False
    position_offset: int = 0
    parallel_residual: bool = False
    gated: bool = False
    proj_out: int | None = None
    bos_token_id: int | None = None

    def __post_init__(self):
        if self.norm not in NORMS:
            raise ConfigError(f"decoder: norm={self.norm!r}; allowed: {', '.join(NORMS)}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"decoder: activation={self.activation!r}; allowed: {', '.join(ACTIVATIONS)}")
        if self.rotary_dim % 2 or not 0 <= self.rotary_dim <= self.head_dim:
            raise ConfigError(f"decoder: rotary_dim={self.rotary_dim}; allowed: an even number from 0 to "
                              f"head_dim={self.head_dim}")
        if self.rotary_dim and self.learned_positions:
            raise ConfigError("decoder: RoPE and learned positions together are not built")
        if self.parallel_residual and not self.norm_before:
            raise ConfigError("decoder: a parallel residual needs pre-norm blocks")
        if self.heads % self.kv_heads:
            raise ConfigError(f"decoder: kv_heads={self.kv_heads} does not divide heads={self.heads}")

    @property
    def head_in(self) -> int:
        """The width the head reads (``proj_out`` or ``d``)."""
        return self.proj_out or self.d
