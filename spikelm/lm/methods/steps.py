"""The ``fisher`` method: the steps of the linear layers' inputs chosen by sensitivity and cost.

Channel j of a linear layer's input point p is quantized with step s_j. Its rounding error
(variance s_j^2 / 12) raises the loss by about F_j s_j^2 / 24, with F_j = E[(dL/dx_j)^2] the
empirical Fisher of the calibration text; its spikes cost SynOps: each one adds a row of
fan_p weights, and a signed-digit code spells about log2(|x_j| / s_j) / 3 + c spikes.
Minimising loss + lambda SynOps over the steps gives

    s_j = kappa sqrt(fan_p / F_j)

with one kappa for the whole model: sensitive channels, and channels whose spikes reach few
synapses, get finer steps. kappa comes from the bits (the fan-weighted mean log step equals
that of the range steps max_j / (2^(b-1) - 1) of the ``lin`` / ``act`` bits: the same average
resolution, moved to where it pays) or from a SynOps budget (bisection over
:class:`CostEstimate`). Each step stays within [max_j / finest, max_j], so a population's code
range stays bounded (``finest`` codes at the calibration maximum).

Measured on SmolLM2-135M (docs/lm-llama.md): at the SynOps of 8 uniform bits the QANN's KL
divergence from the float model is 3.5 times smaller; at equal KL, 14 % fewer SynOps.
"""

from __future__ import annotations

import math

import numpy as np

from spikelm.errors import ConfigError


def units(fisher: dict, fan: dict) -> dict:
    """Per-channel step units ``sqrt(fan_p / F_j)`` of the points in ``fan`` (F floored at 1e-9
    of its point's mean, so a channel the text never moved gets a coarse, finite step)."""
    out = {}
    for name, f_out in fan.items():
        F = np.asarray(fisher[name], dtype=np.float64)
        floor = max(float(F.mean()) * 1e-9, 1e-300)
        out[name] = np.sqrt(float(f_out) / np.maximum(F, floor))
    return out


def kappa_for_bits(u: dict, range_steps: dict, fan: dict) -> float:
    """The kappa whose steps have the fan-weighted mean log of the ``range_steps``."""
    num = den = 0.0
    for name, f_out in fan.items():
        num += f_out * float(np.sum(np.log(range_steps[name]) - np.log(u[name])))
        den += f_out * u[name].size
    return math.exp(num / den)


def steps(u: dict, kappa: float, maxabs: dict, finest: dict) -> dict:
    """``s_j = kappa u_j`` kept within [max_j / finest_p, max_j] (max_j floored like the range steps)."""
    out = {}
    for name, uu in u.items():
        m = np.asarray(maxabs[name], dtype=np.float64)
        m = np.maximum(m, max(float(m.max(initial=0.0)) * 1e-6, 1e-12))
        out[name] = np.clip(kappa * uu, m / finest[name], m)
    return out


def spike_counts(codes: np.ndarray, coding: int) -> np.ndarray:
    """Spikes of each code in ``coding`` (closed form: :func:`spikelm.lm.codings.spike_count`)."""
    from spikelm.lm.codings import spike_count

    return spike_count(coding, codes)


class CostEstimate:
    """SynOps per dense MAC of a conversion, estimated from the float model's activations at
    sample positions of the calibration text: the steered points' codes for any steps
    (``samples``: name -> values [positions, channels], each spike reaching ``fan[name]``
    synapses), everything else once (``fixed`` SynOps), against the dense ``macs``."""

    def __init__(self, samples: dict, fan: dict, fixed: float, macs: float, coding: int, ranges: dict):
        self.samples, self.fan, self.fixed, self.macs = samples, fan, float(fixed), float(macs)
        self.coding, self.ranges = coding, ranges

    def synops_per_mac(self, step: dict) -> float:
        total = self.fixed
        for name, x in self.samples.items():
            lo, hi = self.ranges(name, step)
            codes = np.clip(np.floor(x / step[name] + 0.5), lo, hi)
            total += self.fan[name] * float(spike_counts(codes, self.coding).sum())
        return total / self.macs


def kappa_for_budget(budget: float, u: dict, maxabs: dict, finest: dict, estimate: CostEstimate) -> float:
    """The kappa whose estimated SynOps per dense MAC is ``budget`` (bisection in log kappa);
    a budget below what the coarsest steps reach is refused in one line."""
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not math.isfinite(budget) or budget <= 0:
        raise ConfigError(f"budget={budget!r}; allowed: a number > 0 (SynOps per dense MAC)")
    ratios = np.concatenate([np.log(np.maximum(np.asarray(maxabs[n], dtype=np.float64), 1e-300)) - np.log(u[n])
                             for n in u])
    lo = float(ratios.min()) - math.log(max(finest.values())) - 1.0  # every step at its finest
    hi = float(ratios.max()) + 1.0                                   # every step at its maximum
    def cost(log_k):
        return estimate.synops_per_mac(steps(u, math.exp(log_k), maxabs, finest))

    least = cost(hi)
    if budget < least:
        raise ConfigError(f"budget={budget:g}: the least this model reaches is {least:.3g} SynOps per dense MAC "
                          "(estimated on the calibration text, every code at most one step of its range)")
    if budget >= cost(lo):
        return math.exp(lo)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if cost(mid) > budget:
            lo = mid
        else:
            hi = mid
    return math.exp(hi)
