"""The float forward of Llama-family decoders (Llama, Qwen2, Mistral, SmolLM2), NumPy float64.

It is the model the quantized one is measured against and the pass that calibrates the
quantizer. Parameter names are Hugging Face's
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

import numpy as np

from spikelm.lm.torch_optional import matmul


def head_weight(cfg, params: dict) -> np.ndarray:
    return params["model.embed_tokens.weight"] if cfg.tie_word_embeddings else params["lm_head.weight"]


def rope_tables(cfg, n_positions: int) -> tuple[np.ndarray, np.ndarray]:
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
    with np.errstate(over="ignore"):  # exp(-x) = inf for x < -709: x / inf = -0, SiLU's limit
        return x / (1.0 + np.exp(-x))


def float_forward(cfg, params: dict, ids: np.ndarray, record=None, skip: int = 0) -> np.ndarray:
    """Float64 logits [L, vocab] of one sequence.

    ``record(name, x)`` is called with every quantizer point's values [L, ...] (rows from
    ``skip`` on: positions left out of calibration), named as the graph's populations.
    """
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
            y = matmul(h, P[p + name + ".weight"].T)
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
        s = np.where(mask, matmul(q, k.transpose(0, 2, 1)) / math.sqrt(dh), -np.inf)
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        o = seen(n + "ctx", matmul(a, v).transpose(1, 0, 2).reshape(L, H * dh))
        x = seen(n + "res1", x + seen(n + "o", lin(o, "self_attn.o_proj")))
        h = seen(n + "norm2", rmsnorm(x, P[p + "post_attention_layernorm.weight"], eps))
        g = seen(n + "gate", lin(h, "mlp.gate_proj"))
        u = seen(n + "up", lin(h, "mlp.up_proj"))
        sg = seen(n + "silu", silu(g))
        act = seen(n + "act", sg * u)
        x = seen(n + "res2", x + seen(n + "down", lin(act, "mlp.down_proj")))
    h = seen("normf", rmsnorm(x, P["model.norm.weight"], eps))
    return matmul(h, head_weight(cfg, P).T)
