"""Signed integrate-and-fire quantizer (the ST-BIF idea), the neuron of converted LMs.

It integrates its input with no leak into V and keeps a spike counter ``count`` in
[q_min, q_max]. At each step it fires at most one spike::

    +1  if V - count >= 1/2  and count < q_max   (count += 1)
    -1  if V - count < -1/2  and count > q_min   (count -= 1)

so once its input stops, after at most |V| steps, count = clamp(floor(V + 1/2), q_min,
q_max): the round-half-up quantization of V. With integer inputs V and count are integers
and every backend is bit-exact.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikelm.errors import ConfigError

from .base import NeuronModel, check_params, consts_index, pack


@dataclass(frozen=True)
class SignedIFParams:
    """Parameters of :mod:`signed_if`: the code range [q_min, q_max] (integers, q_min <= 0 <= q_max)."""

    q_min: int = -128
    q_max: int = 127

    def __post_init__(self):
        check_params(self)
        if self.q_min != int(self.q_min) or self.q_max != int(self.q_max) or not self.q_min <= 0 <= self.q_max:
            raise ConfigError(f"SignedIFParams: need integers q_min <= 0 <= q_max, got q_min={self.q_min!r}, "
                              f"q_max={self.q_max!r}")


#: the code range
CONSTS = ("q_min", "q_max")
C = consts_index(CONSTS)


def derive(p: SignedIFParams, dt: float) -> np.ndarray:
    return pack(CONSTS, q_min=p.q_min, q_max=p.q_max)


def init_state(n, p: SignedIFParams, rng):
    return {"v": np.zeros(n), "count": np.zeros(n)}


def step(s, c, inp_e, inp_i, i_ext, t):
    q_min, q_max = c[C.q_min], c[C.q_max]
    v, count = s["v"], s["count"]
    v += inp_e + inp_i + i_ext
    d = v - count
    up = (d >= 0.5) & (count < q_max)
    down = (d < -0.5) & (count > q_min)
    count += up
    count -= down
    idx = np.flatnonzero(up | down)
    return idx, np.where(up[idx], 1, -1).astype(np.int8)


def may_fire(s, c, driven, t):
    d = s["v"] - s["count"]
    return driven or bool(np.any(((d >= 0.5) & (s["count"] < c[C.q_max])) | ((d < -0.5) & (s["count"] > c[C.q_min]))))


SIGNED_IF = NeuronModel("signed_if", SignedIFParams, ("v", "count"), derive, init_state, step, may_fire,
                        ternary=True, consts=CONSTS)
