"""Names or glob patterns in a plasticity file, resolved to the things they name, without overlaps.

A plasticity file names populations and projections exactly (``h0.fc``) or by glob pattern
(``h*.fc``). Two patterns that match one name used to resolve last-wins without a word, so
which rule a projection got depended on the order of tables in the file. :func:`assign`
resolves every pattern at once: an exact name wins over the patterns that also match it (the
usual "all of them, but this one differently"), and a name matched by two patterns (or named
twice) is refused, naming the file, both patterns and the name.
"""
from __future__ import annotations

import fnmatch

from spikelm.errors import ConfigError

__all__ = ["assign", "is_pattern"]


def is_pattern(text: str) -> bool:
    """Whether ``text`` holds glob characters (``*``, ``?``, ``[``)."""
    return any(c in text for c in "*?[")


def assign(patterns, names, where: str, what: str) -> dict:
    """Which pattern each name falls under: ``{name: pattern}``, in the order of ``names``.

    Parameters
    ----------
    patterns : iterable of str
        The file's keys, in file order (an exact name or a glob pattern each).
    names : sequence of str
        What there is to name (e.g. the spiking populations of the model).
    where : str
        ``"<file>: <section>"`` for messages, e.g. ``"learn.toml: populations"``.
    what : str
        What a name names, e.g. ``"spiking population"``.

    Raises
    ------
    ConfigError
        A pattern that matches nothing, or a name that two patterns match (neither of them the
        exact name), in one line naming both patterns.
    """
    names = list(names)
    known = set(names)
    exact, globbed = {}, {}
    for p in patterns:
        if not isinstance(p, str):
            raise ConfigError(f"{where}: {p!r}: expected a name or a glob pattern (a string)")
        found = [p] if p in known else [n for n in names if fnmatch.fnmatchcase(n, p)]
        if not found:
            listed = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise ConfigError(f"{where}.{p}: no {what} of this model is {p!r}; {what}s: {listed or 'none'}")
        table = exact if p in known else globbed
        for n in found:
            if n in table:
                raise ConfigError(f"{where}.{p}: {what} {n!r} is also matched by {table[n]!r}; which of the two "
                                  "applies would depend on their order: narrow one pattern, or name it exactly "
                                  "(an exact name wins over patterns)")
            table[n] = p
    return {n: exact.get(n, globbed.get(n)) for n in names if n in exact or n in globbed}
