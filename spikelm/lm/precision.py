"""Activation precision per quantizer point group.

Few-spike codings make a wide code cost a few spikes, so precision may differ by where a
code sits. Groups (every quantizer point belongs to one):

- ``lin``: inputs of linear layers: normalisation outputs and the attention output;
- ``act``: the MLP activation (a GELU's output; a gated MLP's product);
- ``res``: the residual stream (the embedding and every residual sum);
- ``att``: attention probabilities (unsigned codes, scale 1 / (2^bits - 1));
- ``oth``: every other point (Q, K, V, projection outputs, MLP inputs).

Written ``8`` (every group) or ``"lin=8,res=12,att=12"`` (unnamed groups take the default,
8), or as a mapping. Bits run from 2 to 16 in every group.

The **clamp** of a group is the code range over the calibration maximum: a point of b bits
has the step (calibration maximum) / (2^(b-1) - 1) and codes up to clamp times that, so a
value beyond what the calibration text reached costs a few more spikes instead of being
clipped. Written like the bits (``8`` or ``"lin=32,act=64,res=8,oth=8"``), integers 1 to
1024, for every group but ``att`` (probabilities never exceed 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from spikelm.errors import ConfigError

GROUPS = ("lin", "act", "res", "att", "oth")
MIN_BITS, MAX_BITS = 2, 16
DEFAULT_BITS = 8
#: groups that take a clamp (attention probabilities lie in [0, 1] by construction)
CLAMP_GROUPS = ("lin", "act", "res", "oth")
MIN_CLAMP, MAX_CLAMP = 1, 1024


@dataclass(frozen=True)
class Precision:
    """Bits of each point group (see the module docstring)."""

    lin: int = DEFAULT_BITS
    act: int = DEFAULT_BITS
    res: int = DEFAULT_BITS
    att: int = DEFAULT_BITS
    oth: int = DEFAULT_BITS

    def __post_init__(self):
        for g in GROUPS:
            b = getattr(self, g)
            if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or not MIN_BITS <= b <= MAX_BITS:
                raise ConfigError(f"bits: {g}={b!r}; allowed: an integer from {MIN_BITS} to {MAX_BITS}")

    @property
    def uniform(self) -> int | None:
        """The common width when every group has the same, else None."""
        values = {getattr(self, g) for g in GROUPS}
        return values.pop() if len(values) == 1 else None

    def to_dict(self) -> dict:
        return {k: int(v) for k, v in asdict(self).items()}

    def __str__(self) -> str:
        u = self.uniform
        return str(u) if u is not None else ",".join(f"{g}={getattr(self, g)}" for g in GROUPS)

    def signed_range(self, group: str) -> tuple[int, int]:
        q = 2 ** (getattr(self, group) - 1) - 1
        return -q, q

    def unsigned_range(self, group: str) -> tuple[int, int]:
        return 0, 2 ** getattr(self, group) - 1


def parse_bits(bits, option: str = "bits") -> Precision:
    """A :class:`Precision` from an int, a ``"group=bits,..."`` string, a mapping or a Precision."""
    if isinstance(bits, Precision):
        return bits
    allowed = (f"an integer {MIN_BITS}-{MAX_BITS}, or group=bits pairs separated by commas with groups "
               f"{', '.join(GROUPS)}")
    if isinstance(bits, (int, np.integer)) and not isinstance(bits, bool):
        if not MIN_BITS <= bits <= MAX_BITS:
            raise ConfigError(f"{option}={bits!r}; allowed: {allowed}")
        return Precision(*([int(bits)] * len(GROUPS)))
    if isinstance(bits, str):
        text = bits.strip()
        if text.lstrip("-").isdigit():
            return parse_bits(int(text), option)
        pairs = {}
        for part in text.split(","):
            name, eq, value = part.partition("=")
            name, value = name.strip(), value.strip()
            if not eq or name not in GROUPS or not value.lstrip("-").isdigit() or name in pairs:
                raise ConfigError(f"{option}={bits!r}: {part.strip()!r} is not understood; allowed: {allowed}")
            pairs[name] = int(value)
        bits = pairs
    if isinstance(bits, dict):
        unknown = [k for k in bits if k not in GROUPS]
        if unknown:
            raise ConfigError(f"{option}: unknown group {unknown[0]!r}; allowed: {allowed}")
        bad = [f"{k}={v!r}" for k, v in bits.items()
               if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not MIN_BITS <= v <= MAX_BITS]
        if bad:
            raise ConfigError(f"{option}: {bad[0]}; allowed: {allowed}")
        return Precision(**bits)
    raise ConfigError(f"{option}={bits!r}; allowed: {allowed}")


@dataclass(frozen=True)
class Clamp:
    """Code range over the calibration maximum, per point group (see the module docstring)."""

    lin: int = 1
    act: int = 1
    res: int = 1
    oth: int = 1

    def __post_init__(self):
        for g in CLAMP_GROUPS:
            c = getattr(self, g)
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not MIN_CLAMP <= c <= MAX_CLAMP:
                raise ConfigError(f"clamp: {g}={c!r}; allowed: an integer from {MIN_CLAMP} to {MAX_CLAMP}")

    def of(self, group: str) -> int:
        """The clamp of a point group (1 for ``att``)."""
        return 1 if group == "att" else int(getattr(self, group))

    def to_dict(self) -> dict:
        return {k: int(v) for k, v in asdict(self).items()}

    def __str__(self) -> str:
        values = {getattr(self, g) for g in CLAMP_GROUPS}
        return str(values.pop()) if len(values) == 1 else ",".join(f"{g}={getattr(self, g)}" for g in CLAMP_GROUPS)


def parse_clamp(clamp, default: "Clamp | None" = None, option: str = "clamp") -> Clamp:
    """A :class:`Clamp` from an int, a ``"group=clamp,..."`` string, a mapping or a Clamp; groups
    not named keep ``default``'s value (1 without a default)."""
    if isinstance(clamp, Clamp):
        return clamp
    base = (default or Clamp()).to_dict()
    allowed = (f"an integer {MIN_CLAMP}-{MAX_CLAMP}, or group=clamp pairs separated by commas with groups "
               f"{', '.join(CLAMP_GROUPS)}")
    if isinstance(clamp, (int, np.integer)) and not isinstance(clamp, bool):
        if not MIN_CLAMP <= clamp <= MAX_CLAMP:
            raise ConfigError(f"{option}={clamp!r}; allowed: {allowed}")
        return Clamp(*([int(clamp)] * len(CLAMP_GROUPS)))
    if isinstance(clamp, str):
        text = clamp.strip()
        if text.lstrip("-").isdigit():
            return parse_clamp(int(text), default, option)
        pairs = {}
        for part in text.split(","):
            name, eq, value = part.partition("=")
            name, value = name.strip(), value.strip()
            if name == "att":
                raise ConfigError(f"{option}={clamp!r}: group 'att' has no clamp (attention probabilities "
                                  f"are at most 1); allowed: {allowed}")
            if not eq or name not in CLAMP_GROUPS or not value.lstrip("-").isdigit() or name in pairs:
                raise ConfigError(f"{option}={clamp!r}: {part.strip()!r} is not understood; allowed: {allowed}")
            pairs[name] = int(value)
        clamp = pairs
    if isinstance(clamp, dict):
        unknown = [k for k in clamp if k not in CLAMP_GROUPS]
        if unknown:
            raise ConfigError(f"{option}: unknown group {unknown[0]!r}; allowed: {allowed}")
        bad = [f"{k}={v!r}" for k, v in clamp.items()
               if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not MIN_CLAMP <= v <= MAX_CLAMP]
        if bad:
            raise ConfigError(f"{option}: {bad[0]}; allowed: {allowed}")
        return Clamp(**{**base, **{k: int(v) for k, v in clamp.items()}})
    raise ConfigError(f"{option}={clamp!r}; allowed: {allowed}")
