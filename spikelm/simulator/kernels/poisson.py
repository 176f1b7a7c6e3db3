"""Poisson source (:mod:`spikelm.network.models.sources`): each neuron fires with probability rate * dt."""
from __future__ import annotations

from numba import njit

from spikelm.network.models.sources import POISSON_C as C
from spikelm.simulator.rng import uniform_nb


@njit(cache=True)
def update(S, lo, hi, first, c, qe, qi, iext, t, key, fired):
    prob = c[C.prob]
    for i in range(lo, hi):  # the draw's counter is the neuron's index in its population
        fired[i] = uniform_nb(key, t, i - first) < prob


@njit(cache=True)
def may_fire(S, lo, hi, c, t):
    return c[C.prob] > 0.0
