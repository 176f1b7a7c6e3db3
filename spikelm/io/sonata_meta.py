"""Run metadata of spikelm's SONATA files: what ``/spikelm`` may hold and how it is stored."""

from __future__ import annotations

import json

import h5py
import numpy as np

from spikelm.errors import ConfigError
from .sonata_format import INTERNAL_KEYS, _SHORT_STR

# ----------------------------------------------------------------------------------- metadata
#
# /spikelm attributes hold short scalars (bool, int, float, str up to 4 KiB); longer strings
# are scalar string datasets in /spikelm/text, lists/dicts/None are JSON strings in
# /spikelm/json, NumPy arrays are datasets in /spikelm/arrays, and the per-projection SynOp
# counts are two datasets /spikelm/synops/names (str) and /spikelm/synops/counts (int64).


def check_metadata(meta, src, dt):
    for key, value in list(meta.items()):
        if not isinstance(key, str) or not key or "/" in key:
            raise ConfigError(f"{src}: metadata key {key!r}; allowed: a non-empty str without '/'")
        if key == "dt":
            if value != dt:
                raise ConfigError(f"{src}: metadata['dt']: {value!r} differs from dt={dt}; "
                                  "allowed: leave it out (the writer stores dt)")
            del meta[key]
            continue
        if key in INTERNAL_KEYS:
            raise ConfigError(f"{src}: metadata[{key!r}]: set by the writer; "
                              f"allowed: any key but {list(INTERNAL_KEYS)}")
        if key == "synops":
            if not isinstance(value, dict) or not all(
                    isinstance(k, str) and isinstance(v, (int, np.integer))
                    and not isinstance(v, bool) and v >= 0 for k, v in value.items()):
                raise ConfigError(f"{src}: metadata['synops']: got {value!r}; allowed: a dict "
                                  "projection name -> SynOp count (int >= 0)")
            continue
        _meta_kind(value, f"{src}: metadata[{key!r}]")


def _meta_kind(value, where):
    if isinstance(value, (bool, np.bool_)):
        return "attr"
    if isinstance(value, (int, np.integer)):
        if not -(1 << 63) <= int(value) < (1 << 63):
            raise ConfigError(f"{where}: int {value} out of int64 range; allowed: int64 ints")
        return "attr"
    if isinstance(value, (float, np.floating)):
        return "attr"
    if isinstance(value, str):
        if "\x00" in value:      # HDF5 strings end at NUL; JSON escapes it
            return "json"
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise ConfigError(f"{where}: str is not valid UTF-8 (lone surrogate); allowed: "
                              "UTF-8 text") from None
        return "attr" if size <= _SHORT_STR else "text"
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise ConfigError(f"{where}: array dtype {value.dtype}; allowed: bool, int, float")
        return "array"
    if value is None or isinstance(value, (list, tuple, dict)):
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{where}: not JSON-serialisable ({err}); allowed: lists/dicts "
                              "of str, int, float, bool, None") from None
        return "json"
    raise ConfigError(f"{where}: type {type(value).__name__}; allowed: bool, int, float, str, "
                      "NumPy array, or JSON-serialisable list/dict/None")


def write_meta_value(meta, key, value):
    for sub in ("text", "json", "arrays"):
        if sub in meta and key in meta[sub]:
            del meta[sub][key]
    if key in meta.attrs:
        del meta.attrs[key]
    if key == "synops":
        if "synops" in meta:
            del meta["synops"]
        g = meta.create_group("synops")
        names = list(value)
        g.create_dataset("names", data=np.array(names, dtype=object),
                         dtype=h5py.string_dtype())
        g.create_dataset("counts", data=np.array([int(value[k]) for k in names], dtype=np.int64))
        return
    kind = _meta_kind(value, key)
    if kind == "attr":
        if isinstance(value, (bool, np.bool_)):
            meta.attrs[key] = np.bool_(value)
        elif isinstance(value, (int, np.integer)):
            meta.attrs[key] = np.int64(value)
        elif isinstance(value, (float, np.floating)):
            meta.attrs[key] = np.float64(value)
        else:
            meta.attrs[key] = value
    elif kind == "text":
        meta.require_group("text").create_dataset(key, data=value, dtype=h5py.string_dtype())
    elif kind == "json":
        meta.require_group("json").create_dataset(key, data=json.dumps(value),
                                                  dtype=h5py.string_dtype())
    else:
        meta.require_group("arrays").create_dataset(key, data=value)
