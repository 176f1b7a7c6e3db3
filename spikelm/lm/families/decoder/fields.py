"""Reading a Hugging Face config dict: the checks every decoder family's config makes, each
refusal one line naming the source, the field, what was found and what is allowed."""

from __future__ import annotations

import math

from spikelm.errors import ConfigError
from spikelm.lm.activations import ACTIVATIONS


def positive_int(source: str, name: str, v) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ConfigError(f"{source}: {name}={v!r}; must be a positive integer")


def positive_number(source: str, name: str, v) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise ConfigError(f"{source}: {name}={v!r}; must be a finite number > 0")


def boolean(source: str, name: str, v) -> None:
    if not isinstance(v, bool):
        raise ConfigError(f"{source}: {name}={v!r}; must be true or false")


def fraction(source: str, name: str, v) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
        raise ConfigError(f"{source}: {name}={v!r}; must be a number from 0 to 1")


def activation(source: str, name: str, v, allowed=tuple(ACTIVATIONS)) -> None:
    if v not in allowed:
        raise ConfigError(f"{source}: {name}={v!r} is not supported; allowed: {', '.join(allowed)}")


def token_id(source: str, name: str, v, vocab_size: int) -> None:
    if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < vocab_size):
        raise ConfigError(f"{source}: {name}={v!r}; must be a token id below vocab_size or null")


def require(d: dict, source: str, names) -> None:
    for req in names:
        if req not in d:
            raise ConfigError(f"{source}: field {req!r} is missing")


def first_token(v):
    """A token id, or the first of a list (some configs list several BOS ids)."""
    return (v[0] if v else None) if isinstance(v, list) else v


def rope(d: dict, source: str, theta: float = 10000.0, factor: float = 1.0, old_theta: str = "rope_theta",
         old_factor: str = "partial_rotary_factor") -> tuple:
    """``(rope_theta, partial_rotary_factor)`` from either spelling (top-level fields, older
    transformers, ``old_theta`` / ``old_factor``; or ``rope_parameters`` / ``rope_scaling``,
    newer); a scaling type other than plain RoPE is refused, naming the field."""
    theta, factor = d.get(old_theta, theta), d.get(old_factor, factor)
    for key in ("rope_scaling", "rope_parameters"):
        scaling = d.get(key)
        if scaling in (None, {}):
            continue
        kind = scaling.get("rope_type", scaling.get("type", "default")) if isinstance(scaling, dict) else scaling
        if kind != "default":
            raise ConfigError(f"{source}: {key} of type {kind!r} is not built; supported: plain RoPE "
                              "(rope_type 'default')")
        theta = scaling.get("rope_theta", theta)
        factor = scaling.get("partial_rotary_factor", factor)
    positive_number(source, "rope_theta", theta)
    fraction(source, "partial_rotary_factor", factor)
    return float(theta), float(factor)


def rotary_dim(source: str, head_dim: int, factor: float) -> int:
    """Channels rotated per head: int(head_dim x factor), as transformers computes it; even."""
    r = int(head_dim * factor)
    if r % 2:
        raise ConfigError(f"{source}: partial_rotary_factor={factor} of head_dim {head_dim} rotates {r} channels; "
                          "RoPE needs an even number")
    return r


def context(source: str, n_positions, max_positions: int) -> int:
    """The context to build: given, or min(max_position_embeddings, 1024); at most the maximum."""
    ctx = n_positions if n_positions is not None else min(max_positions, 1024)
    positive_int(source, "context", ctx)
    if ctx > max_positions:
        raise ConfigError(f"context {ctx} exceeds the model's max_position_embeddings={max_positions}")
    return ctx


def sliding_window(source: str, d: dict, ctx: int) -> None:
    window = d.get("sliding_window")
    if window is not None and d.get("use_sliding_window", True) is not False and window < ctx:
        raise ConfigError(f"{source}: sliding_window={window} is smaller than the context {ctx}: "
                          "sliding-window attention is not built (choose a context <= the window)")
