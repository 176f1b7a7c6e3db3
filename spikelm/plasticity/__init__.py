"""Online plasticity rules, run in the "learn" phase of every step on every backend.

Rules (frozen dataclasses of plain data): :class:`STDP`, :class:`BrainGPTSTDP` (projection
rules), :class:`Homeostasis`, :class:`BrainGPTHomeostasis` (population rules). Scenario
files build them with :func:`from_config`. See docs/plasticity.md.

The interface the simulator uses:

- ``pack(plan) -> PlasticityState | None``: packs the rules attached to the network's
  projections and populations into typed arrays (``.arrays``, a tuple the compiled loop
  takes as one argument). None when the network has no rules.
- ``learn_numpy(plan, t, spk_idx, spk_val, state)``: the NumPy reference learn phase.
- ``numba_learn.learn(...)``: the compiled twin, called inside the numba time loop.
- ``PlasticityState.set_enabled(name, flag)``, ``.state_dict()``, ``.load_state_dict(d)``.
"""
from .config import from_config, to_config
from .interface import PlasticityState, empty_arrays, learn_numpy, pack
from .rules import STDP, BrainGPTHomeostasis, BrainGPTSTDP, Homeostasis, rule_fields

__all__ = ["pack", "learn_numpy", "empty_arrays", "PlasticityState", "STDP", "BrainGPTSTDP", "Homeostasis",
           "BrainGPTHomeostasis", "from_config", "to_config", "rule_fields"]
