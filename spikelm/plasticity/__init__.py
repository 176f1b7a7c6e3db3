"""Online plasticity rules, run in the "learn" phase of every step on every backend.

The interface the simulator uses:

- ``pack(plan) -> PlasticityState | None``: packs the rules attached to the network's
  projections and populations into typed arrays (``.arrays``, a tuple the compiled loop
  takes as one argument). None when the network has no rules.
- ``learn_numpy(plan, t, spk_idx, spk_val, state)``: the NumPy reference learn phase.
- ``numba_learn.learn(...)``: the compiled twin, called inside the numba time loop.
"""
from .interface import PlasticityState, learn_numpy, pack

__all__ = ["pack", "learn_numpy", "PlasticityState"]
