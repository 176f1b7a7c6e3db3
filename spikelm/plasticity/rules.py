"""Plasticity rule objects: frozen dataclasses of plain data (a checkpoint can store them).

Projection rules (attach with ``Network.connect(..., plasticity=rule)``):

- :class:`STDP`: pair-based STDP with exponential traces.
- :class:`BrainGPTSTDP`: BrainGPT eqs. 11, 15 and 16.

Population rules (attach with ``Network.add_population(..., plasticity=rule)``; a tuple of
rules is allowed):

- :class:`Homeostasis`: threshold adaptation toward a target rate (LIF, EIIF).
- :class:`BrainGPTHomeostasis`: BrainGPT eqs. 12-14 (EIIF only).

Converted LMs (:mod:`spikelm.lm.learn`) attach ``STDP``, ``BrainGPTSTDP`` and
``BrainGPTHomeostasis`` too, and two rules of their own, defined here beside the others:
:class:`TargetSpikes` (spike units adapted per token) and :class:`ReadoutError` (the readout's
weights and bias learning from the next token's error).

Units are the public ones: time constants in ms, rates in Hz. Every field is checked in
``__post_init__``; a bad value raises a one-line :class:`~spikelm.errors.ConfigError` that
names the rule and the field. See docs/plasticity.md for the equations and conventions.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from spikelm.errors import ConfigError

PAIRINGS = ("all", "nearest")
WEIGHT_DEPENDENCES = ("additive", "multiplicative")
MODES = ("online", "izhikevich2006")


def _num(rule, name, value, *, positive=False, nonnegative=False, finite=True):
    what = f"{type(rule).__name__}: field '{name}'"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{what} must be a number, got {value!r}")
    if math.isnan(value):
        raise ConfigError(f"{what} must be a number, got NaN")
    if finite and not math.isfinite(value):
        raise ConfigError(f"{what} must be finite, got {value!r}")
    if positive and not value > 0:
        raise ConfigError(f"{what} must be > 0, got {value!r}")
    if nonnegative and value < 0:
        raise ConfigError(f"{what} must be >= 0, got {value!r}")


def _choice(rule, name, value, allowed):
    if value not in allowed:
        raise ConfigError(f"{type(rule).__name__}: field '{name}' must be one of {', '.join(allowed)}, got {value!r}")


def _flag(rule, name, value):
    if not isinstance(value, bool):
        raise ConfigError(f"{type(rule).__name__}: field '{name}' must be true or false, got {value!r}")


def _bounds(rule, lo_name, hi_name):
    lo, hi = getattr(rule, lo_name), getattr(rule, hi_name)
    _num(rule, lo_name, lo, finite=False)
    _num(rule, hi_name, hi, finite=False)
    if lo > hi:
        raise ConfigError(f"{type(rule).__name__}: field '{lo_name}' ({lo}) must not exceed '{hi_name}' ({hi})")


@dataclass(frozen=True)
class STDP:
    """Pair-based STDP with exponential pre/post traces (a projection rule).

    A pre spike counts when it *arrives* at the synapse (spike step + delay); with
    ``dt_pair = t_post - t_arrival`` a pair changes the weight by ``+a_plus exp(-dt_pair/tau_plus)``
    when ``dt_pair >= 0`` (an input delivered at the step of the post spike helped cause it)
    and by ``-a_minus exp(dt_pair/tau_minus)`` when ``dt_pair < 0``.

    Parameters
    ----------
    a_plus, a_minus : float
        Potentiation and depression amplitudes (weight units), >= 0.
    tau_plus, tau_minus : float
        Trace time constants (ms), > 0.
    w_min, w_max : float
        Hard bounds: every weight is clipped to [w_min, w_max] after each change.
    pairing : "all" | "nearest"
        All-to-all (traces add 1 per spike) or symmetric nearest-spike (traces reset to 1).
    weight_dependence : "additive" | "multiplicative"
        Additive: dw = a_plus x. Multiplicative (soft bounds): dw+ = a_plus x (w_max - w),
        dw- = -a_minus x (w - w_min).
    mode : "online" | "izhikevich2006"
        Online: weights change at each pairing. ``izhikevich2006``: as in Izhikevich's
        spnet.cpp (2006), pairings accumulate in a per-synapse derivative ``sd`` and every
        ``update_every`` ms the weight moves ``w += sd_bias + sd; sd *= sd_decay`` then is clipped.
    update_every, sd_bias, sd_decay : float
        Parameters of ``izhikevich2006`` (ms; weight units; factor in [0, 1]).
    enabled : bool
        Initial on/off state (switch between runs with ``PlasticityState.set_enabled``).
    """

    a_plus: float = 0.01
    a_minus: float = 0.012
    tau_plus: float = 20.0
    tau_minus: float = 20.0
    w_min: float = 0.0
    w_max: float = 1.0
    pairing: str = "all"
    weight_dependence: str = "additive"
    mode: str = "online"
    update_every: float = 1000.0
    sd_bias: float = 0.01
    sd_decay: float = 0.9
    enabled: bool = True

    def __post_init__(self):
        for f in ("a_plus", "a_minus"):
            _num(self, f, getattr(self, f), nonnegative=True)
        for f in ("tau_plus", "tau_minus", "update_every"):
            _num(self, f, getattr(self, f), positive=True)
        _num(self, "sd_bias", self.sd_bias)
        _num(self, "sd_decay", self.sd_decay, nonnegative=True)
        if self.sd_decay > 1:
            raise ConfigError(f"STDP: field 'sd_decay' must lie in [0, 1], got {self.sd_decay!r}")
        _bounds(self, "w_min", "w_max")
        if not (math.isfinite(self.w_min) and math.isfinite(self.w_max)):
            raise ConfigError(f"STDP: fields 'w_min' and 'w_max' must be finite, got [{self.w_min}, {self.w_max}]")
        _choice(self, "pairing", self.pairing, PAIRINGS)
        _choice(self, "weight_dependence", self.weight_dependence, WEIGHT_DEPENDENCES)
        _choice(self, "mode", self.mode, MODES)
        _flag(self, "enabled", self.enabled)


@dataclass(frozen=True)
class BrainGPTSTDP:
    """BrainGPT's STDP (eqs. 11, 15) with the row-sum normalisation of eq. 16 (a projection rule).

    At a pairing, with ``dt_pair = t_post - t_arrival`` (pre spike counted at arrival)::

        delta = a_plus exp(-dt_pair / tau_plus)     if dt_pair > 0     (eq. 15)
              = -a_minus exp(dt_pair / tau_minus)   if dt_pair <= 0
        w += eta_w (delta - w)                                          (eq. 11)

    ``delta`` sums the pairs with every earlier partner spike (``pairing="all"``) or takes
    the nearest one. A spike with no partner spike yet changes nothing. After the learn
    phase of every step, every row touched (post neuron i, its incoming synapses j in this
    projection) is shifted so that ``sum_j w_ij = C_i`` (eq. 16; subtractive: each w_ij
    moves by -(sum - C_i) / n_i, so signs of mixed rows and zero sums are allowed).
    ``row_sum`` = C (the same for every row) or None: each row keeps the sum it had when
    the simulator was built.
    """

    eta_w: float = 0.01
    a_plus: float = 1.0
    a_minus: float = 1.0
    tau_plus: float = 20.0
    tau_minus: float = 20.0
    pairing: str = "all"
    normalize: bool = True
    row_sum: float | None = None
    enabled: bool = True

    def __post_init__(self):
        _num(self, "eta_w", self.eta_w)
        for f in ("a_plus", "a_minus"):
            _num(self, f, getattr(self, f), nonnegative=True)
        for f in ("tau_plus", "tau_minus"):
            _num(self, f, getattr(self, f), positive=True)
        _choice(self, "pairing", self.pairing, PAIRINGS)
        _flag(self, "normalize", self.normalize)
        if self.row_sum is not None:
            _num(self, "row_sum", self.row_sum)
        _flag(self, "enabled", self.enabled)


@dataclass(frozen=True)
class Homeostasis:
    """Homeostatic threshold adaptation toward a target rate (a population rule; LIF, EIIF).

    Each neuron keeps a rate estimate (Hz), an exponential trace with time constant
    ``tau_rate``; every step its threshold offset moves ``theta += eta * (rate - target_rate) * dt``
    (dt in s), clipped to [theta_min, theta_max]. On EIIF the offset is ``theta_base`` itself
    (clipped at 0 from below as well); on LIF it is an offset ``h`` added to the adaptive
    threshold row ``a`` (the threshold is v_th + a; see docs/plasticity.md).

    Parameters
    ----------
    target_rate : float
        Hz, >= 0.
    eta : float
        Threshold units (mV for LIF) per second per Hz of rate error, >= 0.
    tau_rate : float
        ms, > 0.
    theta_min, theta_max : float
        Bounds of the offset (may be infinite).
    """

    target_rate: float = 10.0
    eta: float = 0.1
    tau_rate: float = 1000.0
    theta_min: float = -math.inf
    theta_max: float = math.inf
    enabled: bool = True

    def __post_init__(self):
        _num(self, "target_rate", self.target_rate, nonnegative=True)
        _num(self, "eta", self.eta, nonnegative=True)
        _num(self, "tau_rate", self.tau_rate, positive=True)
        _bounds(self, "theta_min", "theta_max")
        _flag(self, "enabled", self.enabled)


@dataclass(frozen=True)
class BrainGPTHomeostasis:
    """BrainGPT eqs. 12-14 on an EIIF population (theta_base, alpha and r of each neuron).

    Per step, with S_bar the average spike count per step (exponential average of |S| over
    ``tau_avg`` ms) and V_bar the average membrane potential (after the step)::

        theta_base += eta_theta (S_bar - s_target)     (eq. 12, see the sign note)
        alpha      += eta_alpha (V_bar - v_target)     (eq. 13)
        r          += eta_r     (V_bar - v_rest)       (eq. 14)

    each clipped to its bounds (r always within [0, 1], theta_base and alpha >= 0).

    Sign note: eq. 12 as printed reads ``eta_theta (S_target - S_bar)``, which lowers the
    threshold of a neuron that fires too much (it diverges) and contradicts the paper's own
    loss, eq. 19, whose gradient gives ``S_bar - S_target``. The default follows eq. 19 (so
    the rate converges); ``eta_theta < 0`` gives the printed sign.
    """

    s_target: float = 0.1
    eta_theta: float = 0.01
    v_target: float = 0.0
    eta_alpha: float = 0.0
    v_rest: float = 0.0
    eta_r: float = 0.0
    tau_avg: float = 100.0
    theta_min: float = 0.0
    theta_max: float = math.inf
    alpha_min: float = 0.0
    alpha_max: float = math.inf
    r_min: float = 0.0
    r_max: float = 1.0
    enabled: bool = True

    def __post_init__(self):
        _num(self, "s_target", self.s_target, nonnegative=True)
        for f in ("eta_theta", "v_target", "eta_alpha", "v_rest", "eta_r"):
            _num(self, f, getattr(self, f))
        _num(self, "tau_avg", self.tau_avg, positive=True)
        for lo, hi in (("theta_min", "theta_max"), ("alpha_min", "alpha_max"), ("r_min", "r_max")):
            _bounds(self, lo, hi)
        if self.theta_min < 0 or self.alpha_min < 0:
            raise ConfigError("BrainGPTHomeostasis: fields 'theta_min' and 'alpha_min' must be >= 0 "
                              "(EIIF needs theta_base, alpha >= 0)")
        if self.r_min < 0 or self.r_max > 1:
            raise ConfigError(f"BrainGPTHomeostasis: fields 'r_min', 'r_max' must lie in [0, 1], "
                              f"got [{self.r_min}, {self.r_max}]")
        _flag(self, "enabled", self.enabled)


@dataclass(frozen=True)
class TargetSpikes:
    """Adapt each neuron's threshold, its spike unit, toward ``target`` spikes per token (a
    population rule of converted LMs only: :mod:`spikelm.lm.learn`; the engine has no tokens).

    After every token, for each neuron i of the population (a channel, the same at every
    position), with s_i the spikes it fired in that token::

        theta_i = clip(theta_i 2^(eta (s_i - target) / target), theta_min, theta_max)
        unit_i  = floor(theta_i + 1/2)

    ``theta`` starts at the neuron's unit (1: exact). A larger unit gives fewer, larger
    spikes (:mod:`spikelm.lm.learn.neurons`), so a neuron firing above target raises it.
    The step is multiplicative: how far a unit must grow scales with the neuron's codes
    (8 or 12 bits), and a relative step reaches any of them in as many tokens.

    Parameters
    ----------
    target : float
        Spikes per token per neuron, > 0.
    eta : float
        Octaves (doublings of the unit) per relative error per token, >= 0: at eta = 1 a
        neuron firing twice its target doubles its unit.
    theta_min, theta_max : float
        Bounds of theta; theta_min >= 1 (a unit below one code does not exist).
    """

    target: float = 2.0
    eta: float = 0.1
    theta_min: float = 1.0
    theta_max: float = 1024.0
    enabled: bool = True

    def __post_init__(self):
        _num(self, "target", self.target, positive=True)
        _num(self, "eta", self.eta, nonnegative=True)
        _bounds(self, "theta_min", "theta_max")
        if not self.theta_min >= 1 or not math.isfinite(self.theta_max):
            raise ConfigError(f"TargetSpikes: field 'theta_min' must be >= 1 and 'theta_max' finite, "
                              f"got [{self.theta_min}, {self.theta_max}]")
        _flag(self, "enabled", self.enabled)


PROJECTION_RULES = {"stdp": STDP, "braingpt_stdp": BrainGPTSTDP}
POPULATION_RULES = {"homeostasis": Homeostasis, "braingpt_homeostasis": BrainGPTHomeostasis}
#: which neuron models (of the population, or the post population of a projection) a rule accepts
APPLIES_TO = {
    STDP: ("lif", "eiif", "izhikevich", "signed_if"),
    BrainGPTSTDP: ("lif", "eiif", "izhikevich", "signed_if"),
    Homeostasis: ("lif", "eiif"),
    BrainGPTHomeostasis: ("eiif",),
}
RULE_NAMES = {v: k for k, v in {**PROJECTION_RULES, **POPULATION_RULES}.items()}


def check_applies(rule, target, model_name, where):
    """Raise ConfigError (prefixed by ``where``) unless ``rule`` can act on ``target``/``model_name``."""
    kinds = PROJECTION_RULES if target == "projection" else POPULATION_RULES
    name = RULE_NAMES.get(type(rule))
    if name not in kinds:
        allowed = ", ".join(kinds)
        raise ConfigError(f"{where}: rule {name or type(rule).__name__!r} cannot be attached to a {target}; "
                          f"allowed: {allowed}")
    models = APPLIES_TO[type(rule)]
    if model_name not in models:
        what = "post population" if target == "projection" else "population"
        raise ConfigError(f"{where}: rule '{name}' cannot act on a {model_name} {what}; "
                          f"it applies to {', '.join(models)}")


def rule_fields(rule) -> dict:
    """The rule as a plain dict (``rule`` name plus every field), e.g. for HDF5 attributes."""
    d = {"rule": RULE_NAMES[type(rule)]}
    d.update({f.name: getattr(rule, f.name) for f in dataclasses.fields(rule)})
    return d


@dataclass(frozen=True)
class ReadoutError:
    """A three-factor rule at a converted LM's readout (the LM head; converted LMs only).

    After each token, once the next token y is known (the text's, or the one generated), every
    output v of the readout gets the error ``e_v = softmax(z)_v - [v = y]`` of the logits z it
    gave; each synapse j -> v of the projection into the readout changes by its presynaptic
    spike count c_j (the code) times that error, normalized by the presynaptic activity::

        w_jv <- w0_jv + (1 - decay) (w_jv - w0_jv) - eta e_v c_j / (s_v sum_i c_i^2)
        b_v  <- b0_v  + (1 - decay) (b_v  - b0_v)  - eta_bias e_v

    (s_v: the output's logit scale; weights in integer units; the decay term only at
    decay > 0). e_v c_j is the exact gradient of the token's cross-entropy with respect to
    the head's weights (dynamic evaluation of the readout), scaled so that ``eta`` is the
    fraction of the error each update removes from the logits on that same input: after it,
    ``z_v`` on the same codes moves by ``-eta e_v`` (before rounding). Only outputs with
    ``|e_v| >= threshold`` learn (the target always); ``decay`` pulls what learns back toward
    the converted weights and bias, so that the model cannot drift without bound.

    Parameters
    ----------
    eta : float
        Weight rate, >= 0 (dimensionless; 0 to 1 is the sane range).
    eta_bias : float
        Bias rate, >= 0, in logit units per unit error.
    threshold : float
        Outputs whose |error| is below it do not learn, in [0, 1].
    decay : float
        Fraction of the learned change given back at every update of an output, in [0, 1).
    """

    eta: float = 0.1
    eta_bias: float = 0.0
    threshold: float = 1e-3
    decay: float = 0.0
    enabled: bool = True

    def __post_init__(self):
        _num(self, "eta", self.eta, nonnegative=True)
        _num(self, "eta_bias", self.eta_bias, nonnegative=True)
        _num(self, "threshold", self.threshold, nonnegative=True)
        _num(self, "decay", self.decay, nonnegative=True)
        if self.threshold > 1:
            raise ConfigError(f"ReadoutError: field 'threshold' must be in [0, 1], got {self.threshold!r}")
        if not self.decay < 1:
            raise ConfigError(f"ReadoutError: field 'decay' must be in [0, 1), got {self.decay!r}")
        _flag(self, "enabled", self.enabled)


@dataclass(frozen=True)
class GatedBrainGPTSTDP(BrainGPTSTDP):
    """BrainGPT's STDP (eqs. 11, 15, 16, as :class:`BrainGPTSTDP`) gated by the readout's error
    (a projection rule of converted LMs only: :mod:`spikelm.lm.learn`).

    A third factor, broadcast once per token: the rule learns during token n only if the
    model was surprised by it, ``-log p(token n) >= surprise`` under the logits of token
    n - 1 (in nats); at the first token of a sequence there is no error yet and it does not
    learn. Traces run on either way (the gate switches the weight updates, as ``enabled``).

    Parameters
    ----------
    surprise : float
        The gate's threshold in nats, >= 0 (0: every token but the first).
    """

    surprise: float = 2.0

    def __post_init__(self):
        super().__post_init__()
        _num(self, "surprise", self.surprise, nonnegative=True)
