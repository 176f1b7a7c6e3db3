"""Quantizers and calibration.

Round half up everywhere: ``code = clamp(floor(x / s + 1/2), q_min, q_max)``.

- Weights: int8 codes per output channel, symmetric, ``s_w[c] = max_j |W[j, c]| / 127``,
  codes in [-127, 127].
- Activations: per-tensor scales ``s = max |x| / q_max`` from a float forward pass over the
  calibration tokens; signed codes in [-(2^(b-1) - 1), 2^(b-1) - 1], or, for the attention
  probabilities, unsigned codes in [0, 2^b - 1] with the fixed scale 1 / (2^b - 1).
- Rescaling an integer accumulator to the next code uses a fixed-point multiplier
  ``M = round(m 2^k)`` (see :func:`fixed_point`), so the whole quantized model is integer
  arithmetic except the LayerNorm and the table lookups built from floats at conversion.
"""

from __future__ import annotations

import math

import numpy as np

from spikelm.errors import ConfigError
from spikelm.lm.gpt import GPTConfig, gelu

MIN_CALIBRATION_TOKENS = 8
_SCALE_FLOOR = 1e-6


def round_half_up(x):
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5)


def signed_range(bits: int) -> tuple[int, int]:
    q = 2 ** (bits - 1) - 1
    return -q, q


def unsigned_range(bits: int) -> tuple[int, int]:
    return 0, 2**bits - 1


def check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= int(bits) <= 8:
        raise ConfigError(f"bits={bits!r}; allowed: an integer from 2 to 8")
    return int(bits)


def quantize(x, scale, qmin: int, qmax: int) -> np.ndarray:
    """Round-half-up codes of ``x / scale``, clamped; int64."""
    return np.clip(round_half_up(np.asarray(x) / scale), qmin, qmax).astype(np.int64)


def weight_codes(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel int8 codes of ``w`` [n_in, n_out]; returns (codes, scales [n_out])."""
    s = np.maximum(np.abs(w).max(axis=0), _SCALE_FLOOR) / 127.0
    return quantize(w, s[None, :], -127, 127).astype(np.int8), s


def folded_weight_codes(w: np.ndarray, s_in, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel codes of ``w`` [n_in, n_out] with the input's scales folded in.

    The input of a linear layer arrives as codes x_j of scale s_in[j] (a scalar or one per
    input channel), so ``sum_j x_j s_in[j] w[j, c] = s_w[c] sum_j x_j W[j, c]`` with
    ``W = round(s_in[j] w[j, c] / s_w[c])``, ``s_w[c] = max_j |s_in[j] w[j, c]| / (2^(bits-1) - 1)``.
    Returns (codes int8 up to 8 bits, else int16; s_w [n_out]).
    """
    q = 2 ** (bits - 1) - 1
    wf = np.asarray(w, dtype=np.float64) * np.broadcast_to(np.asarray(s_in, dtype=np.float64), (w.shape[0],))[:, None]
    s = np.maximum(np.abs(wf).max(axis=0), 1e-30) / q
    codes = quantize(wf, s[None, :], -q, q)
    return codes.astype(np.int8 if bits <= 8 else np.int16), s


def fixed_point(m: np.ndarray, acc_bound: float, what: str) -> tuple[np.ndarray, int]:
    """Integer multipliers ``M = round(m 2^k)`` with ``k`` chosen so that |acc| M < 2^58.

    The largest M gets about 30 significant bits (k at most 40); where the accumulator bound
    leaves less room, k shrinks, down to 16 significant bits for the largest multiplier."""
    m = np.asarray(m, dtype=np.float64)
    top = float(np.abs(m).max()) if m.size else 1.0
    k = 40 if top == 0 else min(40, 30 - math.ceil(math.log2(top)))
    k = max(k, 0)
    M = round_half_up(m * 2.0**k).astype(np.int64)
    while k > 0 and float(np.abs(M).max(initial=0)) * acc_bound >= 2.0**58 and top * 2.0 ** (k - 1) >= 2.0**16:
        k -= 1
        M = round_half_up(m * 2.0**k).astype(np.int64)
    if float(np.abs(M).max(initial=0)) * acc_bound >= 2.0**58:
        raise ConfigError(f"{what}: rescale factor {top:.3g} is too large for exact 64-bit arithmetic")
    return M, k


def check_tokens(ids, vocab_size: int, what: str, n_positions: int | None = None) -> np.ndarray:
    """1-D int64 token ids within the vocabulary (and the context, when given)."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ConfigError(f"{what}: token ids must be a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise ConfigError(f"{what}: token ids are empty")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(f"{what}: token ids must be integers, got dtype {arr.dtype}")
    bad = arr[(arr < 0) | (arr >= vocab_size)]
    if bad.size:
        raise ConfigError(f"{what}: token id {int(bad[0])} is outside the vocabulary [0, {vocab_size})")
    if n_positions is not None and arr.size > n_positions:
        raise ConfigError(f"{what}: {arr.size} tokens exceed the model's context of {n_positions}")
    return arr.astype(np.int64)


# ---------------------------------------------------------------- float forward (numpy)


def _mm(a, b):
    """float64 matmul through torch on one thread (a multi-threaded BLAS can stall badly on a
    shared machine; these products are small); NumPy's when torch is not installed (integer
    products below 2^53 are exact either way)."""
    from spikelm.lm.gpt import torch

    if torch is None:
        return np.asarray(a, dtype=np.float64) @ np.asarray(b, dtype=np.float64)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return (torch.from_numpy(np.ascontiguousarray(a)) @ torch.from_numpy(np.ascontiguousarray(b))).numpy()
    finally:
        torch.set_num_threads(n)


def _layernorm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def float_forward(cfg: GPTConfig, params: dict, ids: np.ndarray, record: dict | None = None) -> np.ndarray:
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
        qkv = _mm(h, P[p + "attn.c_attn.weight"]) + P[p + "attn.c_attn.bias"]
        q, k, v = (seen(n + nm, qkv[:, j * d : (j + 1) * d]) for j, nm in enumerate("qkv"))
        q, k, v = (t.reshape(L, H, dh).transpose(1, 0, 2) for t in (q, k, v))
        s = np.where(mask, _mm(q, k.transpose(0, 2, 1)) / math.sqrt(dh), -np.inf)
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        o = seen(n + "ctx", _mm(a, v).transpose(1, 0, 2).reshape(L, d))
        y = seen(n + "proj", _mm(o, P[p + "attn.c_proj.weight"]) + P[p + "attn.c_proj.bias"])
        x = seen(n + "res1", x + y)
        h = seen(n + "ln2", _layernorm(x, P[p + "ln_2.weight"], P[p + "ln_2.bias"], cfg.layer_norm_epsilon))
        f = seen(n + "fc", _mm(h, P[p + "mlp.c_fc.weight"]) + P[p + "mlp.c_fc.bias"])
        g = seen(n + "gelu", gelu(f, cfg.activation_function))
        y = seen(n + "fc2", _mm(g, P[p + "mlp.c_proj.weight"]) + P[p + "mlp.c_proj.bias"])
        x = seen(n + "res2", x + y)
    h = seen("lnf", _layernorm(x, P["transformer.ln_f.weight"], P["transformer.ln_f.bias"], cfg.layer_norm_epsilon))
    return _mm(h, head_weight(cfg, P).T)


def head_weight(cfg: GPTConfig, params: dict) -> np.ndarray:
    return params["transformer.wte.weight"] if cfg.tie_word_embeddings else params["lm_head.weight"]


def calibrate(cfg: GPTConfig, params: dict, calibration) -> dict[str, float]:
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
