"""Counter-based random numbers: a pure function of (seed, stream, step, index).

Every backend computes the same bits with the same integer operations (SplitMix64
finaliser), so the numpy reference and the compiled kernels draw identical numbers, and a
checkpoint needs no generator state: the step counter is the state. Normal variates use
Box-Muller with libm's log/cos, which NumPy (through ``math``) and Numba both call.
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
    """Standard normal doubles (NumPy + math).

    Box-Muller: indices 2m and 2m + 1 share the uniforms of pair m and take the cosine and
    the sine branch, so one log and one sqrt serve two variates.
    """
    idx = np.asarray(idx, dtype=np.uint64)
    pair = idx >> np.uint64(1)
    u1 = uniform(key, step, pair * np.uint64(2))
    u2 = uniform(key, step, pair * np.uint64(2) + np.uint64(1))
    out = np.empty(idx.size)
    for k in range(idx.size):
        r = math.sqrt(-2.0 * math.log(1.0 - u1[k]))
        th = 2.0 * math.pi * u2[k]
        out[k] = r * (math.sin(th) if idx[k] & np.uint64(1) else math.cos(th))
    return out


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


@njit(cache=True, inline="always")
def _mix_nb(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def uniform_nb(key, step, idx):
    z = key ^ _mix_nb(np.uint64(step) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(idx))
    return np.float64(_mix_nb(z) >> np.uint64(11)) * TWO53


@njit(cache=True)
def normal_pair_nb(key, step, pair):
    """The two normals (cosine branch, sine branch) of pair ``pair`` at ``step``."""
    u1 = uniform_nb(key, step, np.uint64(pair) * np.uint64(2))
    u2 = uniform_nb(key, step, np.uint64(pair) * np.uint64(2) + np.uint64(1))
    r = math.sqrt(-2.0 * math.log(1.0 - u1))
    th = 2.0 * math.pi * u2
    return r * math.cos(th), r * math.sin(th)


@njit(cache=True)
def normal_nb(key, step, idx):
    z0, z1 = normal_pair_nb(key, step, np.uint64(idx) >> np.uint64(1))
    return z1 if np.uint64(idx) & np.uint64(1) else z0


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
