"""Glue between the simulator and the rules: packing and the NumPy learn phase."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PlasticityState:
    """Packed rules: ``arrays`` is the tuple the numba loop receives."""

    arrays: tuple


def empty_arrays():
    """The packed form of 'no rules' (the compiled loop returns at once on it)."""
    return (np.zeros(0, dtype=np.int64),)


def pack(plan):
    """Pack the rules of ``plan``'s network; None when it has none."""
    return None


def learn_numpy(plan, t, spk_idx, spk_val, state):
    """NumPy reference of the learn phase (no rules: nothing to do)."""
    return None
