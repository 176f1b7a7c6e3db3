"""One guarded way to open an HDF5 file for reading, used by every reader of spikelm.

What a user hands a reader can be anything: a directory, a named pipe (opening one for
reading blocks until a writer comes, so it must never be opened), a text file, a truncated
or bit-flipped file, a file another run still writes or a killed run left marked "open for
writing". :func:`open_hdf5` looks at the file with ``stat`` and its first bytes before HDF5
sees it, and turns each of these into one :class:`~spikelm.errors.FileFormatError` line
naming the file and what was expected; :func:`reading` does the same for what h5py or NumPy
raise on damaged content while a reader walks the file.
"""
from __future__ import annotations

import contextlib
import os
import stat

import h5py

from spikelm.errors import FileFormatError, SpikelmError

__all__ = ["SIGNATURE", "first_line", "open_hdf5", "reading", "regular_file", "whole"]

#: The 8 bytes every HDF5 file starts with (at offset 0 or at a power of two from 512 on).
SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: What h5py raises on files it cannot use (and on damaged content while reading).
H5_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError, AttributeError, RecursionError)
_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"))


def first_line(err) -> str:
    """The first 200 characters of an exception's message, on one line (its type when it has none)."""
    text = " ".join(str(err).split())
    return text[:200] if text else type(err).__name__


def regular_file(path, what: str) -> str:
    """``path`` as a str when it names a regular file; otherwise one FileFormatError line.

    Nothing is opened: a named pipe would block a reader until some writer appears.
    """
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileFormatError(f"{path}: no such file; expected {what}") from None
    except OSError as e:
        raise FileFormatError(f"{path}: cannot be read ({e.strerror or first_line(e)}); expected {what}") from None
    if stat.S_ISDIR(st.st_mode):
        raise FileFormatError(f"{path}: is a directory; expected {what}")
    if not stat.S_ISREG(st.st_mode):
        kind = next((k for test, k in _KINDS if test(st.st_mode)), "not a regular file")
        raise FileFormatError(f"{path}: is {kind}, not a regular file; expected {what}")
    return path


def whole(path) -> bool:
    """False when the file is shorter than the end-of-file address its superblock (v2/v3) records
    (a truncated copy, or a download cut short); True where older superblocks leave it to HDF5."""
    with open(path, "rb") as f:
        head = f.read(48)
    if len(head) < 12 or head[:8] != SIGNATURE or head[8] < 2:
        return True
    # superblock v2/v3: signature, version, sizes of offsets and lengths, flags, then the base,
    # superblock-extension and end-of-file addresses (HDF5 file format specification, II.A)
    size = head[9]
    if size not in (2, 4, 8) or len(head) < 12 + 3 * size:
        return False
    base = int.from_bytes(head[12:12 + size], "little")
    eof = int.from_bytes(head[12 + 2 * size:12 + 3 * size], "little")
    return os.path.getsize(path) >= base + eof


def open_hdf5(path, what: str, live: bool = False) -> h5py.File:
    """Open ``path`` read-only, or raise one FileFormatError line naming it and ``what`` was expected.

    Parameters
    ----------
    path : str or os.PathLike
    what : str
        What the caller expected, for the message, e.g. ``"a spikelm checkpoint"``.
    live : bool
        Also open a file marked open for writing (a run writing it, or a killed run's
        ``.partial``), in HDF5 SWMR mode. Otherwise such a file is refused with the command
        that clears the mark (``spikelm repair``).
    """
    path = regular_file(path, what)
    try:
        hdf5 = h5py.is_hdf5(path)
    except (OSError, RuntimeError, ValueError):
        hdf5 = False
    if not hdf5:
        raise FileFormatError(f"{path}: not an HDF5 file (no HDF5 signature); expected {what}")
    if not whole(path):
        raise FileFormatError(f"{path}: truncated (shorter than its HDF5 superblock records); expected {what}")
    try:
        return h5py.File(path, "r")
    except (OSError, RuntimeError, ValueError) as err:
        first = err
    if "open for write" in str(first):
        # SWMR only for what it is meant for: a SWMR reader skips the end-of-file check and
        # retries damaged metadata for minutes, so the truncation check above comes first
        if live:
            try:
                return h5py.File(path, "r", swmr=True)
            except (OSError, RuntimeError, ValueError) as err:
                first = err
        else:
            raise FileFormatError(f"{path}: marked open for writing (a run still writes it, or was killed while "
                                  f"writing it); if no run writes it, clear the mark with: spikelm repair {path}")
    if isinstance(first, BlockingIOError) or "unable to lock file" in str(first):
        raise FileFormatError(f"{path}: locked by a process writing it; try again when it has finished")
    raise FileFormatError(f"{path}: unreadable HDF5 file ({first_line(first)}); expected {what}")


@contextlib.contextmanager
def reading(path, what: str):
    """Turn what h5py or NumPy raise on damaged content into one FileFormatError line."""
    try:
        yield
    except SpikelmError:
        raise
    except H5_ERRORS as err:
        raise FileFormatError(f"{path}: damaged or unexpected content ({first_line(err)}); expected {what}") from None
