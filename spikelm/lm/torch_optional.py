"""torch is optional (the ``lm`` extra): the module or None, the one-line error that names the
extra, and the float64 matrix product the float forwards and the reference share.

The core install converts the shipped safetensors demo without torch; reading a PyTorch
checkpoint or building a torch model (spikelm's own or a transformers one) needs it.
"""

from __future__ import annotations

import numpy as np

from spikelm.errors import ConfigError

try:
    import torch
except ImportError:  # the core install: converting shipped safetensors needs no torch
    torch = None

#: What to install for the torch parts of spikelm.lm (named in every "needs torch" error).
LM_EXTRA = "pip install 'spikelm[lm]'"


def require_torch(what: str):
    """Return the torch module, or raise a one-line ConfigError naming the ``lm`` extra."""
    if torch is None:
        raise ConfigError(f"{what} needs PyTorch, which is not installed; install the lm extra: {LM_EXTRA}")
    return torch


def matmul(a, b) -> np.ndarray:
    """float64 ``a @ b`` through torch on one thread (a multi-threaded BLAS can stall badly on a
    shared machine; these products are small); NumPy's when torch is not installed (integer
    products below 2^53 are exact either way)."""
    if torch is None:
        return np.asarray(a, dtype=np.float64) @ np.asarray(b, dtype=np.float64)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return (torch.from_numpy(np.ascontiguousarray(a)) @ torch.from_numpy(np.ascontiguousarray(b))).numpy()
    finally:
        torch.set_num_threads(n)
