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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from spikelm.errors import ConfigError

GROUPS = ("lin", "act", "res", "att", "oth")
MIN_BITS, MAX_BITS = 2, 16
DEFAULT_BITS = 8


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
