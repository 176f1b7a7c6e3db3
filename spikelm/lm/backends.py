"""The converted-LM executors by name, with availability checks (the CLI reads its choices here).

``numpy`` is the reference event-driven executor; ``numba`` the compiled one (default).
A backend that cannot run here raises :class:`~spikelm.errors.BackendUnavailableError`
saying what is missing when it is asked for, never silently replaced by another.
"""

from __future__ import annotations

import importlib

from spikelm.errors import BackendUnavailableError, ConfigError

#: name -> (module, class)
BACKENDS = {
    "numpy": ("spikelm.lm.runner", "NumpyRunner"),
    "numba": ("spikelm.lm.numba_runner", "NumbaRunner"),
}
DEFAULT = "numba"


def names() -> list[str]:
    return list(BACKENDS)


def check_available(name: str) -> None:
    """Raise BackendUnavailableError (with what to install) if ``name`` cannot run here."""
    if name == "numba":
        try:
            import numba  # noqa: F401
        except ImportError as exc:  # pragma: no cover - numba is a core dependency
            raise BackendUnavailableError(f"backend 'numba': numba is not installed ({exc}); "
                                          "install spikelm's core dependencies") from None


def available() -> list[str]:
    """The backends that run on this machine."""
    out = []
    for name in BACKENDS:
        try:
            check_available(name)
        except BackendUnavailableError:
            continue
        out.append(name)
    return out


def runner_class(name: str):
    """The runner class of backend ``name``; unknown or unavailable names raise one-line errors."""
    if name not in BACKENDS:
        raise ConfigError(f"backend={name!r}; allowed: {', '.join(BACKENDS)}")
    check_available(name)
    module, cls = BACKENDS[name]
    return getattr(importlib.import_module(module), cls)
