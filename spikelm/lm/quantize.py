"""Quantizers, fixed-point rescaling and token checks: what every family's converter shares.

Round half up everywhere: ``code = clamp(floor(x / s + 1/2), q_min, q_max)``.

- Weights: per output channel, symmetric: :func:`weight_codes` (int8, ``s_w[c] = max_j
  |W[j, c]| / 127``), or :func:`folded_weight_codes`, which folds the input's per-channel
  scales into the codes first and takes any width up to 16 bits.
- Activations: a scale per tensor or per channel from a float forward pass over calibration
  tokens (each family's ``calibrate``), signed codes in [-(2^(b-1) - 1), 2^(b-1) - 1], or,
  for attention probabilities, unsigned codes in [0, 2^b - 1] with the fixed scale 1 / (2^b - 1).
- Rescaling an integer accumulator to the next code: a fixed-point multiplier
  ``M = round(m 2^k)`` (:func:`fixed_point`), so the quantized model is integer arithmetic
  except the operators built from floats at conversion (norms, tables, RoPE, softmax).
"""

from __future__ import annotations

import math

import numpy as np

from spikelm.errors import ConfigError

MIN_CALIBRATION_TOKENS = 8
_SCALE_FLOOR = 1e-6


def round_half_up(x):
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5)


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
