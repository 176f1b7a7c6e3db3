"""Errors a user can act on.

Every error that reaches a user is one of these: its message is one line that names the file
(or object), the field, what was found and what is allowed. The CLI prints it and exits 2.
"""

import argparse


class SpikelmError(Exception):
    """Base class of all errors that carry a message meant for the user."""


class ConfigError(SpikelmError, ValueError):
    """A parameter, scenario field or argument is missing, of the wrong type or out of range."""


class FileFormatError(SpikelmError, ValueError):
    """A file is not what spikelm expects (not HDF5, not a spikelm/SONATA file, wrong layout)."""


class CheckpointMismatchError(SpikelmError, ValueError):
    """A checkpoint was written for another network than the one it is loaded into."""


class BackendUnavailableError(SpikelmError, RuntimeError):
    """The requested backend cannot run here (e.g. CuPy or a CUDA GPU is missing)."""


def where(source, field):
    """Format the 'file: field' prefix used in every message."""
    if source and field:
        return f"{source}: {field}"
    return source or field or ""


class UsageParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other error of spikelm (its
    subcommands' parsers are of the same class)."""

    def error(self, message):
        self.exit(2, f"spikelm: error: {self.prog}: {message} (see {self.prog} -h)\n")
