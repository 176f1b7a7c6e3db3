"""The compiled loop's spike event buffer (:class:`~spikelm.lm.bundles.EventBuffer`): each step,
the update phase appends the spikes of every population, in the order they were emitted,
whatever the population's neurons (plain SignedIF, spike units, EI-IF)."""

from __future__ import annotations

from numba import njit


@njit(cache=True, inline="always")
def record_event(rec, steps, p, node, s):
    """Append one spike (global step, population, node, value) to the event buffer."""
    e = rec.n[0]
    rec.step[e] = rec.clock + steps
    rec.pop[e] = p
    rec.node[e] = node
    rec.val[e] = s
    rec.n[0] = e + 1


@njit(cache=True)
def record_spikes(rec, steps, p, n, base, size, sp, stepval, lo, hi):
    """Append the spikes ``sp[lo:hi]`` of population p (first neuron ``base``, ``size`` per
    position; node ids are position-major) at position n to the event buffer."""
    for t in range(lo, hi):
        g = sp[t]
        record_event(rec, steps, p, n * size + g - base, stepval[g])
