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


#: integer weights are stored in int16 at most: a row exponent may shift a code up to here
WEIGHT_LIMIT_BITS = 16
#: weights folded per block of columns (float64 temporaries of 16 MB)
FOLD_BLOCK = 2**21


def folded_weight_codes(w: np.ndarray, s_in, bits: int, row_exponents: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel codes of ``w`` [n_in, n_out] with the input's scales folded in.

    The input of a linear layer arrives as codes x_j of scale s_in[j] (a scalar or one per
    input channel), so ``sum_j x_j s_in[j] w[j, c] = s_w[c] sum_j x_j W[j, c]`` with
    ``W = round(s_in[j] w[j, c] / s_w[c])``, ``s_w[c] = max_j |s_in[j] w[j, c]| / (2^(bits-1) - 1)``.
    Returns (codes int8 up to 8 bits, else int16; s_w [n_out]).

    ``row_exponents`` (the ``row-exponents`` method): folding spreads a column over the input
    scales, and one large row sets the step of every other; instead each input row j gets an
    exponent e_j (0 to 16 - bits) and its weights keep ``bits`` significant bits at the finer
    step s_w[c] / 2^e_j: ``W[j, c] = round(s_in[j] w[j, c] 2^e_j / s0[c]) 2^(E - e_j)`` in units of
    ``s_w[c] = s0[c] / 2^E`` (E the largest exponent): codes of ``bits`` bits times a per-row
    shift, stored in int16. e_j is the largest exponent that keeps row j's codes in range.
    """
    q = 2 ** (bits - 1) - 1
    n_in, n_out = w.shape
    s_rows = np.broadcast_to(np.asarray(s_in, dtype=np.float64), (n_in,))[:, None]
    # column blocks of about FOLD_BLOCK values: every step below is elementwise or a max, so the
    # blocks give the codes of one whole-matrix pass while float64 temporaries stay small
    step = max(1, FOLD_BLOCK // max(n_in, 1))
    blocks = [slice(lo, lo + step) for lo in range(0, n_out, step)]

    def folded(c):  # s_in[j] w[j, c] in float64 (w may be float32: the upcast is exact)
        return np.asarray(w[:, c], dtype=np.float64) * s_rows

    s = np.concatenate([np.abs(folded(c)).max(axis=0) for c in blocks]) if n_out else np.zeros(0)
    s = np.maximum(s, 1e-30) / q
    if not row_exponents or bits >= WEIGHT_LIMIT_BITS:
        codes = np.empty((n_in, n_out), np.int8 if bits <= 8 else np.int16)
        for c in blocks:
            codes[:, c] = quantize(folded(c), s[None, c], -q, q)
        return codes, s
    # the largest code of each row at the column steps, then the shift that keeps it within q
    top = np.zeros(n_in)
    for c in blocks:
        top = np.maximum(top, (np.abs(folded(c)) / s[None, c]).max(axis=1))
    with np.errstate(divide="ignore"):
        e = np.floor(np.log2(q / np.maximum(top, 1e-300)))
    e = np.clip(e, 0, WEIGHT_LIMIT_BITS - bits).astype(np.int64)
    E = int(e.max(initial=0))
    codes = np.empty((n_in, n_out), np.int8 if E == 0 and bits <= 8 else np.int16)
    for c in blocks:
        mant = quantize(folded(c) * (2.0 ** e)[:, None], s[None, c], -q, q)
        codes[:, c] = mant << (E - e)[:, None]
    return codes, s / 2.0**E


#: |acc| M stays below 2^ACC_BITS (the neuron doubles acc M + B and adds 2^k in int64)
ACC_BITS = 58
#: the fewest significant bits a multiplier keeps before a rescaling is refused
MIN_MULTIPLIER_BITS = 16


def fixed_point(m: np.ndarray, acc_bound: float, what: str, settings: str = "") -> tuple[np.ndarray, int]:
    """Integer multipliers ``M = round(m 2^k)`` with ``k`` chosen so that |acc| M < 2^58.

    The largest M gets about 30 significant bits (k at most 40); where the accumulator bound
    leaves less room, k shrinks, down to 16 significant bits for the largest multiplier. An
    accumulator too wide even for that is refused in one line naming ``what`` and the
    ``settings`` that widen it (e.g. ``"--bits lin (8), --clamp lin (32) or --weight-bits (12)"``)."""
    m = np.asarray(m, dtype=np.float64)
    top = float(np.abs(m).max()) if m.size else 1.0
    k = 40 if top == 0 else min(40, 30 - math.ceil(math.log2(top)))
    k = max(k, 0)
    M = round_half_up(m * 2.0**k).astype(np.int64)
    while k > 0 and float(np.abs(M).max(initial=0)) * acc_bound >= 2.0**ACC_BITS \
            and top * 2.0 ** (k - 1) >= 2.0**MIN_MULTIPLIER_BITS:
        k -= 1
        M = round_half_up(m * 2.0**k).astype(np.int64)
    if float(np.abs(M).max(initial=0)) * acc_bound >= 2.0**ACC_BITS:
        room = ACC_BITS - MIN_MULTIPLIER_BITS
        over = max(1, math.ceil(math.log2(max(acc_bound, 1.0)) - room))
        hint = f"; lower {settings} by {over} bit{'s' if over > 1 else ''} in all" if settings else ""
        raise ConfigError(f"{what}: its accumulator can reach 2^{math.log2(max(acc_bound, 1.0)):.1f}, too wide to "
                          f"rescale exactly in 64-bit integers (at most 2^{room}){hint}")
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
