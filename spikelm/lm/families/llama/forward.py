"""The float forward of Llama-family decoders (Llama, Qwen2, Mistral, SmolLM2) and of the
families that vary them (Qwen3, Gemma 1-3), NumPy float64.

It is the model the quantized one is measured against and the pass that calibrates the
quantizer. Parameter names are Hugging Face's
(``model.layers.0.self_attn.q_proj.weight`` [out, in], ``model.norm.weight``, ...).

Per layer i (the config's hooks in brackets, :class:`~.config.LlamaConfig`)::

    h = RMSNorm(x) ; q, k, v = h Wq (+bq), h Wk (+bk), h Wv (+bv)     (biases: attention_bias)
    q, k = RMSNorm_head(q), RMSNorm_head(k)                            [qk_norm: per head, over head_dim]
    q, k = RoPE_i(q, n), RoPE_i(k, n)                                   [rotary_of(i): the scaled tables]
    s = q k^T / attn_divisor ; s = cap tanh(s / cap)                     [attn_softcap]
    a = softmax(s) over keys j with n - window(i) < j <= n              [window(i); 0: all j <= n]
    y = (a v) Wo (+bo) ; y = RMSNorm(y)                                 [o_bias; post_norms]
    x = x + y ; h = RMSNorm(x) ; y = (act(h Wg) * (h Wu)) Wd            [activation: silu or gelu_tanh]
    y = RMSNorm(y) ; x = x + y                                          [post_norms]

with key/value head g(h) = h // (heads / kv_heads), RMSNorm gains ``norm_offset + w``, the
embedding times ``embed_scale``; then the final RMSNorm, the head (tied to the embedding or its
own ``lm_head``) and the logits' soft-cap [final_softcap].
"""

from __future__ import annotations

import math

import numpy as np

from spikelm.lm.tensors import stored
from spikelm.lm.torch_optional import matmul

#: vocabulary rows of the head upcast to float64 at a time (the head is the largest tensor)
HEAD_CHUNK = 8192


def head_name(cfg) -> str:
    return "model.embed_tokens.weight" if cfg.tie_word_embeddings else "lm_head.weight"


def head_weight(cfg, params: dict) -> np.ndarray:
    return params[head_name(cfg)]


def head_logits(cfg, params: dict, h: np.ndarray) -> np.ndarray:
    """Logits [L, vocab] of the final norm's output ``h`` [L, d] (soft-capped), the head read
    HEAD_CHUNK rows at a time in float64 (each logit is the same dot product as in one product)."""
    W = stored(params, head_name(cfg))
    out = np.empty((h.shape[0], W.shape[0]), dtype=np.float64)
    for lo in range(0, W.shape[0], HEAD_CHUNK):
        out[:, lo : lo + HEAD_CHUNK] = matmul(h, np.ascontiguousarray(W[lo : lo + HEAD_CHUNK].T, dtype=np.float64))
    return softcap(out, cfg.final_softcap)


def rope_tables(cfg, n_positions: int, layer: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin [n_positions, head_dim / 2] of layer ``layer``'s rotation angles (its rotary
    embedding's frequencies, scaled: :mod:`spikelm.lm.families.rotary`)."""
    return cfg.rotary_of(layer).tables(cfg.head_dim, n_positions)


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


def gelu_tanh(x):
    """GELU in its tanh approximation (transformers' ``gelu_pytorch_tanh``)."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


#: the gate activations by the config's ``activation`` (also the population's name)
ACTIVATIONS = {"silu": silu, "gelu_tanh": gelu_tanh}
#: the activation's population name
ACT_POP = {"silu": "silu", "gelu_tanh": "gelu"}


def softcap(x, cap):
    """``cap tanh(x / cap)`` (x unchanged for cap None)."""
    return x if cap is None else cap * np.tanh(x / cap)


def attention_mask(L: int, window: int) -> np.ndarray:
    """[L, L] True where query n sees key j: j <= n, and n - window < j with a window."""
    n, j = np.arange(L)[:, None], np.arange(L)[None, :]
    return (j <= n) & ((n - j < window) if window else True)


def norm_weight(cfg, params: dict, name: str) -> np.ndarray:
    """An RMSNorm's gains: ``norm_offset + w`` (Gemma stores w - 1)."""
    return params[name] + cfg.norm_offset


def float_forward(cfg, params: dict, ids: np.ndarray, record=None, skip: int = 0,
                  logits: bool = True) -> np.ndarray | None:
    """Float64 logits [L, vocab] of one sequence (None with ``logits=False``: calibration
    needs the quantizer points alone, and the head's [L, vocab] product is then not made).

    ``record(name, x)`` is called with every quantizer point's values [L, ...] (rows from
    ``skip`` on: positions left out of calibration), named as the graph's populations.
    Parameters are read one tensor at a time as float64 (:class:`~spikelm.lm.tensors.Params`).
    """
    def seen(name, x):
        if record is not None:
            record(name, x[skip:])
        return x

    P = params
    L, H, G, dh = len(ids), cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    grp = H // G
    eps = cfg.rms_norm_eps
    act_fn, act_name = ACTIVATIONS[cfg.activation], ACT_POP[cfg.activation]
    x = seen("emb", stored(P, "model.embed_tokens.weight")[ids].astype(np.float64) * cfg.embed_scale)
    for i in range(cfg.num_hidden_layers):
        p, n = f"model.layers.{i}.", f"h{i}."
        cos, sin = rope_tables(cfg, L, i)
        mask = attention_mask(L, cfg.window(i))

        def lin(h, name, bias=False):
            # one copy makes the float64 transposed matrix the product reads (float32 stored)
            y = matmul(h, np.ascontiguousarray(stored(P, p + name + ".weight").T, dtype=np.float64))
            return y + P[p + name + ".bias"] if bias else y

        def norm(h, name):
            return rmsnorm(h, norm_weight(cfg, P, p + name + ".weight"), eps)

        h = seen(n + "norm1", norm(x, "input_layernorm"))
        b = cfg.attention_bias
        q = seen(n + "q", lin(h, "self_attn.q_proj", b)).reshape(L, H, dh)
        k = seen(n + "k", lin(h, "self_attn.k_proj", b)).reshape(L, G, dh)
        v = seen(n + "v", lin(h, "self_attn.v_proj", b)).reshape(L, G, dh)
        if cfg.qk_norm:
            q = seen(n + "qn", norm(q, "self_attn.q_norm").reshape(L, H * dh)).reshape(L, H, dh)
            k = seen(n + "kn", norm(k, "self_attn.k_norm").reshape(L, G * dh)).reshape(L, G, dh)
        q = seen(n + "qr", rope(q, cos, sin).reshape(L, H * dh)).reshape(L, H, dh).transpose(1, 0, 2)
        k = seen(n + "kr", rope(k, cos, sin).reshape(L, G * dh)).reshape(L, G, dh).transpose(1, 0, 2)
        v = v.transpose(1, 0, 2)
        k, v = k[np.arange(H) // grp], v[np.arange(H) // grp]
        # the softmax in place on the [heads, L, L] scores (the same operations as out of place,
        # without a fresh array per step: the calibration's largest arrays)
        s = matmul(q, k.transpose(0, 2, 1))
        s /= cfg.attn_divisor
        s = softcap(s, cfg.attn_softcap)
        np.copyto(s, -np.inf, where=~mask)
        s -= s.max(-1, keepdims=True)
        a = np.exp(s, out=s)
        a /= a.sum(-1, keepdims=True)
        o = seen(n + "ctx", matmul(a, v).transpose(1, 0, 2).reshape(L, H * dh))
        y = seen(n + "o", lin(o, "self_attn.o_proj", cfg.o_bias))
        if cfg.post_norms:
            y = seen(n + "onorm", norm(y, "post_attention_layernorm"))
        x = seen(n + "res1", x + y)
        h = seen(n + "norm2", norm(x, "pre_feedforward_layernorm" if cfg.post_norms else "post_attention_layernorm"))
        g = seen(n + "gate", lin(h, "mlp.gate_proj"))
        u = seen(n + "up", lin(h, "mlp.up_proj"))
        sg = seen(n + act_name, act_fn(g))
        act = seen(n + "act", sg * u)
        y = seen(n + "down", lin(act, "mlp.down_proj"))
        if cfg.post_norms:
            y = seen(n + "dnorm", norm(y, "post_feedforward_layernorm"))
        x = seen(n + "res2", x + y)
    h = seen("normf", rmsnorm(x, norm_weight(cfg, P, "model.norm.weight"), eps))
    return head_logits(cfg, P, h) if logits else None
