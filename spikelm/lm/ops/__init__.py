"""Operators of converted models: one file per operator kind, found through a registry.

The base class, the registry and the Numba twin's fixed signature are in
:mod:`spikelm.lm.ops.registry`; each built-in operator is a module of this package that
registers itself when imported (the line below). An operator of your own registers itself
the same way from its own module (``tests/test_lm_structure.py`` adds one).
"""

from spikelm.lm.ops.registry import OpContext, Operator, clamp, get, names, register

# the built-in operators: each module registers its operator on import
from spikelm.lm.ops import embed, layernorm, residual, rmsnorm, rope, softmax, table  # noqa: F401

__all__ = ["OpContext", "Operator", "clamp", "get", "names", "register"]
