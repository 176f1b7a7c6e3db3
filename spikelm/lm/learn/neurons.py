"""Neurons with learnable thresholds for converted LMs: SignedIF with a spike unit, and EI-IF.

**SignedIF with a spike unit u** (an integer >= 1 per neuron; its threshold). With potential
``V = (acc M + B) / 2^k`` in codes, the neuron fires toward ``u q``, ``q = floor(V / u + 1/2)``
clamped so that ``u q`` stays in [q_min, q_max], in spikes worth u codes: a spike of value
``u d`` where d is the coding's spike value for the remainder in units (``(u q - count) / u``).
So it fires when ``V - count`` reaches half a unit, and ``u = 1`` is the exact neuron of
:mod:`spikelm.lm.neuron`. A larger unit means fewer, larger spikes (unit coding: |code| / u
spikes) and a coarser code: exactness is given up on purpose, and measured.

**EI-IF, exact variant** (``eiif_exact``; BrainGPT eq. 1), per neuron ``theta_base``,
``alpha``, ``r``. The engine's ``eiif`` model (:mod:`spikelm.network.models.eiif`) is eq. 1 as
printed (t from 1, ``V <= -theta``); this variant differs in the three points below, and
so has its own name. Once its population
starts (its inputs are settled, so the input current is the constant potential x = V), at
each step t = 0, 1, 2, ... of its firing window::

    v     = v + x                                   (v = 0 when the window opens)
    theta = theta_base + alpha t
    S     = +1 if v >= theta, v > 0 and count < q_max;  -1 if v < -theta and count > q_min;  else 0
    v     = max(0, v (1 - r)) if v > 0;  min(0, v (1 - r)) if v < 0

**Index convention**: t counts from 0 at the first step of the window. Then with
theta_base = 1/2, alpha = 1, r = 1 the spike count is ``clamp(floor(x + 1/2))``, the
reference code, and the spikes are those of unit coding, step for step (tested). Counted
from 1, as eq. 6 sums t = 1..T, every positive code comes out one too small (the engine's
``tests/test_models.py`` checks both). The negative side compares ``v < -theta`` (strict;
eq. 1 prints ``<=``): round-half-up sends -2.5 to -2, and ``<=`` would fire a third spike there.
A neuron at rest (v = 0) never fires, even at theta = 0: with eq. 1 as printed, a threshold
driven to 0 would make every silent neuron fire (masked attention keys included).
Exact while ``|acc M + B| < 2^53`` (x is then exact in float64: every 8-bit model).

A neuron stays *pending* (its population is not quiescent) while it may fire again under
its present parameters: ``v' + x`` reaches the next threshold, or the potential's limit
``|x| / r`` lies above it (``|x| > alpha`` when r = 0) and the count is not at its clamp.

The NumPy functions are the reference; the ``_nb`` twins run in the compiled token loop
(tested equal).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from spikelm.lm import codings as _codings
from spikelm.lm.codings import spike_value_nb, spike_values
from spikelm.simulator._numba_cache import invalidate_if_changed

invalidate_if_changed(__file__, [_codings.__file__])  # the twins inline the codings' Numba twin


def potential(acc, gain, offset, shift: int) -> np.ndarray:
    """The potential V = (acc M + B) / 2^k in codes, float64 (exact while |acc M + B| < 2^53)."""
    u = np.asarray(acc, dtype=np.int64) * gain + offset
    return u.astype(np.float64) * (1.0 / float(np.int64(1) << np.int64(shift)))


def unit_remainder(acc, count, gain, offset, shift: int, qmin: int, qmax: int, unit) -> np.ndarray:
    """``u q - count`` with q = floor(V / u + 1/2) clamped to [ceil(q_min / u), floor(q_max / u)]."""
    unit = np.asarray(unit, dtype=np.int64)
    u = np.asarray(acc, dtype=np.int64) * gain + offset
    q = (2 * u + (unit << np.int64(shift))) // (unit << np.int64(shift + 1))
    q = np.minimum(np.maximum(q, -((-qmin) // unit)), qmax // unit)
    return q * unit - np.asarray(count, dtype=np.int64)


def unit_step(acc, count, gain, offset, shift: int, qmin: int, qmax: int, unit, coding: int):
    """One update of SignedIF neurons with spike units (NumPy). Returns (spike values, new count)."""
    unit = np.asarray(unit, dtype=np.int64)
    rem = unit_remainder(acc, count, gain, offset, shift, qmin, qmax, unit)
    s = unit * spike_values(coding, rem // unit)
    count = np.asarray(count)
    return s, (count + s).astype(count.dtype)


def eiif_step(v, x, t: int, theta_base, alpha, r, count, qmin: int, qmax: int):
    """One EI-IF step at window step t (NumPy). Returns (spikes int64, membrane after the step)."""
    v = v + x
    theta = theta_base + alpha * float(t)
    s = np.where((v >= theta) & (v > 0) & (count < qmax), 1, np.where((v < -theta) & (count > qmin), -1, 0)).astype(np.int64)
    keep = 1.0 - r
    v = np.where(v > 0, np.maximum(0.0, v * keep), np.where(v < 0, np.minimum(0.0, v * keep), v))
    return s, v


def eiif_pending(v, x, t_next: int, theta_base, alpha, r, count, qmin: int, qmax: int) -> np.ndarray:
    """Which EI-IF neurons may still fire from window step ``t_next`` on (see the module docstring)."""
    theta = theta_base + alpha * float(t_next)
    a = v + x
    ax = np.abs(x)
    lim = np.where(r > 0, ax > theta * r, ax > alpha)
    up = (count < qmax) & (((a >= theta) & (a > 0)) | ((x > 0) & lim))
    down = (count > qmin) & ((a < -theta) | ((x < 0) & lim))
    return up | down


# ---------------------------------------------------------------- Numba twins (one neuron)


@njit(cache=True, inline="always")
def potential_nb(acc, gain, offset, shift):
    return np.float64(np.int64(acc) * gain + offset) * (1.0 / np.float64(np.int64(1) << shift))


@njit(cache=True, inline="always")
def unit_remainder_nb(acc, count, gain, offset, shift, q_min, q_max, unit):
    u = np.int64(acc) * gain + offset
    q = (2 * u + (unit << shift)) // (unit << (shift + 1))
    lo = -((-q_min) // unit)
    hi = q_max // unit
    if q < lo:
        q = lo
    elif q > hi:
        q = hi
    return q * unit - np.int64(count)


@njit(cache=True, inline="always")
def unit_spike_nb(coding, rem, unit):
    return unit * spike_value_nb(coding, rem // unit)


@njit(cache=True, inline="always")
def eiif_fire_nb(v, x, t, theta_base, alpha, r, count, q_min, q_max):
    """One EI-IF neuron at window step t: (spike, membrane after the step)."""
    v = v + x
    theta = theta_base + alpha * np.float64(t)
    s = np.int64(0)
    if v >= theta and v > 0 and count < q_max:
        s = np.int64(1)
    elif v < -theta and count > q_min:
        s = np.int64(-1)
    keep = 1.0 - r
    if v > 0:
        v = max(0.0, v * keep)
    elif v < 0:
        v = min(0.0, v * keep)
    return s, v


@njit(cache=True, inline="always")
def eiif_pending_nb(v, x, t_next, theta_base, alpha, r, count, q_min, q_max):
    theta = theta_base + alpha * np.float64(t_next)
    a = v + x
    ax = abs(x)
    lim = ax > theta * r if r > 0 else ax > alpha
    if count < q_max and ((a >= theta and a > 0) or (x > 0 and lim)):
        return True
    return count > q_min and (a < -theta or (x < 0 and lim))


@njit(cache=True)
def unit_step_nb(acc, count, gain, offset, shift, q_min, q_max, unit, coding):
    """Vector form of the compiled unit rule, for tests against :func:`unit_step`."""
    spikes = np.zeros(acc.shape[0], np.int64)
    new = count.copy()
    for i in range(acc.shape[0]):
        s = unit_spike_nb(coding, unit_remainder_nb(acc[i], count[i], gain[i], offset[i], shift, q_min, q_max,
                                                    unit[i]), unit[i])
        spikes[i] = s
        new[i] += s
    return spikes, new


@njit(cache=True)
def eiif_step_nb(v, x, t, theta_base, alpha, r, count, q_min, q_max):
    """Vector form of :func:`eiif_fire_nb`, for tests against :func:`eiif_step`."""
    spikes = np.zeros(v.shape[0], np.int64)
    out = v.copy()
    for i in range(v.shape[0]):
        spikes[i], out[i] = eiif_fire_nb(v[i], x[i], t, theta_base[i], alpha[i], r[i], count[i], q_min, q_max)
    return spikes, out
