"""Numba kernels of the neuron models: one module per model, named as the model.

A model's module ``spikelm.simulator.kernels.<name>`` defines two compiled functions with
these signatures (the compiled time loop is generated for the models a network uses and
calls them by kind number, so adding a model touches no other file of the backend):

- ``update(S, lo, hi, first, c, qe, qi, iext, t, key, fired)``: advance neurons [lo, hi) of
  the state matrix ``S`` one step (a thread's share of a population whose first neuron is
  ``first``); ``c`` is the population's constants (read by name through
  the model's index ``C``: ``c[C.em]``), ``qe``/``qi`` this step's input slot (the update
  reads and clears its entries), ``iext`` the external current, ``t`` the step, ``key``
  the population's random stream (:mod:`spikelm.simulator.rng`, counter ``i - first``); write each neuron's spike
  value into ``fired[i]`` (+1, -1 or 0).
- ``may_fire(S, lo, hi, c, t)``: whether a neuron of [lo, hi) can still fire after step t
  without new input (quiescence).

Each mirrors its model's NumPy step operation for operation (no fastmath, no
reassociation), so float results are identical. Loops over neurons use unsigned indices:
with signed ones Numba adds negative-index checks that stop LLVM from vectorising.
``spike_times`` has no kernel: the time loop fires its listed spikes itself.
"""
from __future__ import annotations

import importlib
from types import ModuleType

#: models the time loop steps itself (their data is a list of events, not per-neuron state)
BUILT_IN = ("spike_times",)


def kernel_module(name: str) -> ModuleType:
    """The kernel module of model ``name`` (ModuleNotFoundError if it has none)."""
    return importlib.import_module(f"{__name__}.{name}")
