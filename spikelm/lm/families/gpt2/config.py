"""The configuration of a GPT-2 decoder (field names as in Hugging Face's ``GPT2Config``)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import ClassVar

from spikelm.errors import ConfigError
from spikelm.lm.families.gpt2.forward import gelu

ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh", "gelu")


@dataclass(frozen=True)
class GPTConfig:
    """Shape of a GPT-2 decoder (field names as in Hugging Face ``GPT2Config``).

    vocab_size: tokens; n_positions: context length; n_embd: width; n_layer: blocks;
    n_head: attention heads (must divide n_embd); n_inner: MLP width (None = 4 n_embd);
    layer_norm_epsilon: LayerNorm epsilon; activation_function: one of ``ACTIVATIONS``;
    tie_word_embeddings: LM head shares the token embedding.

    A variant that differs only in its MLP activation subclasses it: its own ``MODEL_TYPE``,
    ``ARCHITECTURES``, ``ACTIVATIONS``, ``ACTIVATION_POINT`` and :meth:`activation`
    (docs/design.md, "How to add a family").
    """

    vocab_size: int
    n_positions: int
    n_embd: int
    n_layer: int
    n_head: int
    n_inner: int | None = None
    layer_norm_epsilon: float = 1e-5
    activation_function: str = "gelu_new"
    tie_word_embeddings: bool = True

    MODEL_TYPE: ClassVar[str] = "gpt2"
    ARCHITECTURES: ClassVar[tuple] = ("GPT2LMHeadModel",)
    ACTIVATIONS: ClassVar[tuple] = ACTIVATIONS
    #: the name of the MLP activation's quantizer point (population ``hI.gelu``)
    ACTIVATION_POINT: ClassVar[str] = "gelu"

    def __post_init__(self):
        for name in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"model config: {name}={value!r}; must be a positive integer")
        if self.n_inner is not None and (not isinstance(self.n_inner, int) or isinstance(self.n_inner, bool)
                                         or self.n_inner < 1):
            raise ConfigError(f"model config: n_inner={self.n_inner!r}; must be a positive integer or null")
        if self.n_embd % self.n_head:
            raise ConfigError(
                f"model config: n_head={self.n_head} does not divide n_embd={self.n_embd}"
            )
        if self.activation_function not in self.ACTIVATIONS:
            raise ConfigError(
                f"model config: activation_function={self.activation_function!r}; "
                f"allowed: {', '.join(self.ACTIVATIONS)}"
            )
        eps = self.layer_norm_epsilon
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < math.inf:
            raise ConfigError(f"model config: layer_norm_epsilon={eps!r}; must be a finite number > 0")
        if not isinstance(self.tie_word_embeddings, bool):
            raise ConfigError(f"model config: tie_word_embeddings={self.tie_word_embeddings!r}; must be true or false")

    @property
    def inner(self) -> int:
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def activation(self, x):
        """The MLP's activation function (NumPy arrays and torch tensors)."""
        return gelu(x, self.activation_function)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model_type"] = self.MODEL_TYPE
        d["architectures"] = [self.ARCHITECTURES[0]]
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "GPTConfig":
        """Build from a Hugging Face GPT-2 config dict; unsupported GPT-2 options are errors."""
        model_type = d.get("model_type", cls.MODEL_TYPE)
        if model_type != cls.MODEL_TYPE:
            raise ConfigError(
                f"{source}: model_type={model_type!r} is an unknown architecture; supported: {cls.MODEL_TYPE}"
            )
        for flag, ok in (("scale_attn_by_inverse_layer_idx", False), ("scale_attn_weights", True)):
            if flag in d and d[flag] is not ok:
                raise ConfigError(f"{source}: {flag}={d[flag]!r} is not supported; allowed: {ok}")
        names = {f.name for f in fields(cls)}
        kwargs = {k: d[k] for k in names if k in d}
        for req in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
            if req not in kwargs:
                raise ConfigError(f"{source}: field {req!r} is missing")
        if kwargs.get("activation_function") == "gelu_fast":
            kwargs["activation_function"] = "gelu_new"
        try:
            return cls(**kwargs)
        except ConfigError as exc:   # name the file: "<source>: n_embd=..."
            raise ConfigError(f"{source}: {str(exc).removeprefix('model config: ')}") from None
