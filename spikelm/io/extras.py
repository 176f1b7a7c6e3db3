"""Optional packages (the ``pynn`` extra: PyNN, Neo, Elephant): a missing one is one line naming the extra."""
from __future__ import annotations

from spikelm.errors import ConfigError

EXTRA = 'pip install "spikelm[pynn]"'


class MissingExtraError(ConfigError, ImportError):
    """PyNN, Neo or Elephant is not installed: the ``pynn`` extra brings them."""


def require(module: str, what: str):
    """Import ``module`` or raise one line that names the extra providing it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(f"{what} needs the package {module.split('.')[0]!r}, which is not installed "
                                f"({err.__class__.__name__}: {err}); install the extra: {EXTRA}") from None
