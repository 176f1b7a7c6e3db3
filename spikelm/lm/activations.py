"""MLP activation functions by their Hugging Face names (``hidden_act``, ``activation_function``),
in NumPy float64, and the lookup table that carries one into a converted model.

An activation is an elementwise function of one code tensor, so the converted model holds it
as a table over the input codes (:mod:`spikelm.lm.ops.table`): ReLU, the GELUs and SiLU alike,
exact on integer codes whatever the function. Families share these; a family refuses a name it
does not build in one line, listing what it takes.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf

from spikelm.lm.ops.table import TableParams
from spikelm.lm.quantize import quantize


def gelu(x):
    """GELU with the exact error function (``gelu``)."""
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def gelu_tanh(x):
    """GELU's tanh approximation (``gelu_new``, ``gelu_pytorch_tanh``, ``gelu_fast``)."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def relu(x):
    return np.maximum(x, 0.0)


def silu(x):
    with np.errstate(over="ignore"):  # exp(-x) = inf for x < -709: x / inf = -0, SiLU's limit
        return x / (1.0 + np.exp(-x))


#: Hugging Face activation names -> the function
ACTIVATIONS = {"gelu": gelu, "gelu_new": gelu_tanh, "gelu_pytorch_tanh": gelu_tanh, "gelu_fast": gelu_tanh,
               "relu": relu, "silu": silu, "swish": silu}


def activation(name: str):
    """The NumPy float64 function of a Hugging Face activation name."""
    return ACTIVATIONS[name]


def table(name: str, in_scale: float, in_range: tuple[int, int], out_scale: float,
          out_range: tuple[int, int]) -> TableParams:
    """The activation as a table over every input code: ``lut[x - lo] = code(f(x s_in) / s_out)``."""
    lo, hi = in_range
    x = np.arange(lo, hi + 1, dtype=np.float64) * in_scale
    return TableParams(quantize(activation(name)(x), out_scale, *out_range), lo)
