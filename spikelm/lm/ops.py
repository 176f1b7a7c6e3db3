"""Operators on integer codes (NumPy). The dense reference and the NumPy simulator call these;
the Numba kernels in :mod:`spikelm.lm.kernels` do the same operations in the same order, so
all executors agree bit for bit.

Floats appear only in elementwise IEEE operations (+, -, *, /, sqrt, floor) whose results do
not depend on vectorisation; every reduction is over integers, hence exact.
"""

from __future__ import annotations

import numpy as np


def requantize(acc, gain, offset, shift: int, qmin: int, qmax: int) -> np.ndarray:
    """Code of a neuron with potential (acc gain + offset) / 2^shift: clamp(floor(V + 1/2))."""
    u = np.asarray(acc, dtype=np.int64) * gain + offset
    T = np.int64(1) << np.int64(shift)
    return np.clip((2 * u + T) // (2 * T), qmin, qmax)


def layernorm(x, gain, bias, eps_term: float, qmin: int, qmax: int) -> np.ndarray:
    """LayerNorm codes of integer codes ``x`` [..., d]; mean and variance from exact integer sums.

    y_c = (d x_c - S1) / sqrt(d S2 - S1^2 + d^2 eps / s_in^2) * gain_c + bias_c, gain = gamma / s_out.
    """
    x = np.asarray(x, dtype=np.int64)
    d = x.shape[-1]
    s1 = x.sum(-1, keepdims=True)
    s2 = (x * x).sum(-1, keepdims=True)
    denom = np.sqrt((d * s2 - s1 * s1).astype(np.float64) + eps_term)
    y = ((d * x - s1).astype(np.float64) / denom) * gain + bias
    return np.clip(np.floor(y + 0.5), qmin, qmax).astype(np.int64)


def residual(a, b, gain, shift: int, qmin: int, qmax: int) -> np.ndarray:
    """Fixed-point sum of two code tensors: clamp(floor((a M_a + b M_b) / 2^k + 1/2))."""
    u = np.asarray(a, dtype=np.int64) * gain[0] + np.asarray(b, dtype=np.int64) * gain[1]
    return np.clip((u + (np.int64(1) << np.int64(shift) >> 1)) >> np.int64(shift), qmin, qmax)


def gelu(x, lut, qmin: int) -> np.ndarray:
    return lut[np.asarray(x, dtype=np.int64) - qmin]


def softmax(scores, allowed, hi, lo, shift: int, qmax: int) -> np.ndarray:
    """Probability codes of integer scores [..., n] where ``allowed`` (the causal mask).

    E_j = floor(exp(-c (max S - S_j)) 2^40 + 1/2) from two tables, code_j = round(E_j qmax / sum E).
    """
    S = np.asarray(scores, dtype=np.int64)
    m = np.where(allowed, S, np.iinfo(np.int64).min).max(-1, keepdims=True)
    dist = np.where(allowed, m - S, 0)
    h = dist >> np.int64(shift)
    inside = allowed & (h < hi.shape[0])
    h = np.where(inside, h, 0)
    E = np.floor(hi[h] * lo[dist & ((np.int64(1) << np.int64(shift)) - 1)] + 0.5).astype(np.int64)
    E = np.where(inside, E, 0)
    Z = E.sum(-1, keepdims=True)
    return (2 * E * qmax + Z) // (2 * Z)


def embed(wte_rows, wpe_rows, scale: float, qmin: int, qmax: int) -> np.ndarray:
    """Codes of token + position embeddings (the stimulus of position neurons)."""
    y = (wte_rows + wpe_rows) / scale
    return np.clip(np.floor(y + 0.5), qmin, qmax).astype(np.int64)


def logits(acc, head_scale, head_bias) -> np.ndarray:
    """Logits read from the LM head's integer accumulators."""
    return np.asarray(acc, dtype=np.float64) * head_scale + head_bias
