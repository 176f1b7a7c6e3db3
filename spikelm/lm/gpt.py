"""spikelm's small GPT-2-style decoder (PyTorch) and its configuration.

The module keeps the parameter names and layouts of Hugging Face's ``GPT2LMHeadModel``
(``transformer.h.0.attn.c_attn.weight`` is ``[n_embd, 3 n_embd]``, applied as ``x @ W + b``),
so its state dict converts, saves and loads exactly like a GPT-2 checkpoint. It is the model
that ``scripts/train_tiny_lm.py`` trains into the shipped demo.

torch is optional (the ``lm`` extra): :class:`GPTConfig` and :func:`gelu` work on NumPy
without it, and only building a :class:`TinyGPT` needs it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from spikelm.errors import ConfigError

try:
    import torch
    from torch import nn

    _Module = nn.Module
except ImportError:  # the core install: converting shipped safetensors needs no torch
    torch = nn = None
    _Module = object    # the classes below still define; TinyGPT() refuses with the extra to install

#: What to install for the torch parts of spikelm.lm (named in every "needs torch" error).
LM_EXTRA = "pip install 'spikelm[lm]'"


def require_torch(what: str):
    """Return the torch module, or raise a one-line ConfigError naming the ``lm`` extra."""
    if torch is None:
        raise ConfigError(f"{what} needs PyTorch, which is not installed; install the lm extra: {LM_EXTRA}")
    return torch

ACTIVATIONS = ("gelu_new", "gelu_pytorch_tanh", "gelu")


@dataclass(frozen=True)
class GPTConfig:
    """Shape of a GPT-2-style decoder (field names as in Hugging Face ``GPT2Config``).

    vocab_size: tokens; n_positions: context length; n_embd: width; n_layer: blocks;
    n_head: attention heads (must divide n_embd); n_inner: MLP width (None = 4 n_embd);
    layer_norm_epsilon: LayerNorm epsilon; activation_function: one of ``ACTIVATIONS``;
    tie_word_embeddings: LM head shares the token embedding.
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
        if self.activation_function not in ACTIVATIONS:
            raise ConfigError(
                f"model config: activation_function={self.activation_function!r}; "
                f"allowed: {', '.join(ACTIVATIONS)}"
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

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model_type"] = "gpt2"
        d["architectures"] = ["GPT2LMHeadModel"]
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "config") -> "GPTConfig":
        """Build from a Hugging Face GPT-2 config dict; unsupported GPT-2 options are errors."""
        model_type = d.get("model_type", "gpt2")
        if model_type != "gpt2":
            raise ConfigError(
                f"{source}: model_type={model_type!r} is an unknown architecture; supported: gpt2"
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


def gelu(x, kind: str):
    """The GELU variants of GPT-2 (works on torch tensors and numpy arrays)."""
    is_tensor = torch is not None and isinstance(x, torch.Tensor)
    if kind == "gelu":
        if is_tensor:
            return torch.nn.functional.gelu(x)
        from math import erf

        import numpy as np

        return 0.5 * x * (1.0 + np.vectorize(erf)(x / math.sqrt(2.0)))
    tanh = torch.tanh if is_tensor else __import__("numpy").tanh
    return 0.5 * x * (1.0 + tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


class _Conv1D(_Module):
    """y = x @ weight + bias with weight [n_in, n_out] (GPT-2's layout)."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        return x @ self.weight + self.bias


class _Attention(_Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.c_attn = _Conv1D(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = _Conv1D(cfg.n_embd, cfg.n_embd)

    def forward(self, x):
        B, L, D = x.shape
        H, dh = self.cfg.n_head, self.cfg.head_dim
        q, k, v = self.c_attn(x).split(D, dim=2)
        q, k, v = (t.view(B, L, H, dh).transpose(1, 2) for t in (q, k, v))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
        mask = torch.ones(L, L, dtype=torch.bool, device=x.device).tril()
        scores = scores.masked_fill(~mask, float("-inf"))
        y = torch.softmax(scores, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).reshape(B, L, D))


class _MLP(_Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.kind = cfg.activation_function
        self.c_fc = _Conv1D(cfg.n_embd, cfg.inner)
        self.c_proj = _Conv1D(cfg.inner, cfg.n_embd)

    def forward(self, x):
        return self.c_proj(gelu(self.c_fc(x), self.kind))


class _Block(_Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.attn = _Attention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.mlp = _MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class _Transformer(_Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.n_positions, cfg.n_embd)
        self.h = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.01)


class TinyGPT(_Module):
    """A GPT-2-style decoder with Hugging Face parameter names.

    ``forward(ids)`` takes token ids ``[batch, length]`` (or ``[length]``) and returns logits
    ``[batch, length, vocab]``.
    """

    def __init__(self, config: GPTConfig):
        require_torch("TinyGPT")
        super().__init__()
        self.config = config
        self.transformer = _Transformer(config)
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
            nn.init.normal_(self.lm_head.weight, std=0.02)

    def head_weight(self):
        if self.config.tie_word_embeddings:
            return self.transformer.wte.weight
        return self.lm_head.weight

    def forward(self, ids):
        if ids.dim() == 1:
            ids = ids[None]
        t = self.transformer
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = t.wte(ids) + t.wpe(pos)[None]
        for block in t.h:
            x = block(x)
        return t.ln_f(x) @ self.head_weight().T
