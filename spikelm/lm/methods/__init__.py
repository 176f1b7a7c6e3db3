"""Conversion methods: changes to the quantized model (the QANN) that make it cheaper in
spikes or narrower in weights at the same quality. The QANN stays the exact reference of the
spiking network whatever methods are on; only which integer model is built changes.

- ``fisher`` (:mod:`.steps`): the step of every input channel of a linear layer set by how
  much the loss depends on it (the empirical Fisher of the calibration text) and by how many
  SynOps its spikes cost, instead of by its calibration maximum; the average step follows the
  ``lin`` / ``act`` bits, or a SynOps ``budget``. Needs torch (the ``lm`` extra).
- ``row-exponents`` (:func:`spikelm.lm.quantize.folded_weight_codes`): folded integer weights
  keep ``weight_bits`` significant bits per weight with a power-of-two exponent per input row
  (a shift), so an input channel of small scale is not rounded away by the largest one.
- ``rotate`` (:mod:`spikelm.lm.families.llama.rotate`): an orthogonal rotation of the
  residual stream folded into the weights (QuaRot-style); the float model is unchanged.

Which family takes which: each family's ``methods``; the docs (lm-llama.md) give the
measurements behind the defaults.
"""

from __future__ import annotations

from spikelm.errors import ConfigError

#: every method, in the order they apply
METHODS = ("rotate", "fisher", "row-exponents")


def parse_methods(methods, family=None, option: str = "methods") -> tuple[str, ...]:
    """A tuple of method names from a comma-separated string, a sequence, or None/"" (none);
    an unknown name, or one the family does not take, is one line naming the allowed ones."""
    if methods is None:
        return ()
    if isinstance(methods, str):
        names = [m.strip() for m in methods.split(",") if m.strip()]
        if methods.strip() in ("none", ""):
            names = []
    elif isinstance(methods, (list, tuple)) and all(isinstance(m, str) for m in methods):
        names = [m.strip() for m in methods]
    else:
        raise ConfigError(f"{option}={methods!r}; allowed: method names separated by commas, among "
                          f"{', '.join(METHODS)}, or none")
    allowed = getattr(family, "methods", METHODS) if family is not None else METHODS
    for m in names:
        if m not in METHODS:
            raise ConfigError(f"{option}: unknown method {m!r}; allowed: {', '.join(METHODS)} (or none)")
        if m not in allowed:
            label = getattr(family, "label", "this")
            takers = ", ".join(allowed) if allowed else "none"
            raise ConfigError(f"{option}: method {m!r} is not built for {label} models; they take: {takers}")
    seen = dict.fromkeys(names)
    return tuple(m for m in METHODS if m in seen)
