"""Text files a user hands spikelm (scenarios, plasticity files, calibration text), read one guarded way.

:func:`read_text` refuses what is not a regular file without opening it (a named pipe would
block), bounds the size before reading, and decodes UTF-8; :func:`parse_toml` parses TOML
data and bounds its nesting (a file nested 3,000 deep exhausts Python's recursion in the
parser, and one nested a few hundred deep would do so later, in whatever walks the tables).
Every problem is one :class:`~spikelm.errors.FileFormatError` line naming the file.
"""
from __future__ import annotations

import os
import sys

from spikelm.errors import FileFormatError

from .hdf5 import regular_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["MAX_DEPTH", "MAX_TEXT_BYTES", "depth", "load_toml", "parse_toml", "read_text"]

#: Largest text file read (bytes): parsing costs several times this in memory.
MAX_TEXT_BYTES = 1 << 30
#: Deepest nesting of arrays and tables a TOML file may have (spikelm's files need 4).
MAX_DEPTH = 32


def read_text(path, what: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of the regular file ``path``; ``what`` names what was expected (for messages)."""
    path = regular_file(path, what)
    size = os.path.getsize(path)
    if size > max_bytes:
        raise FileFormatError(f"{path}: {size:,} bytes; allowed: at most {max_bytes:,} bytes for {what}")
    try:
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as e:
        raise FileFormatError(f"{path}: cannot be read ({e.strerror or type(e).__name__}); expected {what}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FileFormatError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); expected {what}") from None


def depth(value) -> int:
    """How deeply arrays and tables nest in ``value`` (a number or string: 0), without recursion."""
    deepest, todo = 0, [(value, 0)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, dict):
            todo.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            todo.extend((x, d + 1) for x in v)
        else:
            continue
        deepest = max(deepest, d + 1)
    return deepest


def parse_toml(text: str, source: str, max_depth: int = MAX_DEPTH) -> dict:
    """Parse TOML ``text``; ``source`` (a file name) starts every message."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise FileFormatError(f"{source}: not valid TOML: {e}") from None
    except RecursionError:
        raise FileFormatError(f"{source}: not valid TOML: arrays or tables nested too deeply "
                              f"(allowed: at most {max_depth} levels)") from None
    levels = depth(data)
    if levels > max_depth:
        raise FileFormatError(f"{source}: arrays or tables nested {levels} levels deep; allowed: at most {max_depth}")
    return data


def load_toml(path, what: str) -> dict:
    """Read and parse the TOML file ``path`` (see :func:`read_text` and :func:`parse_toml`)."""
    return parse_toml(read_text(path, what), os.fspath(path))
