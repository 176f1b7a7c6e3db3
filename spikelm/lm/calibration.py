"""One calibration reused by several conversions of the same float model.

A conversion's scales come from the largest |x| of every quantizer point of the float model
over the calibration tokens (its *maxima*). They depend on the float model (its config, context
included, and its weights), the calibration tokens, the constant prefix the windows start with
(the attention sink) and the methods that change the float model before it is measured
(``rotate``); not on the bits, the clamp, the weight bits, the coding, the ``fisher`` steps or
a budget. A :class:`Calibration` holds the maxima with what they were computed for, so
``convert(model, calibration=snn.calibration, bits=...)`` builds the graph that calibrating
again would, bit for bit, without the float passes (SmolLM2-135M: about 10 s and two
windows' memory per conversion).

Where: :attr:`spikelm.lm.convert.SpikingLM.calibration` is the one a conversion computed or
reused; :func:`spikelm.lm.convert` and :func:`spikelm.lm.models.open_for_cli` take it wherever
they take calibration token ids. Families whose ``reuses_calibration`` is true make and read
one (the Llama family and those built on it, Qwen3 and Gemma, and the shared decoder's
families: OPT, GPT-NeoX, Phi-3); GPT-2 refuses it in one line.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from spikelm.errors import ConfigError

#: every this many values of each float tensor enter :func:`weights_digest` (a prime: no
#: stride of a tensor's rows lines up with it)
DIGEST_STRIDE = 997
#: the fix a refusal for another model names
OTHER_MODEL = "give token ids to calibrate this model (or the calibration of one of its conversions)"


def weights_digest(params: Mapping) -> str:
    """A cheap fingerprint of a model's float weights: sha256 of every tensor's name, shape and every
    :data:`DIGEST_STRIDE`-th value (as float64: the same model stored in float32 or float64 agrees).
    Two checkpoints of one shape (another fine-tune, another GGUF quantization) differ in it."""
    from spikelm.lm.tensors import stored

    h = hashlib.sha256()
    for name in sorted(params):
        a = stored(params, name)
        h.update(f"{name}{a.shape}".encode())
        h.update(np.ascontiguousarray(a.reshape(-1)[::DIGEST_STRIDE], dtype=np.float64).tobytes())
    return h.hexdigest()


def _frozen(a, dtype) -> np.ndarray:
    a = np.array(a, dtype=dtype)  # a copy: the caller's array may change, this one may not
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Calibration:
    """The calibration maxima of a float model and what they were computed for (module docstring).

    Attributes
    ----------
    config : a family's config (frozen dataclass)
        The float model's config, its context (``n_positions``) included: the windows are as
        long as the context.
    weights : str
        :func:`weights_digest` of the float model's weights, before any method changed them.
    methods : tuple of str
        The methods on that change the float model the maxima are measured on (``rotate``).
    prefix : 1-D int64 array
        The token ids every window starts with (the attention sink's BOS; empty: none).
    ids : 1-D int64 array
        The calibration token ids read (the ``fisher`` method and a budget's cost estimate read
        them again).
    maxabs : mapping of str to float64 array
        Max |x| per channel (per tensor at some points) of each quantizer point, the prefix
        positions left out.
    """

    config: object
    weights: str
    methods: tuple
    prefix: np.ndarray
    ids: np.ndarray
    maxabs: Mapping

    def __post_init__(self):
        set_ = object.__setattr__  # (frozen: the fields are set once, here, read-only)
        set_(self, "methods", tuple(self.methods))
        set_(self, "prefix", _frozen(self.prefix, np.int64))
        set_(self, "ids", _frozen(self.ids, np.int64))
        set_(self, "maxabs", MappingProxyType({k: _frozen(v, np.float64) for k, v in self.maxabs.items()}))

    def __reduce__(self):  # (a mapping proxy does not pickle: e.g. sent to another process, rebuilt there)
        return type(self), (self.config, self.weights, self.methods, self.prefix, self.ids, dict(self.maxabs))

    @property
    def model_type(self) -> str:
        return getattr(self.config, "model_type", type(self.config).__name__)

    def check(self, config, weights: str, methods: tuple, prefix: np.ndarray) -> None:
        """Refuse, in one line naming what differs and the fix, a conversion these maxima were
        not computed for: another model type, config field (the context too), weights,
        ``rotate`` on one side only, or another prefix (``sink``)."""
        mine = getattr(config, "model_type", type(config).__name__)
        if type(config) is not type(self.config) or mine != self.model_type:
            raise ConfigError(f"calibration: computed for a {self.model_type} model, this one is {mine}; {OTHER_MODEL}")
        for f in dataclasses.fields(config):
            theirs, here = getattr(self.config, f.name), getattr(config, f.name)
            if theirs != here and f.name == "n_positions":  # the windows are as long as the context
                raise ConfigError(f"calibration: computed for context={theirs}, this conversion has context={here}; "
                                  f"give context={theirs} or token ids to calibrate again")
            if theirs != here:
                raise ConfigError(f"calibration: computed for {f.name}={theirs!r}, this model has "
                                  f"{f.name}={here!r}; {OTHER_MODEL}")
        if weights != self.weights:
            raise ConfigError("calibration: computed for other weights of this shape (another checkpoint or "
                              f"quantization); {OTHER_MODEL}")
        for m in sorted(set(methods) ^ set(self.methods)):
            was, now = ("on", "off") if m in self.methods else ("off", "on")
            raise ConfigError(f"calibration: computed with method {m} {was} (it changes the float model), this "
                              f"conversion has it {now}; turn it {was} (methods) or give token ids to calibrate again")
        prefix = np.asarray(prefix, dtype=np.int64)
        if not np.array_equal(prefix, self.prefix):
            raise ConfigError(f"calibration: computed with {_prefix_words(self.prefix)}, this conversion has "
                              f"{_prefix_words(prefix)}; give sink={bool(self.prefix.size)} or token ids to "
                              "calibrate again")


def _prefix_words(prefix) -> str:
    return f"the attention sink (prefix {prefix.tolist()})" if len(prefix) else "no attention sink (sink=False)"


def check_type(calibration, option: str = "calibration"):
    """``calibration`` if it is a :class:`Calibration`, else one line naming what it is."""
    if not isinstance(calibration, Calibration):
        raise ConfigError(f"{option}: expected a Calibration (SpikingLM.calibration of an earlier conversion), "
                          f"got a {type(calibration).__name__}")
    return calibration
