"""What every neuron model provides, and the checks its parameters share.

A model is a module-level object of type :class:`NeuronModel`: its name, its parameter
dataclass, the names of its state variables (structure of arrays: one float64 array per
variable), a function that derives the per-step constants once (``derive``), a function
that gives the initial state, and the NumPy reference step. The compiled kernels of each
backend live in ``spikelm.simulator`` and are looked up by ``name``.

Integer-valued state (spike counters, refractory counters) is kept in float64 too: every
integer below 2**53 is exact there, so integer paths stay bit-exact on every backend.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from collections.abc import Callable

import numpy as np

from spikelm.errors import ConfigError

#: Number of packed constants every model may use (kernels receive a float64 vector).
N_CONSTS = 16


@dataclass(frozen=True)
class NeuronModel:
    """A neuron model: parameters, declared state, derived constants and reference step.

    ``step(state, c, inp_e, inp_i, i_ext, t) -> (index, value)`` advances the state of one
    population by one step in place and returns the indices (int64) and values (int8) of
    the neurons that fired. ``may_fire(state, c, driven, t)`` tells whether any neuron can
    still fire after step ``t`` without new input (used for quiescence).
    """

    name: str
    code: int
    params: type
    state_vars: tuple[str, ...]
    derive: Callable
    init_state: Callable
    step: Callable
    may_fire: Callable
    is_source: bool = False
    ternary: bool = False
    #: unit of each state variable, in the order of ``state_vars`` ("1": dimensionless);
    #: written with state reports
    units: tuple[str, ...] = ()
    #: unit of a synaptic weight onto this model: the jump of the input it is added to
    input_unit: str = "1"

    def unit(self, variable: str) -> str:
        """The unit of state variable ``variable`` ("1" when dimensionless or not declared)."""
        k = self.state_vars.index(variable)
        return self.units[k] if k < len(self.units) else "1"


def check_finite(model, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{model}: parameter '{name}' must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ConfigError(f"{model}: parameter '{name}' must be finite, got {value!r}")


def check_params(obj, positive=(), nonnegative=()):
    """Validate every field of a params dataclass: finite numbers, signs as declared."""
    model = type(obj).__name__
    for f in dataclasses.fields(obj):
        check_finite(model, f.name, getattr(obj, f.name))
    for name in positive:
        if getattr(obj, name) <= 0:
            raise ConfigError(f"{model}: parameter '{name}' must be > 0, got {getattr(obj, name)!r}")
    for name in nonnegative:
        if getattr(obj, name) < 0:
            raise ConfigError(f"{model}: parameter '{name}' must be >= 0, got {getattr(obj, name)!r}")


def pack(values) -> np.ndarray:
    """Pack derived constants into the fixed-length float64 vector the kernels take."""
    c = np.zeros(N_CONSTS)
    c[: len(values)] = values
    return c


def fired(mask: np.ndarray, values: np.ndarray | int = 1):
    idx = np.flatnonzero(mask)
    if np.isscalar(values):
        return idx, np.full(idx.size, values, dtype=np.int8)
    return idx, np.asarray(values[idx], dtype=np.int8)
