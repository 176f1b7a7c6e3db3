"""The float GPT-2 forward in NumPy (float64): what the quantized model is measured against, and
the pass that calibrates it.

Per layer (Hugging Face's names, ``x @ W + b`` with W [in, out])::

    h = LayerNorm(x) ; q, k, v = h W_attn + b_attn ; a = softmax(q k^T / sqrt(head_dim), causal)
    x = x + (a v) W_proj + b ; h = LayerNorm(x) ; x = x + act(h W_fc + b_fc) W_proj2 + b

with learned positions added to the token embedding, then the final LayerNorm and the head.
``record`` collects max |x| at every quantizer point, named as the graph's populations.
"""

from __future__ import annotations

import math

import numpy as np

from spikelm.errors import ConfigError
from spikelm.lm.quantize import MIN_CALIBRATION_TOKENS, check_tokens
from spikelm.lm.torch_optional import matmul, torch


def gelu(x, kind: str):
    """The GELU variants of GPT-2 (works on torch tensors and numpy arrays)."""
    is_tensor = torch is not None and isinstance(x, torch.Tensor)
    if kind == "gelu":
        if is_tensor:
            return torch.nn.functional.gelu(x)
        return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))
    tanh = torch.tanh if is_tensor else np.tanh
    return 0.5 * x * (1.0 + tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _layernorm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def float_forward(cfg, params: dict, ids: np.ndarray, record: dict | None = None) -> np.ndarray:
    """Float64 logits [L, vocab] of one sequence; ``record`` collects max |x| per quantizer point."""

    def seen(name, x):
        if record is not None:
            record[name] = max(record.get(name, 0.0), float(np.abs(x).max()))
        return x

    P = params
    L, d, H, dh = len(ids), cfg.n_embd, cfg.n_head, cfg.head_dim
    x = seen("emb", P["transformer.wte.weight"][ids] + P["transformer.wpe.weight"][:L])
    mask = np.tril(np.ones((L, L), dtype=bool))
    for i in range(cfg.n_layer):
        p, n = f"transformer.h.{i}.", f"h{i}."
        h = seen(n + "ln1", _layernorm(x, P[p + "ln_1.weight"], P[p + "ln_1.bias"], cfg.layer_norm_epsilon))
        qkv = matmul(h, P[p + "attn.c_attn.weight"]) + P[p + "attn.c_attn.bias"]
        q, k, v = (seen(n + nm, qkv[:, j * d : (j + 1) * d]) for j, nm in enumerate("qkv"))
        q, k, v = (t.reshape(L, H, dh).transpose(1, 0, 2) for t in (q, k, v))
        s = np.where(mask, matmul(q, k.transpose(0, 2, 1)) / math.sqrt(dh), -np.inf)
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        o = seen(n + "ctx", matmul(a, v).transpose(1, 0, 2).reshape(L, d))
        y = seen(n + "proj", matmul(o, P[p + "attn.c_proj.weight"]) + P[p + "attn.c_proj.bias"])
        x = seen(n + "res1", x + y)
        h = seen(n + "ln2", _layernorm(x, P[p + "ln_2.weight"], P[p + "ln_2.bias"], cfg.layer_norm_epsilon))
        f = seen(n + "fc", matmul(h, P[p + "mlp.c_fc.weight"]) + P[p + "mlp.c_fc.bias"])
        g = seen(n + cfg.ACTIVATION_POINT, cfg.activation(f))
        y = seen(n + "fc2", matmul(g, P[p + "mlp.c_proj.weight"]) + P[p + "mlp.c_proj.bias"])
        x = seen(n + "res2", x + y)
    h = seen("lnf", _layernorm(x, P["transformer.ln_f.weight"], P["transformer.ln_f.bias"], cfg.layer_norm_epsilon))
    return matmul(h, head_weight(cfg, P).T)


def head_weight(cfg, params: dict) -> np.ndarray:
    return params["transformer.wte.weight"] if cfg.tie_word_embeddings else params["lm_head.weight"]


def calibrate(cfg, params: dict, calibration) -> dict[str, float]:
    """Max |x| at every quantizer point over the calibration tokens (in context-sized chunks)."""
    ids = check_tokens(calibration, cfg.vocab_size, "calibration")
    if ids.size < MIN_CALIBRATION_TOKENS:
        raise ConfigError(
            f"calibration: {ids.size} tokens are too few; give at least {MIN_CALIBRATION_TOKENS}"
        )
    record: dict[str, float] = {}
    for s in range(0, ids.size, cfg.n_positions):
        float_forward(cfg, params, ids[s : s + cfg.n_positions], record)
    return record
