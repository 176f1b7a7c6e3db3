"""What every neuron model provides, and the checks its parameters share.

A model is a module-level object of type :class:`NeuronModel`: its name, its parameter
dataclass, the names of its state variables (structure of arrays: one float64 array per
variable), the names of its per-step constants (``consts``), a function that derives those
constants once (``derive``, packed by name with :func:`pack`), a function that gives the
initial state, and the NumPy reference step. Every kernel reads a constant by its name
through the model's index (``C = consts_index(CONSTS)``; ``c[C.em]``), so the order of the
packed vector is written down once, in the model's file. The compiled kernels of each
backend are looked up by ``name``: ``spikelm/simulator/kernels/<name>.py`` (Numba) and
``spikelm/gpu/model_sources.py`` (CUDA).

Integer-valued state (spike counters, refractory counters) is kept in float64 too: every
integer below 2**53 is exact there, so integer paths stay bit-exact on every backend.
"""
from __future__ import annotations

import dataclasses
import math
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from spikelm.errors import ConfigError

@dataclass(frozen=True)
class NeuronModel:
    """A neuron model: parameters, declared state, derived constants and reference step.

    ``step(state, c, inp_e, inp_i, i_ext, t) -> (index, value)`` advances the state of one
    population by one step in place and returns the indices (int64) and values (int8) of
    the neurons that fired. ``may_fire(state, c, driven, t)`` tells whether any neuron can
    still fire after step ``t`` without new input (used for quiescence).
    """

    name: str
    params: type
    state_vars: tuple[str, ...]
    derive: Callable
    init_state: Callable
    step: Callable
    may_fire: Callable
    is_source: bool = False
    ternary: bool = False
    #: names of the per-step constants ``derive`` packs, in their order in the vector
    consts: tuple[str, ...] = ()
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


def consts_index(names):
    """The index of each named constant: ``consts_index(("e_l", "v_th")).v_th == 1``.

    A named tuple of ints, so NumPy code and Numba kernels (which read a global tuple as a
    compile-time constant) index the packed vector by name: ``c[C.v_th]``.
    """
    return namedtuple("Consts", names)(*range(len(names)))


def pack(names, **values) -> np.ndarray:
    """Pack derived constants by name into the float64 vector the kernels take (order: ``names``)."""
    if set(values) != set(names):
        raise ValueError(f"pack: constants {sorted(set(names) ^ set(values))} missing or unknown")
    return np.array([float(values[n]) for n in names], dtype=np.float64)


def fired(mask: np.ndarray, values: np.ndarray | int = 1):
    idx = np.flatnonzero(mask)
    if np.isscalar(values):
        return idx, np.full(idx.size, values, dtype=np.int8)
    return idx, np.asarray(values[idx], dtype=np.int8)
