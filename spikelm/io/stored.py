"""Values read back from files (checkpoints, run metadata), checked before anything uses them.

A stored count or clock drives loops and allocations: a clock of 2^62 made a decay loop spin
for hours, a count of strings raised deep inside NumPy. Every reader takes such values through
these functions, which accept exactly the type and range the writer produces and refuse
anything else in one :class:`~spikelm.errors.FileFormatError` line naming the file and field.
Bounds are the caller's: a clock may not pass what the run could have reached (a loop over
``clock - last`` then has a known length), a count not what the network holds.
"""
from __future__ import annotations

import math

import numpy as np

from spikelm.errors import FileFormatError

__all__ = ["MAX_CLOCK", "stored_array", "stored_float", "stored_int"]

#: Largest step counter any run reaches (int64 with room for a step's arithmetic).
MAX_CLOCK = 2**62


def _shown(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def stored_int(value, where: str, lo: int = 0, hi: int = MAX_CLOCK) -> int:
    """``value`` as a Python int when it is an integer (not a bool, not a float) in ``[lo, hi]``.

    Parameters
    ----------
    where : str
        ``"<file>: <field>"`` for the message.
    lo, hi : int
        Inclusive bounds; ``hi`` bounds any loop or allocation the value drives.
    """
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise FileFormatError(f"{where}: {_shown(value)} ({type(value).__name__}); expected an integer in "
                              f"[{lo:,}, {hi:,}]")
    value = int(value)
    if not lo <= value <= hi:
        raise FileFormatError(f"{where}: {value:,}; expected an integer in [{lo:,}, {hi:,}]")
    return value


def stored_float(value, where: str, lo: float = -math.inf, hi: float = math.inf, positive: bool = False) -> float:
    """``value`` as a float when it is a finite real number in ``[lo, hi]`` (and > 0 when ``positive``)."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise FileFormatError(f"{where}: {_shown(value)} ({type(value).__name__}); expected a finite number")
    value = float(value)
    if not (math.isfinite(value) and lo <= value <= hi) or (positive and not value > 0):
        span = "> 0" if positive else f"in [{lo:g}, {hi:g}]"
        raise FileFormatError(f"{where}: {value!r}; expected a finite number {span}")
    return value


def stored_array(value, where: str, kind: str, shape=None, lo=None, hi=None) -> np.ndarray:
    """``value`` as an array of ``kind`` (``"int"`` or ``"float"``), of ``shape`` when given, every
    element finite and in ``[lo, hi]`` where given (strings, objects and NaN are refused)."""
    a = np.asarray(value)
    kinds = {"int": "iu", "float": "iuf"}[kind]
    if a.dtype.kind not in kinds:
        raise FileFormatError(f"{where}: dtype {a.dtype}; expected {'integers' if kind == 'int' else 'numbers'}")
    if shape is not None and a.shape != tuple(shape):
        raise FileFormatError(f"{where}: shape {a.shape}; expected {tuple(shape)}")
    if a.size:
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise FileFormatError(f"{where}: NaN or infinite values; expected finite numbers")
        if lo is not None and a.min() < lo:
            raise FileFormatError(f"{where}: a value {a.min().item()!r} below {lo!r}")
        if hi is not None and a.max() > hi:
            raise FileFormatError(f"{where}: a value {a.max().item()!r} above {hi!r}")
    return a
