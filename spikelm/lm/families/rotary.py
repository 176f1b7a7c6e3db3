"""Rotary position embeddings of Hugging Face's rope types, shared by the rotary families.

Channel pair i of a head (i < dim / 2) is rotated at position n by the angle ``n inv_freq_i``;
the rope types differ only in ``inv_freq`` and in a factor on cos and sin (yarn's
``attention_factor``), so every type ends as two tables cos/sin [context, dim / 2] that the
RoPE operator (:mod:`spikelm.lm.ops.rope`) reads. With ``b_i = theta^(-2i / dim)``:

- ``default``: ``inv_freq_i = b_i``;
- ``linear``: ``b_i / factor`` (positions interpolated);
- ``llama3`` (Llama 3.1/3.2): wavelengths ``2 pi / b_i`` beyond ``original / low_freq_factor``
  divided by ``factor``, below ``original / high_freq_factor`` kept, between them the mix
  ``(1 - s) b_i / factor + s b_i`` with ``s = (original / wavelength - low) / (high - low)``;
- ``yarn``: ``b_i / factor`` and ``b_i`` mixed by a linear ramp over the dimensions whose
  rotation counts lie between ``beta_slow`` and ``beta_fast`` at the original context, and
  cos/sin times ``attention_factor`` (default ``0.1 ln(factor) + 1``);
- ``dynamic`` (dynamic NTK): its base grows only past ``max_position_embeddings``; the
  context spikelm builds never does, so it is ``default`` there.

``longrope`` switches its factors with the sequence length and is refused; so is any other type.
Frequencies are computed in float64 (transformers uses float32: a relative difference of 1e-7).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from spikelm.errors import ConfigError

#: the rope types built (``dynamic`` equals ``default`` within max_position_embeddings)
ROPE_TYPES = ("default", "linear", "dynamic", "llama3", "yarn")
#: the keys each type reads besides rope_type and rope_theta
_KEYS = {"default": (), "linear": ("factor",), "dynamic": ("factor",),
         "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
         "yarn": ("factor", "original_max_position_embeddings", "attention_factor", "beta_fast", "beta_slow",
                  "mscale", "mscale_all_dim", "truncate")}


@dataclass(frozen=True)
class Rotary:
    """One rotary embedding: its base ``theta``, rope type and that type's parameters (Hugging
    Face's names; see the module docstring)."""

    rope_theta: float = 10000.0
    rope_type: str = "default"
    factor: float | None = None
    low_freq_factor: float | None = None
    high_freq_factor: float | None = None
    original_max_position_embeddings: int | None = None
    attention_factor: float | None = None
    beta_fast: float | None = None
    beta_slow: float | None = None
    mscale: float | None = None
    mscale_all_dim: float | None = None
    truncate: bool | None = None

    @classmethod
    def from_hf(cls, params, theta, max_positions: int, source: str, key: str = "rope_scaling") -> "Rotary":
        """From a Hugging Face ``rope_scaling`` / ``rope_parameters`` dict (None: plain RoPE with
        base ``theta``); a type not built, or a parameter it needs missing or out of range, is
        one line naming ``source`` and ``key``."""
        if params in (None, {}):
            params = {}
        if not isinstance(params, dict):
            raise ConfigError(f"{source}: {key}={params!r}; expected an object with rope_type")
        kind = params.get("rope_type", params.get("type", "default"))
        if kind not in ROPE_TYPES:
            raise ConfigError(f"{source}: {key} of type {kind!r} is not built; supported: "
                              f"{', '.join(ROPE_TYPES)} (longrope changes with the sequence length)")
        theta = params.get("rope_theta", theta)
        kw = {k: params[k] for k in _KEYS[kind] if params.get(k) is not None}
        if kind in ("llama3", "yarn"):
            kw.setdefault("original_max_position_embeddings", max_positions)
        need = {"linear": ("factor",), "dynamic": ("factor",), "llama3": _KEYS["llama3"], "yarn": ()}.get(kind, ())
        for k in need:
            if k not in kw:
                raise ConfigError(f"{source}: {key} of type {kind!r} needs {k!r}")
        if kind == "yarn" and "factor" not in kw:  # transformers: the ratio of the two contexts
            kw["factor"] = max_positions / kw["original_max_position_embeddings"]
        for k, v in kw.items():
            if k == "truncate":
                if not isinstance(v, bool):
                    raise ConfigError(f"{source}: {key}.truncate={v!r}; must be true or false")
            elif isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"{source}: {key}.{k}={v!r}; must be a finite number > 0")
        if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not math.isfinite(theta) or theta <= 0:
            raise ConfigError(f"{source}: rope_theta={theta!r}; must be a finite number > 0")
        if kind == "llama3" and kw["high_freq_factor"] <= kw["low_freq_factor"]:
            raise ConfigError(f"{source}: {key}: high_freq_factor={kw['high_freq_factor']} must exceed "
                              f"low_freq_factor={kw['low_freq_factor']}")
        if kind in ("llama3", "yarn") and not isinstance(kw["original_max_position_embeddings"], int):
            raise ConfigError(f"{source}: {key}.original_max_position_embeddings="
                              f"{kw['original_max_position_embeddings']!r}; must be an integer")
        return cls(rope_theta=float(theta), rope_type=kind, **kw)

    def to_hf(self) -> dict:
        """The Hugging Face ``rope_parameters`` dict (what :meth:`from_hf` reads back)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @property
    def scale(self) -> float:
        """The factor on cos and sin (yarn's attention factor; 1 for the other types)."""
        if self.rope_type != "yarn":
            return 1.0
        if self.attention_factor is not None:
            return float(self.attention_factor)
        if self.mscale and self.mscale_all_dim:
            return _mscale(self.factor, self.mscale) / _mscale(self.factor, self.mscale_all_dim)
        return _mscale(self.factor)

    def inv_freq(self, dim: int) -> np.ndarray:
        """The rotation frequencies [dim / 2] (float64)."""
        base = 1.0 / (self.rope_theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
        kind = self.rope_type
        if kind in ("default", "dynamic"):
            return base
        if kind == "linear":
            return base / self.factor
        if kind == "llama3":
            orig, lo, hi = self.original_max_position_embeddings, self.low_freq_factor, self.high_freq_factor
            wavelen = 2 * math.pi / base
            out = np.where(wavelen > orig / lo, base / self.factor, base)
            smooth = (orig / wavelen - lo) / (hi - lo)
            medium = ~(wavelen < orig / hi) & ~(wavelen > orig / lo)
            return np.where(medium, (1 - smooth) * out / self.factor + smooth * out, out)
        # yarn
        orig = self.original_max_position_embeddings
        fast = self.beta_fast or 32.0
        slow = self.beta_slow or 1.0

        def correction_dim(rotations):
            return dim * math.log(orig / (rotations * 2 * math.pi)) / (2 * math.log(self.rope_theta))

        low, high = correction_dim(fast), correction_dim(slow)
        if self.truncate is not False:
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, dim - 1)
        if low == high:
            high += 0.001  # as transformers: no division by zero
        ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - low) / (high - low), 0, 1)
        extrapolate = 1 - ramp
        return base / self.factor * (1 - extrapolate) + base * extrapolate

    def tables(self, dim: int, n_positions: int) -> tuple[np.ndarray, np.ndarray]:
        """cos and sin [n_positions, dim / 2] of the angles n inv_freq_i, times :attr:`scale`."""
        ang = np.arange(n_positions, dtype=np.float64)[:, None] * self.inv_freq(dim)[None, :]
        s = self.scale
        return np.cos(ang) * s, np.sin(ang) * s


def _mscale(scale, mscale=1.0) -> float:
    """YaRN's attention scale ``0.1 mscale ln(scale) + 1`` (1 for scale <= 1)."""
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0
