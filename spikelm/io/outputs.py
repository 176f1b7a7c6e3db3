"""Output paths given on the command line, checked before any work is done.

A run that fails at its end because ``--out`` names a directory, or that overwrites its own
scenario, wastes the run or destroys an input: every output option is checked here first.
"""
from __future__ import annotations

import os

from spikelm.errors import ConfigError

#: Formats a plot option can write (matplotlib's Agg canvas).
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def check_output(path, flag, inputs=(), suffixes=None):
    """Refuse an output that could not be written or would destroy an input.

    Parameters
    ----------
    path : str or os.PathLike
        The output file.
    flag : str
        The option that gave it (named in the message), e.g. ``"--out"``.
    inputs : dict[str, path]
        What else the command reads or writes, by name: ``path`` must be none of them.
    suffixes : sequence of str, optional
        Allowed suffixes (lower case, with the dot).
    """
    path = os.fspath(path)
    if not path.strip():
        raise ConfigError(f"{flag}: an empty file name; give a file name")
    d = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise ConfigError(f"{flag} {path}: is a directory; give a file name")
    if not os.path.isdir(d):
        raise ConfigError(f"{flag} {path}: directory {d} does not exist")
    if not os.access(d, os.W_OK):
        raise ConfigError(f"{flag} {path}: directory {d} is not writable")
    if suffixes and os.path.splitext(path)[1].lower() not in suffixes:
        raise ConfigError(f"{flag} {path}: allowed suffixes {', '.join(suffixes)}")
    for what, other in dict(inputs).items():
        other = os.fspath(other)
        if os.path.abspath(path) == os.path.abspath(other) or (
                os.path.exists(path) and os.path.exists(other) and os.path.samefile(path, other)):
            raise ConfigError(f"{flag} {path}: is also the {what}; writing it would destroy it")
