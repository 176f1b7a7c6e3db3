"""The Potjans-Diesmann (2014) cortical microcircuit ("PD14"), built into a Network at any scale.

Eight populations of LIF neurons with exponential currents (NEST's ``iaf_psc_exp``): an
excitatory and an inhibitory one in each of layers 2/3, 4, 5 and 6, 77,169 neurons under
1 mm^2 of cortex. Connections follow the reference implementation (INM-6
microcircuit-PD14-model, PyNEST; parameters and rules as in its ``network_params.py``,
``network.py`` and ``helpers.py``), rewritten here:

- synapse counts from the connection probabilities: K = log(1 - p) / log(1 - 1 / (N_pre N_post))
  for the full model, times ``scale * indegree_scale``; each projection is that fixed
  total number of synapses with pre and post drawn uniformly (multapses and autapses allowed);
- weights from postsynaptic potentials: PSC = PSP / (the PSP of a 1 pA current), normal with
  a relative deviation ``weight_rel_std`` redrawn outside [0, inf) (excitatory) or (-inf, 0]
  (inhibitory); inhibitory PSPs are ``g`` times the excitatory one, L4E -> L23E twice it;
- delays normal with a relative deviation ``delay_rel_std``, redrawn below half a step, then
  rounded to whole steps (NEST's), plus one step: spikelm's d steps on an exponential
  synapse are NEST's d - 1 (docs/coming-from-brian2-nest.md), so the timing is NEST's;
- background: Poisson input at ``bg_rate`` from ``k_ext`` inputs per neuron with the
  excitatory weight, or the DC current of the same mean (``background = "dc"``);
- initial potentials normal per population (``v0 = "optimized"``: the reference's
  population means and deviations; ``"original"``: one mean and deviation for all);
- reduced in-degrees (``indegree_scale < 1``) scale the weights by 1 / sqrt(scale) and add
  the DC that keeps each population's mean input, from the full model's rates
  ``full_mean_rates`` (the reference's compensation).

Units: NEST's currents (pA) and capacitance (pF) become spikelm's: a weight is the jump of
R I in mV (R = tau_m / C_m), a current ``amplitude`` is in nA through ``r_m`` = R in MOhm.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spikelm.errors import ConfigError

from .connectivity import FixedTotalNumber
from .stimulus import ConstantCurrent, PoissonInput
from .values import Normal

BACKGROUNDS = ("poisson", "dc")
V0_TYPES = ("optimized", "original")


@dataclass(frozen=True)
class NeuronParams:
    """The one neuron of the model (NEST's ``iaf_psc_exp`` names; mV, ms, pF)."""

    c_m: float
    tau_m: float
    tau_syn: float
    e_l: float
    v_th: float
    v_reset: float
    t_ref: float


@dataclass(frozen=True)
class MicrocircuitParams:
    """Everything that defines the model (see the module docstring); ``scale`` multiplies the
    neurons and the in-degrees, ``indegree_scale`` (default: ``scale``) the in-degrees alone."""

    populations: tuple
    n: tuple                 #: neurons of the full model
    conn_probs: tuple        #: [target][source]
    k_ext: tuple             #: external inputs per neuron
    full_mean_rates: tuple   #: Hz, of the full model (for the compensation of reduced in-degrees)
    v0_mean: tuple           #: mV, per population ("optimized")
    v0_std: tuple
    neuron: NeuronParams
    scale: float = 1.0
    indegree_scale: float | None = None
    background: str = "poisson"
    v0: str = "optimized"
    v0_original: tuple = (-58.0, 10.0)   #: mean, std (mV) for every population ("original")
    bg_rate: float = 8.0                 #: Hz per external input
    psp_exc: float = 0.15                #: mV
    psp_l4e_to_l23e: float = 2.0         #: times psp_exc
    g: float = -4.0
    weight_rel_std: float = 0.1
    delay_exc: float = 1.5               #: ms
    delay_inh: float = 0.75
    delay_rel_std: float = 0.5
    weight_dtype: str = "float32"

    def __post_init__(self):
        P = len(self.populations)
        for name in ("n", "k_ext", "full_mean_rates", "v0_mean", "v0_std"):
            if len(getattr(self, name)) != P:
                raise ConfigError(f"microcircuit: '{name}' has {len(getattr(self, name))} values for {P} populations")
        if len(self.conn_probs) != P or any(len(row) != P for row in self.conn_probs):
            raise ConfigError(f"microcircuit: 'conn_probs' must be {P} x {P} (target x source)")
        if P < 2 or P % 2:
            raise ConfigError(f"microcircuit: populations come in pairs (excitatory, inhibitory) per layer, got {P}")
        if not (0 < self.scale <= 1) or not (0 < self.k_scale <= 1):
            raise ConfigError(f"microcircuit: 'scale' and 'indegree_scale' must lie in (0, 1], got {self.scale!r}, "
                              f"{self.indegree_scale!r}")
        if any(not 0 <= p < 1 for row in self.conn_probs for p in row):
            raise ConfigError("microcircuit: 'conn_probs' must lie in [0, 1)")
        if self.background not in BACKGROUNDS or self.v0 not in V0_TYPES:
            raise ConfigError(f"microcircuit: background must be one of {', '.join(BACKGROUNDS)} and v0 one of "
                              f"{', '.join(V0_TYPES)}; got {self.background!r}, {self.v0!r}")

    @property
    def k_scale(self):
        return self.scale if self.indegree_scale is None else self.indegree_scale

    @classmethod
    def from_table(cls, t):
        """From a scenario's (checked) ``[microcircuit]`` table."""
        d = {k: (tuple(tuple(r) for r in v) if k == "conn_probs" else tuple(v) if isinstance(v, list) else v)
             for k, v in t.items() if k != "neuron"}
        return cls(neuron=NeuronParams(**t["neuron"]), **d)


def full_synapses(p: MicrocircuitParams) -> np.ndarray:
    """Synapses [target, source] of the full model (float): log(1 - p) / log(1 - 1 / (N_t N_s))."""
    n = np.asarray(p.n, dtype=float)
    prod = np.outer(n, n)
    return np.log1p(-np.asarray(p.conn_probs, dtype=float)) / np.log1p(-1.0 / prod)


def psc_per_psp(nrn: NeuronParams) -> float:
    """pA of an exponential current whose PSP peaks at 1 mV (LIF with tau_syn != tau_m)."""
    tm, ts, c = nrn.tau_m, nrn.tau_syn, nrn.c_m
    t_peak = tm * ts / (tm - ts) * math.log(tm / ts)     # where the PSP of a unit current is largest
    v_peak = ts * tm / (c * (tm - ts)) * (math.exp(-t_peak / tm) - math.exp(-t_peak / ts))
    return 1.0 / v_peak


def derived(p: MicrocircuitParams) -> dict:
    """Neurons, synapses, mean weights (pA), external weight and DC (pA) of the scaled model."""
    P = len(p.populations)
    full = full_synapses(p)
    k = p.k_scale
    psp = np.zeros((P, P))
    psp[:, 0::2] = p.psp_exc
    psp[:, 1::2] = p.psp_exc * p.g
    psp[0, 2] = p.psp_exc * p.psp_l4e_to_l23e
    unit = psc_per_psp(p.neuron)
    w = psp * unit
    w_ext = p.psp_exc * unit
    k_ext = np.asarray(p.k_ext, dtype=float)
    ts = p.neuron.tau_syn
    dc = np.zeros(P) if p.background == "poisson" else 1e-3 * ts * p.bg_rate * k_ext * w_ext
    if k != 1.0:
        # keep each population's mean input: the recurrent (and Poisson) input the weights
        # scaled by sqrt(k) no longer bring comes as DC, at the full model's rates
        indeg = full / np.asarray(p.n, dtype=float)[:, None]
        rec = (w * indeg * np.asarray(p.full_mean_rates)).sum(axis=1)
        dc = dc + 1e-3 * ts * (1.0 - math.sqrt(k)) * rec
        if p.background == "poisson":
            dc = dc + 1e-3 * ts * (1.0 - math.sqrt(k)) * w_ext * k_ext * p.bg_rate
        w, w_ext = w / math.sqrt(k), w_ext / math.sqrt(k)
    return {"n": np.round(np.asarray(p.n) * p.scale).astype(np.int64),
            "synapses": np.round(full * p.scale * k).astype(np.int64),
            "weight": w, "weight_ext": w_ext, "k_ext": np.round(k_ext * k).astype(np.int64), "dc": dc}


def build(net, p: MicrocircuitParams):
    """Add the microcircuit's populations, projections and background to ``net``."""
    nrn = p.neuron
    d = derived(p)
    r_m = 1e3 * nrn.tau_m / nrn.c_m           # MOhm: a current of 1 pA moves V by r_m * 1e-3 mV
    to_mv = r_m * 1e-3                          # pA -> mV (the jump of R I)
    params = dict(tau_m=nrn.tau_m, v_th=nrn.v_th, v_reset=nrn.v_reset, e_l=nrn.e_l, t_ref=nrn.t_ref,
                  tau_e=nrn.tau_syn, tau_i=nrn.tau_syn, r_m=r_m)
    for i, name in enumerate(p.populations):
        mean, std = (p.v0_mean[i], p.v0_std[i]) if p.v0 == "optimized" else p.v0_original
        net.add_population(name, "lif", int(max(d["n"][i], 1)), params=params, init={"v": Normal(mean, std)})
    dt = net.dt
    for i, post in enumerate(p.populations):          # targets
        for j, pre in enumerate(p.populations):       # sources
            n_syn = int(d["synapses"][i, j])
            if n_syn == 0:
                continue
            w = d["weight"][i, j] * to_mv
            exc = j % 2 == 0
            weight = Normal(w, abs(w) * p.weight_rel_std, *((0.0, math.inf) if exc else (-math.inf, 0.0)))
            mean = p.delay_exc if exc else p.delay_inh
            delay = _nest_delays(Normal(mean, mean * p.delay_rel_std, 0.5 * dt, math.inf), n_syn, net.rng, dt)
            net.connect(pre, post, FixedTotalNumber(n_syn), weight=weight, delay=delay,
                        target="exc" if exc else "inh", name=f"{pre}_to_{post}", weight_dtype=p.weight_dtype)
    for i, name in enumerate(p.populations):
        if p.background == "poisson" and d["k_ext"][i] > 0:
            net.add_stimulus(PoissonInput(name, float(p.bg_rate * d["k_ext"][i]), float(d["weight_ext"] * to_mv)))
        if d["dc"][i] != 0.0:
            net.add_stimulus(ConstantCurrent(name, float(d["dc"][i] * 1e-3)))   # nA
    return net


def _nest_delays(dist, n, rng, dt):
    """Per-synapse delays (ms) as NEST draws them (redrawn below half a step, rounded to whole
    steps, at least one), plus one step: spikelm's exponential-synapse convention."""
    steps = np.maximum(np.rint(dist.draw(n, rng) / dt), 1.0)
    return (steps + 1.0) * dt
