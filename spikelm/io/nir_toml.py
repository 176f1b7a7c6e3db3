"""Write scenario data (the tables of docs/scenarios.md) as TOML text.

Python reads TOML (tomllib) but does not write it; scenarios hold only tables, strings,
numbers, booleans and lists, so this small writer is enough. Floats are written with
``repr``, the shortest text that reads back to the same float, so a written scenario
rebuilds the same network bit for bit.
"""
from __future__ import annotations

import json
import math

import numpy as np

#: Numbers per line in long lists (synapse arrays of imported networks).
PER_LINE = 12


def dumps(data: dict) -> str:
    """TOML text for ``data``; tables nest as [a.b] headers, lists of tables as [[a]]."""
    lines = []
    _table(data, [], lines)
    return "\n".join(lines).lstrip("\n") + "\n"


def _key(k):
    k = str(k)
    return k if k and k.replace("_", "").replace("-", "").isalnum() and k.isascii() else _scalar(k)


def _scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if not math.isfinite(v):
            raise ValueError(f"TOML scenario values must be finite, got {v!r}")
        return repr(v)
    if isinstance(v, str):
        # JSON's escapes are TOML's; non-ASCII stays literal (JSON's surrogate pairs are not TOML), and
        # DEL, which JSON leaves alone, must be escaped in TOML
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    raise TypeError(f"cannot write {type(v).__name__} to a scenario")


def _value(v):
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple, np.ndarray)):
        items = [_value(x) for x in v]
        if len(items) <= PER_LINE:
            return "[" + ", ".join(items) + "]"
        rows = [", ".join(items[i:i + PER_LINE]) for i in range(0, len(items), PER_LINE)]
        return "[\n    " + ",\n    ".join(rows) + ",\n]"
    return _scalar(v)


def _is_table_list(v):
    return isinstance(v, list) and v and all(isinstance(x, dict) for x in v)


def _table(t, path, lines):
    """Write table ``t`` at ``path``: its own key = value lines first (values, small tables and, below
    the top level, lists of tables inline), then its sub-tables, then (top level) [[lists]]."""
    plain = {k: v for k, v in t.items() if not isinstance(v, dict) and not _is_table_list(v)}
    inline = {k: v for k, v in t.items() if path and (isinstance(v, dict) and _leaf(v) or _is_table_list(v))}
    subs = {k: v for k, v in t.items() if isinstance(v, dict) and k not in inline}
    arrays = {k: v for k, v in t.items() if _is_table_list(v) and not path}
    if path and (plain or inline or not subs):
        lines.append("")
        lines.append("[" + ".".join(_key(p) for p in path) + "]")
    for k, v in {**plain, **inline}.items():
        lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in subs.items():
        _table(v, path + [k], lines)
    for k, items in arrays.items():
        for item in items:
            lines.append("")
            lines.append(f"[[{_key(k)}]]")
            for kk, vv in item.items():
                lines.append(f"{_key(kk)} = {_value(vv)}")


def _leaf(v):
    return all(not isinstance(x, dict) and not _is_table_list(x) for x in v.values())
