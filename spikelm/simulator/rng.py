"""Counter-based random numbers: a pure function of (seed, stream, step, index).

Every backend computes the same bits with the same integer operations (SplitMix64
finaliser), so the numpy reference and the compiled kernels draw identical numbers, and a
checkpoint needs no generator state: the step counter is the state. Normal variates use
the ziggurat method of Marsaglia and Tsang (2000, 256 layers): one 64-bit draw and a table
lookup for 99% of samples; the rare slow path uses libm's exp/log, which NumPy (through
``math``) and Numba both call, so the variates are identical too.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)
G = np.uint64(0x9E3779B97F4A7C15)
S30, S27, S31, S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
TWO53 = 1.0 / 9007199254740992.0

STREAM_NOISE, STREAM_POISSON_INPUT, STREAM_POISSON_POP = 1 << 20, 2 << 20, 3 << 20


def stream_key(seed: int, stream: int) -> np.uint64:
    """The 64-bit key of one random stream (computed once, in Python)."""
    return np.uint64(_mix_py((seed * 0x9E3779B97F4A7C15 + stream) & 0xFFFFFFFFFFFFFFFF))


def _mix_py(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


def _mix_np(z):
    z = (z ^ (z >> S30)) * M1
    z = (z ^ (z >> S27)) * M2
    return z ^ (z >> S31)


def uniform(key, step, idx):
    """Uniform [0, 1) doubles for an array of counters ``idx`` at ``step`` (NumPy)."""
    with np.errstate(over="ignore"):
        z = key ^ _mix_np(np.uint64(step) * G + np.asarray(idx, dtype=np.uint64))
        h = _mix_np(z)
    return (h >> S11).astype(np.float64) * TWO53


def normal(key, step, idx):
    """Standard normal doubles for an array of counters (the reference: one ziggurat draw each)."""
    return np.array([normal_one(key, int(step), int(i)) for i in np.asarray(idx, dtype=np.int64)])


def poisson(key, step, idx, lam, exp_neg_lam):
    """Poisson counts by inverse transform with +, *, / only (NumPy)."""
    u = uniform(key, step, idx)
    k = np.zeros(u.size, dtype=np.int64)
    p = np.full(u.size, exp_neg_lam)
    f = p.copy()
    active = u > f
    while active.any():
        k[active] += 1
        p[active] = p[active] * lam / k[active]
        f[active] = f[active] + p[active]
        active &= (u > f) & (k < 1000)
    return k


# -- ziggurat tables (computed once, in float64, shared by every backend) ------------------------
ZIG_R = 3.6541528853610088
ZIG_V = 0.00492867323399


def _zig_tables():
    x = np.zeros(257)
    f = lambda t: math.exp(-0.5 * t * t)
    x[0] = ZIG_V / f(ZIG_R)
    x[1] = ZIG_R
    for i in range(1, 256):
        x[i + 1] = math.sqrt(-2.0 * math.log(ZIG_V / x[i] + f(x[i]))) if i < 255 else 0.0
    fx = np.array([f(t) for t in x])
    return x, fx


ZIG_X, ZIG_F = _zig_tables()
ATTEMPT = 0xD1B54A32D192ED03


def _bits_py(key, step, idx, attempt):
    z = int(key) ^ _mix_py((step * 0x9E3779B97F4A7C15 + idx) & 0xFFFFFFFFFFFFFFFF)
    return _mix_py(z ^ ((attempt * ATTEMPT) & 0xFFFFFFFFFFFFFFFF))


def normal_one(key, step, idx):
    """One standard normal for counter (step, idx) by the ziggurat (plain Python; the reference)."""
    attempt = 0
    while True:
        h = _bits_py(key, step, idx, attempt)
        i = h & 0xFF
        neg = (h >> 8) & 1
        u = (h >> 11) * TWO53
        x = u * ZIG_X[i]
        if x < ZIG_X[i + 1]:
            return -x if neg else x
        h2 = _bits_py(key, step, idx, attempt + 1)
        if i == 0:  # the tail beyond r: Marsaglia's exponential rejection
            h3 = _bits_py(key, step, idx, attempt + 2)
            a = -math.log(1.0 - (h2 >> 11) * TWO53) / ZIG_R
            b = -math.log(1.0 - (h3 >> 11) * TWO53)
            if b + b > a * a:
                return -(ZIG_R + a) if neg else ZIG_R + a
        elif ZIG_F[i + 1] + ((h2 >> 11) * TWO53) * (ZIG_F[i] - ZIG_F[i + 1]) < math.exp(-0.5 * x * x):
            return -x if neg else x
        attempt += 3


@njit(cache=True, inline="always")
def _mix_nb(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def uniform_nb(key, step, idx):
    z = key ^ _mix_nb(np.uint64(step) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(idx))
    return np.float64(_mix_nb(z) >> np.uint64(11)) * TWO53


@njit(cache=True, inline="always")
def _bits_nb(key, step, idx, attempt):
    z = key ^ _mix_nb(np.uint64(step) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(idx))
    return _mix_nb(z ^ (np.uint64(attempt) * np.uint64(0xD1B54A32D192ED03)))


@njit(cache=True)
def normal_nb(key, step, idx, zx, zf):
    """The compiled twin of :func:`normal_one` (``zx``, ``zf``: the ziggurat tables)."""
    attempt = 0
    while True:
        h = _bits_nb(key, step, idx, attempt)
        i = np.int64(h & np.uint64(0xFF))
        neg = (h >> np.uint64(8)) & np.uint64(1)
        u = np.float64(h >> np.uint64(11)) * TWO53
        x = u * zx[i]
        if x < zx[i + 1]:
            return -x if neg else x
        h2 = _bits_nb(key, step, idx, attempt + 1)
        if i == 0:
            h3 = _bits_nb(key, step, idx, attempt + 2)
            a = -math.log(1.0 - np.float64(h2 >> np.uint64(11)) * TWO53) / ZIG_R
            b = -math.log(1.0 - np.float64(h3 >> np.uint64(11)) * TWO53)
            if b + b > a * a:
                return -(ZIG_R + a) if neg else ZIG_R + a
        elif zf[i + 1] + (np.float64(h2 >> np.uint64(11)) * TWO53) * (zf[i] - zf[i + 1]) < math.exp(-0.5 * x * x):
            return -x if neg else x
        attempt += 3


@njit(cache=True)
def poisson_nb(key, step, idx, lam, exp_neg_lam):
    u = uniform_nb(key, step, idx)
    k = 0
    p = exp_neg_lam
    f = p
    while u > f and k < 1000:
        k += 1
        p = p * lam / k
        f = f + p
    return k
