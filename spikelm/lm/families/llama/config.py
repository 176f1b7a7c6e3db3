"""The configuration of a Llama-family decoder (Llama, Qwen2, Mistral; field names as in Hugging Face's).

Besides the shape it holds the two features several rotary families share: the rotary
embedding's scaling (:class:`~spikelm.lm.families.rotary.Rotary`: ``linear``, ``llama3``,
``yarn``, ``dynamic``) and sliding-window attention per layer (``sliding_window`` and
``layer_types``, as transformers spells them). The shared decoder (:mod:`.forward`,
:mod:`.build`) reads a config through the hooks at the end of :class:`LlamaConfig`; families
that vary it (Qwen3, Gemma) subclass it and override them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from spikelm.errors import ConfigError
from spikelm.lm.families.registry import HFNames
from spikelm.lm.families.rotary import Rotary

MODEL_TYPES = ("llama", "qwen2", "mistral")
ARCHITECTURES = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2", "MistralForCausalLM": "mistral"}
LAYER_TYPES = ("full_attention", "sliding_attention")
#: read apart from the shape (the rotary embedding, the windows) or fixed by the model type
_SPECIAL = ("n_positions", "rope_scaling", "sliding_window", "layer_types", "model_type")


@dataclass(frozen=True)
class LlamaConfig(HFNames):
    """Shape of a Llama-family decoder (field names as in Hugging Face's configs).

    ``n_positions`` is the context spikelm builds neurons for (at most the model's
    ``max_position_embeddings``; attention neurons grow with its square). ``rope_scaling``:
    the rotary embedding when it is not plain RoPE of base ``rope_theta``; ``sliding_window``
    and ``layer_types``: layer i attends to the last ``sliding_window`` positions when
    ``layer_types[i]`` is ``"sliding_attention"``.
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
    rope_scaling: Rotary | None = None
    sliding_window: int | None = None
    layer_types: tuple | None = None

    #: the model types and architectures (class name -> model type) this config reads, and the
    #: family in messages
    MODEL_TYPES = MODEL_TYPES
    ARCHITECTURES = ARCHITECTURES
    LABEL = "Llama-family"

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
        if self.rope_scaling is not None and not isinstance(self.rope_scaling, Rotary):
            raise ConfigError(f"model config: rope_scaling={self.rope_scaling!r}; expected a Rotary "
                              "(LlamaConfig.from_dict reads Hugging Face's dict)")
        w = self.sliding_window
        if w is not None and (isinstance(w, bool) or not isinstance(w, int) or w < 1):
            raise ConfigError(f"model config: sliding_window={w!r}; must be a positive integer or null")
        t = self.layer_types
        if t is not None and (not isinstance(t, tuple) or len(t) != self.num_hidden_layers
                              or any(x not in LAYER_TYPES for x in t)):
            raise ConfigError(f"model config: layer_types={t!r}; must list {self.num_hidden_layers} of "
                              f"{', '.join(LAYER_TYPES)}")

    # with HFNames' n_layer and n_embd: the names every family's config offers the rest of lm/
    @property
    def n_head(self) -> int:
        return self.num_attention_heads

    @property
    def inner(self) -> int:
        return self.intermediate_size

    def to_dict(self) -> dict:
        """A Hugging Face config dict (what :meth:`from_dict` reads back)."""
        d = asdict(self)
        d.pop("n_positions")
        d["rope_scaling"] = None if self.rope_scaling is None else self.rope_scaling.to_hf()
        d["layer_types"] = None if self.layer_types is None else list(self.layer_types)
        if self.model_type == "mistral":
            d["layer_types"] = None  # its window applies to every layer
        elif self.sliding_window is not None:
            d["use_sliding_window"] = True  # Qwen2 and its kin read the window only with it
            d["max_window_layers"] = 0
        d["architectures"] = [next(a for a, f in self.ARCHITECTURES.items() if f == self.model_type)]
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "config", n_positions: int | None = None) -> "LlamaConfig":
        """From a Hugging Face config dict; features spikelm does not build are refused, one
        line naming the field. ``n_positions``: the context to build (default min(max, 1024))."""
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a JSON object")
        mt = d.get("model_type")
        if not isinstance(mt, str) or mt not in cls.MODEL_TYPES:
            raise ConfigError(f"{source}: model_type={mt!r} is not a {cls.LABEL} model; supported: "
                              f"{', '.join(cls.MODEL_TYPES)}")
        cls._refuse(d, source)
        kw = {f.name: d[f.name] for f in fields(cls) if f.name in d and f.name not in _SPECIAL}
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
        for key in ("rms_norm_eps", "rope_theta"):
            if key in kw and isinstance(kw[key], str):
                raise ConfigError(f"{source}: {key}={kw[key]!r}; must be a number")
        if mt == "qwen2":
            kw["attention_bias"] = True  # Qwen2's q/k/v projections always carry biases
        kw["model_type"] = mt
        kw.update(cls._features(d, source, kw))
        ctx = n_positions if n_positions is not None else min(kw["max_position_embeddings"], 1024)
        try:
            return cls(n_positions=ctx, **kw)
        except ConfigError as exc:  # name the file: "<source>: field=..."
            raise ConfigError(f"{source}: {str(exc).removeprefix('model config: ')}") from None

    # ---------------------------------------------------------------- reading a Hugging Face config

    @classmethod
    def _refuse(cls, d: dict, source: str) -> None:
        """What no member of the family builds, one line naming the field."""
        act = d.get("hidden_act", "silu")
        if act != "silu":
            raise ConfigError(f"{source}: hidden_act={act!r} is not supported; allowed: 'silu'")
        for moe in ("num_local_experts", "num_experts", "num_experts_per_tok", "moe_intermediate_size"):
            if d.get(moe):
                raise ConfigError(f"{source}: {moe}={d[moe]!r}: mixture-of-experts models are not supported")
        if d.get("mlp_bias"):
            raise ConfigError(f"{source}: mlp_bias=true is not supported; allowed: false")
        if d.get("pretraining_tp", 1) not in (1, None):
            raise ConfigError(f"{source}: pretraining_tp={d['pretraining_tp']!r} is not supported; allowed: 1")
        prf = d.get("partial_rotary_factor")
        if prf not in (None, 1, 1.0):
            raise ConfigError(f"{source}: partial_rotary_factor={prf!r} is not supported here; allowed: 1")

    @classmethod
    def _features(cls, d: dict, source: str, kw: dict) -> dict:
        """The rotary embedding and the windows of a Hugging Face config (fields of ``cls``)."""
        rotary = read_rotary(d, source, kw.get("rope_theta", 10000.0), kw["max_position_embeddings"])
        out = {"rope_theta": rotary.rope_theta, "rope_scaling": None if rotary.rope_type == "default" else rotary}
        out.update(read_windows(d, source, kw["model_type"], kw["num_hidden_layers"]))
        return out

    # ---------------------------------------------------------------- what the shared decoder reads

    #: per-head RMSNorm of q and k before RoPE (Qwen3, Gemma 3)
    qk_norm = False
    #: RMSNorm after attention and after the MLP too, before each residual sum (Gemma 2 and 3)
    post_norms = False
    #: RMSNorm gains are ``norm_offset + w`` (Gemma: 1 + w)
    norm_offset = 0.0
    #: the gate's activation: ``silu`` or ``gelu_tanh`` (GeGLU)
    activation = "silu"

    @property
    def o_bias(self) -> bool:
        """The attention output projection carries a bias (Qwen2's never does)."""
        return self.attention_bias and self.model_type != "qwen2"

    @property
    def embed_scale(self) -> float:
        """The factor on the token embeddings (Gemma: sqrt(hidden_size))."""
        return 1.0

    @property
    def attn_divisor(self) -> float:
        """q·k is divided by it before the softmax (sqrt(head_dim); Gemma 2/3: sqrt(query_pre_attn_scalar))."""
        return math.sqrt(self.head_dim)

    @property
    def attn_softcap(self) -> float | None:
        """Attention scores soft-capped as ``cap tanh(s / cap)`` (None: not capped)."""
        return None

    @property
    def final_softcap(self) -> float | None:
        """Logits soft-capped as ``cap tanh(z / cap)`` (None: not capped)."""
        return None

    @property
    def rotary(self) -> Rotary:
        """The rotary embedding (plain RoPE of base ``rope_theta`` unless ``rope_scaling``)."""
        return self.rope_scaling if self.rope_scaling is not None else Rotary(float(self.rope_theta))

    def rotary_of(self, layer: int) -> Rotary:
        """The rotary embedding of layer ``layer`` (Gemma 3's local layers have their own base)."""
        return self.rotary

    def window(self, layer: int) -> int:
        """The keys layer ``layer`` attends to, the last ones up to its own position (0: all)."""
        if self.sliding_window is None or self.layer_types is None or self.layer_types[layer] != LAYER_TYPES[1]:
            return 0
        return self.sliding_window


def read_rotary(d: dict, source: str, theta, max_positions) -> Rotary:
    """The rotary embedding of a config dict: ``rope_scaling`` (older transformers) or
    ``rope_parameters`` (newer), either holding the type and its parameters."""
    found = None
    for key in ("rope_scaling", "rope_parameters"):
        params = d.get(key)
        if params in (None, {}):
            continue
        rot = Rotary.from_hf(params, theta, max_positions, source, key)
        if found is not None and rot != found:
            raise ConfigError(f"{source}: rope_scaling and rope_parameters disagree ({found.rope_type} vs "
                              f"{rot.rope_type}); give one")
        found = rot
    return found if found is not None else Rotary.from_hf(None, theta, max_positions, source)


def read_windows(d: dict, source: str, model_type: str, n_layers: int) -> dict:
    """``sliding_window`` and ``layer_types`` as transformers applies them: Mistral's window on
    every layer; Qwen2's (with ``use_sliding_window``) on the layers from ``max_window_layers``
    on, or on those ``layer_types`` names; Llama reads neither."""
    window = d.get("sliding_window")
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
        raise ConfigError(f"{source}: sliding_window={window!r}; must be a positive integer or null")
    types = d.get("layer_types")
    if model_type in ("llama", "mistral"):
        if types and any(t != LAYER_TYPES[0] for t in types):
            raise ConfigError(f"{source}: layer_types holds {sorted(set(types))}; a {model_type} model has no "
                              "per-layer attention types (only 'full_attention'; Mistral's sliding_window applies "
                              "to every layer)")
        if model_type == "llama" or window is None:
            return {"sliding_window": None, "layer_types": None}
        return {"sliding_window": window, "layer_types": (LAYER_TYPES[1],) * n_layers}
    if not d.get("use_sliding_window", False) or window is None:
        return {"sliding_window": None, "layer_types": None}
    if types is None:
        first = d.get("max_window_layers", 28)
        if isinstance(first, bool) or not isinstance(first, int) or first < 0:
            raise ConfigError(f"{source}: max_window_layers={first!r}; must be an integer >= 0")
        types = [LAYER_TYPES[i >= first] for i in range(n_layers)]
    return {"sliding_window": window, "layer_types": check_layer_types(types, source, n_layers)}


def check_layer_types(types, source: str, n_layers: int) -> tuple:
    if not isinstance(types, (list, tuple)) or len(types) != n_layers or any(t not in LAYER_TYPES for t in types):
        raise ConfigError(f"{source}: layer_types={types!r}; must list {n_layers} of {', '.join(LAYER_TYPES)}")
    return tuple(types)
