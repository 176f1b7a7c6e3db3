"""Output paths given on the command line, checked before any work is done, and written atomically.

A run that fails at its end because ``--out`` names a directory, that overwrites its own
scenario, or that silently replaces the result of an earlier run, wastes the run or destroys
a file: every option that writes is checked here first (:func:`check_output`), and files are
written beside their final name and moved into place when complete (:func:`atomic_output`),
with the permissions every other file gets (``0666`` less the umask, usually ``0644``).
"""
from __future__ import annotations

import contextlib
import os

from spikelm.errors import ConfigError

#: Formats a plot option can write (matplotlib's Agg canvas).
PLOT_SUFFIXES = (".png", ".pdf", ".svg")
#: The help text of every ``--overwrite`` option.
OVERWRITE_HELP = "replace result files that already exist (by default an existing result is kept and the command refused)"


def check_output(path, flag, inputs=(), suffixes=None, overwrite=False):
    """Refuse an output that could not be written, would destroy an input, or would replace a result.

    Parameters
    ----------
    path : str or os.PathLike
        The output file.
    flag : str
        The option that gave it (named in the message), e.g. ``"--out"``.
    inputs : dict[str, path]
        What else the command reads or writes, by name: ``path`` must be none of them (the
        same name, the same file through a link, or the same file under another path).
    suffixes : sequence of str, optional
        Allowed suffixes (lower case, with the dot).
    overwrite : bool
        Whether an existing file may be replaced. Commands pass their ``--overwrite`` option
        for result files (run files, checkpoints, NIR graphs, scenarios, tables) and True for
        pictures, which are redrawn; by default an existing file is kept.

    Raises
    ------
    ConfigError
        One line naming the option, the path and what to do.
    """
    path = os.fspath(path)
    if not path.strip():
        raise ConfigError(f"{flag}: an empty file name; give a file name")
    d = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise ConfigError(f"{flag} {path}: is a directory; give a file name")
    if os.path.exists(path) and not os.path.isfile(path):
        raise ConfigError(f"{flag} {path}: exists and is not a regular file (a pipe or device); give a file name")
    if not os.path.isdir(d):
        raise ConfigError(f"{flag} {path}: directory {d} does not exist")
    if not os.access(d, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path}: directory {d} is not writable")
    if suffixes and os.path.splitext(path)[1].lower() not in suffixes:
        raise ConfigError(f"{flag} {path}: allowed suffixes {', '.join(suffixes)}")
    for what, other in dict(inputs).items():
        if other is not None and same_file(path, other):
            raise ConfigError(f"{flag} {path}: is also the {what}; writing it would destroy it")
    if not overwrite and os.path.lexists(path):
        raise ConfigError(f"{flag} {path}: exists and is kept; pass --overwrite to replace it, or give another name")


def same_file(a, b) -> bool:
    """Whether paths ``a`` and ``b`` name one file: equal once links and ``..`` are resolved, or the same inode."""
    a, b = os.fspath(a), os.fspath(b)
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:     # one of them does not exist (yet)
        return False


@contextlib.contextmanager
def atomic_output(path):
    """A temporary path beside ``path`` to write; moved to ``path`` when the block ends, removed
    if it fails (an existing ``path`` is then untouched).

    The temporary file is created with mode ``0666`` less the umask, as ``open`` and h5py
    create files, so every output of spikelm gets the same permissions (``mkstemp`` would
    give ``0600``).
    """
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(d):
        raise ConfigError(f"{path}: directory {d} does not exist")
    for k in range(1000):
        tmp = os.path.join(d, f".{os.path.basename(path)}.{os.getpid()}.{k}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - a thousand leftovers of this very process id
        raise ConfigError(f"{path}: cannot create a temporary file in {d}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise



def write_text(path, text: str) -> str:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_output` (a failure, or a kill, leaves
    an existing ``path`` as it was); returns the path."""
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    return os.fspath(path)
