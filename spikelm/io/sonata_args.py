"""What a :class:`~spikelm.io.sonata_write.SpikeWriter` is given, checked: population sizes and
names, integer arrays, and which populations carry spike values (and how wide)."""

from __future__ import annotations

import numpy as np

from spikelm.errors import ConfigError


def _int_array(a, src, field):
    a = np.asarray(a)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1:
        raise ConfigError(f"{src}: {field}: shape {a.shape}; allowed: a 1-D array")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if np.issubdtype(a.dtype, np.floating) and np.all(a == np.round(a)):
            a = a.astype(np.int64)
        else:
            raise ConfigError(f"{src}: {field}: dtype {a.dtype}; allowed: integers")
    return a.astype(np.int64)


def _sizes(populations, src, field):
    if not isinstance(populations, dict):
        raise ConfigError(f"{src}: {field}: got {populations!r}; allowed: a dict name -> neuron count")
    for name, n in populations.items():
        _check_name(name, src, "population")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ConfigError(f"{src}: {field}[{name!r}]: got {n!r}; allowed: an int >= 0 (neuron count)")
    return {str(k): int(v) for k, v in populations.items()}


def _check_name(name, src, what):
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise ConfigError(f"{src}: {what} name: got {name!r}; allowed: a non-empty string "
                          "without '/'")


def _signed_map(signed, populations, src):
    """(population -> signed, population -> largest |value| where given as an int)."""
    if isinstance(signed, (bool, np.bool_)):
        return dict.fromkeys(populations, bool(signed)), {}
    if isinstance(signed, dict):
        unknown = sorted(set(signed) - set(populations))
        if unknown:
            raise ConfigError(f"{src}: signed: unknown populations {unknown}; "
                              f"allowed: {sorted(populations)}")
        tops = {}
        for name, v in signed.items():
            if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
                if not 1 <= v <= 32767:
                    raise ConfigError(f"{src}: signed[{name!r}]: largest value {v}; allowed: 1..32767 (int16)")
                tops[name] = int(v)
            elif not isinstance(v, (bool, np.bool_)):
                raise ConfigError(f"{src}: signed[{name!r}]: got {v!r}; allowed: a bool or the largest |value|")
        return {name: bool(signed.get(name, False)) for name in populations}, tops
    raise ConfigError(f"{src}: signed: got {signed!r}; allowed: a bool or a dict "
                      "population -> bool or largest |value|")
