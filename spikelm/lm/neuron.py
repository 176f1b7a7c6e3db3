"""SignedIF: the integrate-and-fire quantizer neuron of converted models (integer form).

Potential V = (acc M + B) / 2^k with integer accumulator ``acc`` (no leak), integer gain
``M`` and offset ``B`` per neuron and a power-of-two unit ``2^k`` per population. The neuron
keeps a spike counter ``count`` in [q_min, q_max] and, at most once per step,

- fires +1 when V - count >= 1/2 and count < q_max,
- fires -1 when V - count < -1/2 and count > q_min.

Multiplying by 2^(k+1) makes both tests integer: with u = acc M + B and T = 2^k,
``2 (u - count T) >= T`` and ``2 (u - count T) < -T``. At quiescence
count = clamp(floor(V + 1/2), q_min, q_max) = :func:`spikelm.lm.ops.requantize`.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def signed_if_step(acc, count, gain, offset, shift: int, q_min: int, q_max: int):
    """One update of SignedIF neurons (NumPy reference). Returns (spikes int8, new count)."""
    T = np.int64(1) << np.int64(shift)
    r = 2 * (np.asarray(acc, dtype=np.int64) * gain + offset - np.asarray(count, dtype=np.int64) * T)
    spikes = np.where((r >= T) & (count < q_max), 1, np.where((r < -T) & (count > q_min), -1, 0))
    return spikes.astype(np.int8), (count + spikes).astype(np.asarray(count).dtype)


@njit(cache=True)
def signed_if_rule(r, count, unit, q_min, q_max):
    """The spike (+1, -1 or 0) given r = 2 (acc M + B - count 2^k) and unit = 2^k."""
    if r >= unit and count < q_max:
        return 1
    if r < -unit and count > q_min:
        return -1
    return 0


@njit(cache=True)
def signed_if_fire(acc, count, gain, offset, unit, q_min, q_max):
    """The spike (+1, -1 or 0) of one SignedIF neuron this step (Numba twin; unit = 2^k)."""
    return signed_if_rule(2 * (np.int64(acc) * gain + offset - np.int64(count) * unit), count, unit, q_min, q_max)


@njit(cache=True)
def signed_if_step_numba(acc, count, gain, offset, shift, q_min, q_max):
    """Vector form of :func:`signed_if_fire`, for tests against :func:`signed_if_step`."""
    unit = np.int64(1) << np.int64(shift)
    spikes = np.zeros(acc.shape[0], np.int8)
    new = count.copy()
    for i in range(acc.shape[0]):
        s = signed_if_fire(acc[i], count[i], gain[i], offset[i], unit, q_min, q_max)
        spikes[i] = s
        new[i] += s
    return spikes, new
