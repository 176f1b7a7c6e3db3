"""The backend registry: name -> module that implements ``run_chunk(plan, buf, t0, n, until_quiescent)``.

Backends are found by module path, so simulator/ never imports gpu/ itself. A backend
module may define ``check_available()`` raising :class:`BackendUnavailableError` with how to
get what is missing; it is called when a Simulator is built, never silently skipped.
"""
from __future__ import annotations

import importlib

from spikelm.errors import ConfigError

BACKENDS = {
    "numpy": "spikelm.simulator.numpy_backend",
    "numba": "spikelm.simulator.numba_backend",
    "cupy": "spikelm.gpu.backend",
}

#: Operations every backend module offers, with the same names and signatures.
OPERATIONS = ("run_chunk",)


def get_backend(name):
    """Import and return the backend module ``name``; the error lists the allowed names."""
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    mod = importlib.import_module(BACKENDS[name])
    check = getattr(mod, "check_available", None)
    if check is not None:
        check()
    return mod
