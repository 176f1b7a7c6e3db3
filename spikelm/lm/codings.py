"""Spike codings of converted models: how a neuron spells its code in spikes.

A neuron whose settled input gives it the code c (the round-half-up quantization of its
potential) and whose spike count is ``count`` has the *remainder* ``r = c - count`` still to
fire. Each step it fires at most one spike, of value ``spike_value(coding, r)``:

- ``unit``: ``sign(r)``: |c| spikes of value ±1;
- ``bitplane``: ``sign(r) 2^k`` with 2^k the largest power of two not above |r|, most
  significant first: popcount(|c|) spikes;
- ``signed_digit``: the leading digit ``±2^k`` of the non-adjacent form (NAF) of r: the
  fewest signed power-of-two spikes (about bits/3 on average). The NAF of ``r - digit`` is
  the NAF of r without its leading digit, so the rule needs no state but the remainder.

Example, c = 13: unit 13 spikes of +1; bitplane 8 + 4 + 1; signed digit 16 - 4 + 1.
Every coding ends with ``count = c``: the codes, hence the logits, do not depend on it; the
spikes, SynOps and steps do. A spike of value v from neuron j adds ``v W[j, :]`` downstream.

The NumPy functions are the reference; the ``_nb`` twins are used inside the compiled token
loop (tested equal on every remainder).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import leading_zeros

UNIT, BITPLANE, SIGNED_DIGIT = 0, 1, 2
#: coding name -> the integer the compiled loop uses (index into this tuple)
CODINGS = ("unit", "bitplane", "signed_digit")
#: the default: fewest SynOps at equal logits on every model measured (docs/lm.md)
DEFAULT = "signed_digit"


def coding_id(name: str) -> int:
    return CODINGS.index(name)


def check_coding(coding) -> str:
    """The coding name, or a ConfigError listing the allowed ones."""
    if not isinstance(coding, str) or coding not in CODINGS:
        from spikelm.errors import ConfigError

        raise ConfigError(f"coding={coding!r}; allowed: {', '.join(CODINGS)}")
    return coding


def _top_bit(x: np.ndarray) -> np.ndarray:
    """The largest power of two not above x (x >= 1; 0 for 0), elementwise, int64."""
    x = np.asarray(x, dtype=np.int64).copy()
    for s in (1, 2, 4, 8, 16, 32):
        x |= x >> s
    return x - (x >> 1)


def _naf_top(x: np.ndarray) -> np.ndarray:
    """The leading digit of the NAF of x >= 0 (it is positive): the top bit of NAF's + mask."""
    x = np.asarray(x, dtype=np.int64)
    xh = x >> 1
    x3 = x + xh
    return _top_bit(x3 & (xh ^ x3))


def spike_values(coding: int, rem) -> np.ndarray:
    """Spike value of each neuron with remainder ``rem`` (0 where rem == 0), int64 (NumPy)."""
    rem = np.asarray(rem, dtype=np.int64)
    if coding == UNIT:
        return np.sign(rem)
    mag = np.abs(rem)
    top = _top_bit(mag) if coding == BITPLANE else _naf_top(mag)
    return np.sign(rem) * top


def spike_count(coding: int, codes) -> np.ndarray:
    """Spikes a neuron fires to spell ``codes`` from 0 (closed form, for counting checks)."""
    c = np.abs(np.asarray(codes, dtype=np.int64))
    if coding == UNIT:
        return c
    if coding == BITPLANE:
        return _popcount(c)
    xh = c >> 1
    x3 = c + xh
    t = xh ^ x3
    return _popcount(x3 & t) + _popcount(xh & t)


def spike_trains(coding: int, codes) -> list[np.ndarray]:
    """The spike values a neuron fires, in order, for each code (slow; for tests and docs)."""
    out = []
    for c in np.asarray(codes, dtype=np.int64).ravel():
        seq, r = [], int(c)
        while r:
            v = int(spike_values(coding, np.array([r]))[0])
            seq.append(v)
            r -= v
        out.append(np.array(seq, dtype=np.int64))
    return out


def _popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each element (SWAR, vectorised: conversion counts millions of codes)."""
    x = np.asarray(x, dtype=np.uint64)
    m1, m2, m4 = np.uint64(0x5555555555555555), np.uint64(0x3333333333333333), np.uint64(0x0F0F0F0F0F0F0F0F)
    x = x - ((x >> np.uint64(1)) & m1)
    x = (x & m2) + ((x >> np.uint64(2)) & m2)
    x = (x + (x >> np.uint64(4))) & m4
    return ((x * np.uint64(0x0101010101010101)) >> np.uint64(56)).astype(np.int64)


@njit(cache=True, inline="always")
def _top_bit_nb(x):
    """The highest set bit of x >= 0 (0 for 0), from one count-leading-zeros instruction."""
    if x <= 0:
        return np.int64(0)
    return np.int64(1) << (63 - leading_zeros(np.int64(x)))


@njit(cache=True, inline="always")
def spike_value_nb(coding, rem):
    """Numba twin of :func:`spike_values` for one remainder."""
    if rem == 0:
        return rem
    if coding == UNIT:
        return np.int64(1) if rem > 0 else np.int64(-1)
    mag = rem if rem > 0 else -rem
    if coding == BITPLANE:
        top = _top_bit_nb(mag)
    else:
        xh = mag >> 1
        x3 = mag + xh
        top = _top_bit_nb(x3 & (xh ^ x3))
    return top if rem > 0 else -top
