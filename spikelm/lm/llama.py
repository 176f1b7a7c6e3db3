"""Llama-family decoders (Llama, Qwen2, Mistral, SmolLM2): configuration and float forward.

The float forward (NumPy, float64) is the model the quantized one is measured against and
the pass that calibrates the quantizer. Parameter names are Hugging Face's
(``model.layers.0.self_attn.q_proj.weight`` [out, in], ``model.norm.weight``, ...).

Per layer::

    h = RMSNorm(x) ; q, k, v = h Wq (+bq), h Wk (+bk), h Wv (+bv)       (Qwen2 has the biases)
    q, k = RoPE(q, n), RoPE(k, n)                                         (rotate_half convention)
    a = softmax(q k^T / sqrt(head_dim), causal), key/value head g(h) = h // (heads / kv_heads)
    x = x + (a v) Wo ; h = RMSNorm(x) ; x = x + (silu(h Wg) * (h Wu)) Wd

then the final RMSNorm and the head (tied to the embedding or its own ``lm_head``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from spikelm.errors import ConfigError

FAMILIES = ("llama", "qwen2", "mistral")
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

    # the names the rest of lm/ shares with GPTConfig
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
        if not isinstance(mt, str) or mt not in FAMILIES:
            raise ConfigError(f"{source}: model_type={mt!r} is not a Llama-family model; supported: "
                              f"{', '.join(FAMILIES)} (and gpt2)")
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


def expected_shapes(cfg: LlamaConfig) -> dict[str, tuple[int, ...]]:
    d, f, V = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    qd, kd = cfg.num_attention_heads * cfg.head_dim, cfg.num_key_value_heads * cfg.head_dim
    shapes = {"model.embed_tokens.weight": (V, d), "model.norm.weight": (d,)}
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (d,), p + "post_attention_layernorm.weight": (d,),
            p + "self_attn.q_proj.weight": (qd, d), p + "self_attn.k_proj.weight": (kd, d),
            p + "self_attn.v_proj.weight": (kd, d), p + "self_attn.o_proj.weight": (d, qd),
            p + "mlp.gate_proj.weight": (f, d), p + "mlp.up_proj.weight": (f, d), p + "mlp.down_proj.weight": (d, f),
        })
        if cfg.attention_bias:
            shapes.update({p + "self_attn.q_proj.bias": (qd,), p + "self_attn.k_proj.bias": (kd,),
                           p + "self_attn.v_proj.bias": (kd,)})
    if not cfg.tie_word_embeddings:
        shapes["lm_head.weight"] = (V, d)
    return shapes


def head_weight(cfg: LlamaConfig, params: dict) -> np.ndarray:
    return params["model.embed_tokens.weight"] if cfg.tie_word_embeddings else params["lm_head.weight"]


def rope_tables(cfg: LlamaConfig, n_positions: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin [n_positions, head_dim / 2] of the rotation angles n / theta^(2i / head_dim)."""
    half = cfg.head_dim // 2
    inv = 1.0 / (cfg.rope_theta ** (np.arange(half, dtype=np.float64) * 2 / cfg.head_dim))
    ang = np.arange(n_positions, dtype=np.float64)[:, None] * inv[None, :]
    return np.cos(ang), np.sin(ang)


def rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotate [L, heads, head_dim] by the rows of cos/sin [L, head_dim / 2] (rotate_half pairs i, i + dh/2)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    c, s = cos[:, None, :], sin[:, None, :]
    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)


def rmsnorm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def silu(x):
    return x / (1.0 + np.exp(-x))


def float_forward(cfg: LlamaConfig, params: dict, ids: np.ndarray, record=None, skip: int = 0) -> np.ndarray:
    """Float64 logits [L, vocab] of one sequence.

    ``record(name, x)`` is called with every quantizer point's values [L, ...] (rows from
    ``skip`` on: positions left out of calibration), named as the graph's populations.
    """
    from spikelm.lm.quantize import _mm

    def seen(name, x):
        if record is not None:
            record(name, x[skip:])
        return x

    P = params
    L, H, G, dh = len(ids), cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    grp = H // G
    cos, sin = rope_tables(cfg, L)
    eps = cfg.rms_norm_eps
    x = seen("emb", P["model.embed_tokens.weight"][ids])
    mask = np.tril(np.ones((L, L), dtype=bool))
    for i in range(cfg.num_hidden_layers):
        p, n = f"model.layers.{i}.", f"h{i}."

        def lin(h, name, bias=False):
            y = _mm(h, P[p + name + ".weight"].T)
            return y + P[p + name + ".bias"] if bias else y

        h = seen(n + "norm1", rmsnorm(x, P[p + "input_layernorm.weight"], eps))
        b = cfg.attention_bias
        q = seen(n + "q", lin(h, "self_attn.q_proj", b)).reshape(L, H, dh)
        k = seen(n + "k", lin(h, "self_attn.k_proj", b)).reshape(L, G, dh)
        v = seen(n + "v", lin(h, "self_attn.v_proj", b)).reshape(L, G, dh)
        q = seen(n + "qr", rope(q, cos, sin).reshape(L, H * dh)).reshape(L, H, dh).transpose(1, 0, 2)
        k = seen(n + "kr", rope(k, cos, sin).reshape(L, G * dh)).reshape(L, G, dh).transpose(1, 0, 2)
        v = v.transpose(1, 0, 2)
        k, v = k[np.arange(H) // grp], v[np.arange(H) // grp]
        s = np.where(mask, _mm(q, k.transpose(0, 2, 1)) / math.sqrt(dh), -np.inf)
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        o = seen(n + "ctx", _mm(a, v).transpose(1, 0, 2).reshape(L, H * dh))
        x = seen(n + "res1", x + seen(n + "o", lin(o, "self_attn.o_proj")))
        h = seen(n + "norm2", rmsnorm(x, P[p + "post_attention_layernorm.weight"], eps))
        g = seen(n + "gate", lin(h, "mlp.gate_proj"))
        u = seen(n + "up", lin(h, "mlp.up_proj"))
        sg = seen(n + "silu", silu(g))
        act = seen(n + "act", sg * u)
        x = seen(n + "res2", x + seen(n + "down", lin(act, "mlp.down_proj")))
    h = seen("normf", rmsnorm(x, P["model.norm.weight"], eps))
    return _mm(h, head_weight(cfg, P).T)
