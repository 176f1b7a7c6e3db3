"""Result tables of sweeps and corpus runs: one HDF5 group, one dataset per column.

Layout of ``write_table(path, group, rows, columns, attrs)`` (several groups with ``more``)::

    /<group>/                 attrs: columns (the column order), and the given attrs
        <column>              [n_rows] float64, int64, bool or UTF-8 string

A column whose values are all integers is int64, all numbers (None for missing) float64
with NaN for missing, all booleans bool, anything else a string. Read with h5py
(``f[group][column][()]``) or :func:`read_table`. The file is written beside ``path`` and moved
into place (:func:`spikelm.io.outputs.atomic_output`), so a reader never sees half a table and a
failed write keeps the old one.
"""
from __future__ import annotations

import json
import math
import os

import h5py
import numpy as np

from spikelm.errors import FileFormatError


def _column(values):
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return np.array(values, dtype=bool)
    numeric = [v for v in values if v is not None]
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in numeric) and len(numeric) == len(values):
        return np.array(values, dtype=np.int64)
    if all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in numeric):
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    # HDF5 strings end at NUL: a NUL inside a value (a document id, say) becomes U+FFFD
    return np.array(["" if v is None else (v if isinstance(v, str) else json.dumps(v)).replace("\x00", "\ufffd")
                     for v in values], dtype=object)


def write_table(path, group: str, rows: list, columns: list, attrs: dict | None = None, more: dict | None = None) -> str:
    """Write ``rows`` (dicts; missing keys are empty) as ``/<group>`` of ``path``; return the path.

    ``more``: further tables of the same file, ``{group: (rows, columns)}`` (e.g. corpus totals).
    """
    from spikelm.io.outputs import atomic_output

    path = os.fspath(path)
    tables = {group: (rows, columns, attrs), **{g: (r, c, None) for g, (r, c) in (more or {}).items()}}
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        for name, (rs, cols, at) in tables.items():
            g = f.create_group(name)
            g.attrs["columns"] = json.dumps(list(cols))
            for key, value in (at or {}).items():
                g.attrs[key] = value if isinstance(value, (str, int, float, bool)) else json.dumps(value)
            for c in cols:
                col = _column([r.get(c) for r in rs])
                if col.dtype == object:
                    g.create_dataset(c, data=col, dtype=h5py.string_dtype())
                else:
                    g.create_dataset(c, data=col)
    return path


def read_table(path, group: str) -> list:
    """The rows of a table written by :func:`write_table`, as dicts in column order."""
    path = os.fspath(path)
    try:
        with h5py.File(path, "r") as f:
            if group not in f or "columns" not in f[group].attrs:
                raise FileFormatError(f"{path}: no table /{group} (with a 'columns' attribute)")
            g = f[group]
            columns = json.loads(g.attrs["columns"])
            data = {}
            for c in columns:
                d = g[c]
                data[c] = d.asstr()[()] if h5py.check_string_dtype(d.dtype) else d[()]
    except OSError as e:
        raise FileFormatError(f"{path}: not a readable HDF5 file ({e})") from None
    n = len(data[columns[0]]) if columns else 0
    return [{c: _py(data[c][i]) for c in columns} for i in range(n)]


def _py(v):
    return v.item() if isinstance(v, np.generic) else v


def format_table(rows: list, columns: list, limit: int = 50) -> str:
    """A fixed-width text rendering of the first ``limit`` rows (numbers to 4 significant digits)."""
    def cell(v):
        if isinstance(v, float):
            return "-" if math.isnan(v) else f"{v:.4g}"
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return f"{v:,}"
        return "" if v is None else str(v)

    shown = rows[:limit]
    cells = [[cell(r.get(c)) for c in columns] for r in shown]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more rows in the table file")
    return "\n".join(lines)
