"""SignedIF: the integrate-and-fire quantizer neuron of converted models (integer form).

Potential V = (acc M + B) / 2^k with integer accumulator ``acc`` (no leak), integer gain
``M`` and offset ``B`` per neuron and a power-of-two unit ``2^k`` per population. The neuron
keeps a spike counter ``count`` in [q_min, q_max]; its code is the round-half-up quantization

    code = clamp(floor(V + 1/2), q_min, q_max) = clamp((2 (acc M + B) + 2^k) >> (k + 1))

(an arithmetic shift: floor division by 2^(k+1), exact in int64), and it fires at most one
spike per step toward it, of the value its coding gives the remainder ``code - count``
(:mod:`spikelm.lm.codings`). With unit coding this is the classic rule: +1 when
V - count >= 1/2 and count < q_max, -1 when V - count < -1/2 and count > q_min (the
engine's :mod:`spikelm.network.models.signed_if`, tested equal). At quiescence
count = code, for every coding.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from spikelm.lm import codings as _codings
from spikelm.lm.codings import spike_value_nb, spike_values
from spikelm.simulator._numba_cache import invalidate_if_changed

# signed_if_step_nb inlines the codings' Numba twin: rebuild its cache when codings.py changes
invalidate_if_changed(__file__, [_codings.__file__])


def requantize(acc, gain, offset, shift: int, qmin: int, qmax: int) -> np.ndarray:
    """Code of neurons with potential (acc gain + offset) / 2^shift: clamp(floor(V + 1/2)), int64."""
    u = np.asarray(acc, dtype=np.int64) * gain + offset
    return np.clip((2 * u + (np.int64(1) << np.int64(shift))) >> np.int64(shift + 1), qmin, qmax)


def remainder(acc, count, gain, offset, shift: int, qmin: int, qmax: int) -> np.ndarray:
    """What each neuron still has to fire: its code minus its spike count (NumPy)."""
    return requantize(acc, gain, offset, shift, qmin, qmax) - np.asarray(count, dtype=np.int64)


def signed_if_step(acc, count, gain, offset, shift: int, q_min: int, q_max: int, coding: int = 0):
    """One update of SignedIF neurons (NumPy reference). Returns (spike values int64, new count)."""
    s = spike_values(coding, remainder(acc, count, gain, offset, shift, q_min, q_max))
    count = np.asarray(count)
    return s, (count + s).astype(count.dtype)


@njit(cache=True, inline="always")
def remainder_nb(acc, count, gain, offset, shift, q_min, q_max):
    """Numba twin of :func:`remainder` for one neuron."""
    code = (2 * (np.int64(acc) * gain + offset) + (np.int64(1) << shift)) >> (shift + 1)
    if code < q_min:
        code = q_min
    elif code > q_max:
        code = q_max
    return code - np.int64(count)


@njit(cache=True)
def signed_if_step_nb(acc, count, gain, offset, shift, q_min, q_max, coding):
    """Vector form of the compiled rule, for tests against :func:`signed_if_step`."""
    spikes = np.zeros(acc.shape[0], np.int64)
    new = count.copy()
    for i in range(acc.shape[0]):
        s = spike_value_nb(coding, remainder_nb(acc[i], count[i], gain[i], offset[i], shift, q_min, q_max))
        spikes[i] = s
        new[i] += s
    return spikes, new
