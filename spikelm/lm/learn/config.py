"""Plasticity files of converted LMs: which rules act where, and which neurons populations use.

A plasticity file is plain TOML data (no code; nothing in it is evaluated)::

    [projections."h0.fc".plasticity]      # the projection into h0.fc (or "h0.ln2->h0.fc")
    rule = "braingpt_stdp"                # stdp | braingpt_stdp
    eta_w = 0.001

    [projections.head.plasticity]         # the projection into the readout (the LM head)
    rule = "readout_error"                # the next token's error times the presynaptic codes
    eta = 0.1

    [populations."h*.fc"]                 # a population name or a glob pattern
    neuron = "eiif_exact"                 # signed_if (default) | eiif_exact
    theta_base = 0.5                      # eiif_exact: initial theta_base, alpha, r
    alpha = 1.0
    r = 1.0

    [populations."h*.fc".plasticity]
    rule = "braingpt_homeostasis"         # eiif_exact populations; target_spikes: signed_if ones

Rules are the engine's dataclasses (:mod:`spikelm.plasticity.rules`: ``STDP``,
``BrainGPTSTDP``, ``BrainGPTHomeostasis``, and ``TargetSpikes`` and ``ReadoutError``, which only
converted LMs run)
with the LM's time unit, the step, where they say ms. Every problem is one :class:`~spikelm.errors.ConfigError`
line naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

from spikelm.errors import ConfigError
from spikelm.lm.graph import NEURONS
from spikelm.plasticity.config import from_config
from spikelm.plasticity.rules import (STDP, BrainGPTHomeostasis, BrainGPTSTDP, GatedBrainGPTSTDP, ReadoutError,
                                      TargetSpikes)


PROJECTION_RULES = {"stdp": STDP, "braingpt_stdp": BrainGPTSTDP, "gated_braingpt_stdp": GatedBrainGPTSTDP,
                    "readout_error": ReadoutError}
POPULATION_RULES = {"braingpt_homeostasis": BrainGPTHomeostasis, "target_spikes": TargetSpikes}
RULE_NAMES = {v: k for k, v in {**PROJECTION_RULES, **POPULATION_RULES}.items()}
#: the neuron a population rule needs
NEEDS = {BrainGPTHomeostasis: "eiif_exact", TargetSpikes: "signed_if"}
NEURON_FIELDS = {"neuron", "theta_base", "alpha", "r", "unit", "plasticity"}
#: the largest integer weight of any converted model (16-bit codes)
WIDEST = 32767.0


@dataclass(frozen=True)
class NeuronChoice:
    """The neuron of a population: ``signed_if`` with a spike ``unit`` or ``eiif_exact`` with its parameters."""

    neuron: str = "signed_if"
    theta_base: float = 0.5
    alpha: float = 1.0
    r: float = 1.0
    unit: int = 1


@dataclass
class Plasticity:
    """Rules and neuron choices of a plasticity file, by the names (or patterns) it used.

    ``projections``: name -> projection rule; ``populations``: name -> population rule;
    ``neurons``: name -> :class:`NeuronChoice`; ``source``: the file (for messages).
    """

    projections: dict = field(default_factory=dict)
    populations: dict = field(default_factory=dict)
    neurons: dict = field(default_factory=dict)
    source: str = "plasticity"

    def to_dict(self) -> dict:
        """Plain data (the file's layout), e.g. for a checkpoint; :meth:`from_dict` reads it back."""
        out: dict = {}
        for name, rule in self.projections.items():
            out.setdefault("projections", {})[name] = {"plasticity": rule_table(rule)}
        for name, ch in self.neurons.items():
            d = {"neuron": ch.neuron}
            d.update({"unit": ch.unit} if ch.neuron == "signed_if" else
                     {"theta_base": ch.theta_base, "alpha": ch.alpha, "r": ch.r})
            out.setdefault("populations", {})[name] = d
        for name, rule in self.populations.items():
            out.setdefault("populations", {}).setdefault(name, {})["plasticity"] = rule_table(rule)
        return out

    @classmethod
    def from_dict(cls, data, source: str = "plasticity") -> "Plasticity":
        """Build from the file's layout (a dict as TOML gives), checking every field."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: must be a table, got {type(data).__name__}")
        bad = sorted(set(data) - {"projections", "populations"})
        if bad:
            raise ConfigError(f"{source}: {bad[0]}: unknown section; allowed: projections, populations")
        out = cls(source=source)
        for name, tab in _tables(data, "projections", source):
            where = f"{source}: projections.{name}"
            extra = sorted(set(tab) - {"plasticity"})
            if extra or "plasticity" not in tab:
                raise ConfigError(f"{where}.{extra[0] if extra else 'plasticity'}: "
                                  f"{'unknown field' if extra else 'missing'}; a projection takes a plasticity table")
            out.projections[name] = _rule(tab["plasticity"], f"{where}.plasticity", "projection")
        for name, tab in _tables(data, "populations", source):
            where = f"{source}: populations.{name}"
            extra = sorted(set(tab) - NEURON_FIELDS)
            if extra:
                raise ConfigError(f"{where}.{extra[0]}: unknown field; allowed: {', '.join(sorted(NEURON_FIELDS))}")
            ch = _neuron(tab, where)
            if ch is not None:
                out.neurons[name] = ch
            if "plasticity" in tab:
                out.populations[name] = _rule(tab["plasticity"], f"{where}.plasticity", "population")
        return out


def load(path) -> Plasticity:
    """Read a plasticity file (TOML); a missing, unreadable or bad file is one line, naming it
    (:func:`spikelm.io.textfile.load_toml`: no named pipe opened, size and nesting bounded)."""
    from spikelm.io.textfile import load_toml

    return Plasticity.from_dict(load_toml(path, "a plasticity file (TOML)"), str(path))


def as_plasticity(plasticity) -> Plasticity | None:
    """A :class:`Plasticity` from one, a file path or a dict (None stays None)."""
    if plasticity is None or isinstance(plasticity, Plasticity):
        return plasticity
    if isinstance(plasticity, (str, Path)):
        return load(plasticity)
    if isinstance(plasticity, dict):
        return Plasticity.from_dict(plasticity)
    raise ConfigError(f"plasticity: a Plasticity, a TOML file path or a dict, got {type(plasticity).__name__}")


def rule_table(rule) -> dict:
    """A rule as its file table (``rule`` plus every field; infinities as strings)."""
    d = {"rule": RULE_NAMES[type(rule)]}
    for f in dataclasses.fields(rule):
        v = getattr(rule, f.name)
        if v is None:
            continue
        d[f.name] = ("inf" if v > 0 else "-inf") if isinstance(v, float) and math.isinf(v) else v
    return d


def _tables(data, section, source):
    sec = data.get(section, {})
    if not isinstance(sec, dict):
        raise ConfigError(f"{source}: {section}: must be a table of names, got {sec!r}")
    for name, tab in sec.items():
        if not isinstance(tab, dict):
            raise ConfigError(f"{source}: {section}.{name}: must be a table, got {tab!r}")
        yield name, tab


def _rule(table, where, target):
    kinds = PROJECTION_RULES if target == "projection" else POPULATION_RULES
    name = table.get("rule") if isinstance(table, dict) else None
    if isinstance(table, dict) and name is not None and name not in kinds:
        raise ConfigError(f"{where}.rule: unknown {target} rule {name!r} for a converted LM; "
                          f"allowed: {', '.join(kinds)}")
    if name == "stdp":  # default bounds: the widest integer weight range (cut to each projection's)
        table = {"w_min": -WIDEST, "w_max": WIDEST, **table}
    rule = from_config(table, where, target, None, kinds=kinds)
    if isinstance(rule, STDP) and rule.mode != "online":
        raise ConfigError(f"{where}.mode: {rule.mode!r}; converted LMs run STDP 'online' only")
    return rule


def _neuron(tab, where):
    if not NEURON_FIELDS.intersection(tab) - {"plasticity"}:
        return None
    neuron = tab.get("neuron", "signed_if")
    if neuron == "eiif":  # the name of the engine's variant: say which one an LM runs
        raise ConfigError(f"{where}.neuron: 'eiif' is the engine's EI-IF (BrainGPT eq. 1 as printed: t from 1, "
                          "V <= -theta); converted LMs run 'eiif_exact' (t from 0, V < -theta: the quantizer's "
                          "code at theta_base 1/2, alpha 1, r 1)")
    if neuron not in NEURONS:
        raise ConfigError(f"{where}.neuron: {neuron!r}; allowed: {', '.join(NEURONS)}")
    mine = {"unit"} if neuron == "signed_if" else {"theta_base", "alpha", "r"}
    other = sorted(set(tab) & ({"unit", "theta_base", "alpha", "r"} - mine))
    if other:
        raise ConfigError(f"{where}.{other[0]}: not a parameter of a {neuron} neuron; it takes {', '.join(sorted(mine))}")
    kw = {"neuron": neuron}
    if neuron == "signed_if":
        u = tab.get("unit", 1)
        if isinstance(u, bool) or not isinstance(u, int) or not 1 <= u <= 2**20:
            raise ConfigError(f"{where}.unit: must be an integer from 1 to 2^20, got {u!r}")
        kw["unit"] = u
    for key, lo, hi in (("theta_base", 0.0, math.inf), ("alpha", 0.0, math.inf), ("r", 0.0, 1.0)):
        if key in tab:
            v = tab[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
                span = f"in [{lo:g}, {hi:g}]" if math.isfinite(hi) else f">= {lo:g}"
                raise ConfigError(f"{where}.{key}: must be a finite number {span}, got {v!r}")
            kw[key] = float(v)
    return NeuronChoice(**kw)
