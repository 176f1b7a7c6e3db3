"""Scenario files: a network and a run described in TOML (no code, nothing evaluated).

The format is documented field by field in ``docs/scenarios.md``. :func:`load_scenario`
reads and validates a file and returns a :class:`Scenario` whose ``build(seed)`` makes the
:class:`~spikelm.network.Network`. Every problem raises :class:`ConfigError` with one line:
``<file>: <dotted.field>: <what is wrong and what is allowed>``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from spikelm.errors import ConfigError, SpikelmError
from spikelm.network import Network, Normal, Uniform, connectivity, microcircuit, stimulus
from spikelm.network.models import get_model
from spikelm.network.values import draw
from spikelm.simulator.monitors import StateMonitor

from .scenario_check import check
from .textfile import parse_toml, read_text

#: Steps a run may take unless the user allows more (``[run] max_steps``, ``--max-steps``):
#: about 28 hours of model time at dt = 0.1 ms. A longer run is refused before it starts.
MAX_STEPS = 1_000_000_000


@dataclass
class Scenario:
    """A validated scenario: the parsed table plus where it came from."""

    path: str
    text: str
    data: dict
    state_monitors: list = field(default_factory=list)

    @property
    def dt(self):
        return float(self.data["network"].get("dt", 0.1))

    @property
    def seed(self):
        return int(self.data["network"].get("seed", 0))

    def default_steps(self):
        run = self.data.get("run", {})
        if "steps" in run:
            return int(run["steps"])
        return int(round(float(run.get("duration", 1000.0)) / self.dt))

    @property
    def max_steps(self):
        """The longest run allowed: ``[run] max_steps``, default :data:`MAX_STEPS`."""
        return int(self.data.get("run", {}).get("max_steps", MAX_STEPS))

    @property
    def backend(self):
        return self.data.get("run", {}).get("backend", "numba")

    def record_spikes(self):
        return self.data.get("record", {}).get("spikes", "all")

    def weight_snapshots(self):
        """{projection: every_steps} from [record.weights]."""
        w = self.data.get("record", {}).get("weights")
        if not w:
            return {}
        every = max(1, int(round(float(w["every"]) / self.dt)))
        return {p: every for p in w["projections"]}

    def build(self, seed=None, memory_limit=None) -> Network:
        """Build the network (``seed`` overrides the file's; ``memory_limit`` in bytes, see Network)."""
        try:
            return _build(self, self.seed if seed is None else seed, memory_limit)
        except SpikelmError as e:
            msg = str(e)
            raise type(e)(msg if msg.startswith(self.path) else f"{self.path}: {msg}") from None


def load_scenario(path) -> Scenario:
    """Read, parse and validate a scenario file."""
    return loads_scenario(read_text(path, "a scenario file (TOML)"), str(path))


def loads_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """Parse and validate scenario TOML ``text``; ``source`` names it in errors (a file name)."""
    data = parse_toml(text, source)
    sc = Scenario(source, text, data)
    check(sc)
    return sc


# -- building ----------------------------------------------------------------------------------
# Everything below runs on a checked table (scenario_check), so it only converts values; what
# only the built objects can tell (lengths against synapse counts, model constraints) raises
# ConfigError there, and the prefix "<file>: <field>" is added here.
def _err(sc, where, msg):
    return ConfigError(f"{sc.path}: {where}: {msg}")


def _value(v, randoms=None):
    if isinstance(v, dict) and "from" in v:
        with np.errstate(all="ignore"):      # NaN from a negative base is refused when drawn
            base = randoms[v["from"]] ** float(v.get("power", 1.0))
            return float(v.get("offset", 0.0)) + float(v.get("scale", 1.0)) * base
    if isinstance(v, dict):
        if "uniform" in v:
            a, b = v["uniform"]
            return Uniform(float(a), float(b))
        a, b = v["normal"]
        return Normal(float(a), float(b), float(v.get("low", -math.inf)), float(v.get("high", math.inf)))
    if isinstance(v, list):
        return np.asarray(v, dtype=float)
    return float(v)


def _build(sc, seed, memory_limit=None):
    d = sc.data
    net = Network(dt=sc.dt, seed=seed, memory_limit=memory_limit)
    from spikelm import plasticity as plast

    if "microcircuit" in d:
        try:
            microcircuit.build(net, microcircuit.MicrocircuitParams.from_table(d["microcircuit"]))
        except ConfigError as e:
            raise _err(sc, "microcircuit", str(e)) from None
    for name, t in d.get("populations", {}).items():
        w = f"populations.{name}"
        model = get_model(t["model"])
        try:
            net.budget.check(8 * t["n"] * len(t.get("random", {})), f"random variables of {t['n']:,} neurons")
        except ConfigError as e:
            raise _err(sc, f"{w}.random", str(e)) from None
        randoms = {r: draw(_value(spec), t["n"], net.rng, f"{w}.random.{r}")
                   for r, spec in t.get("random", {}).items()}
        params = t.get("params", {})
        if model.name == "spike_times" and "times" in params:
            params = dict(params, times=tuple(tuple(x) for x in params["times"]))
        init = {var: _value(v, randoms) for var, v in t.get("init", {}).items()}
        rule = None
        if "plasticity" in t:
            rule = plast.from_config(t["plasticity"], f"{w}.plasticity", "population", model.name)
        try:
            net.add_population(name, model, t["n"], params, init, plasticity=rule)
        except ConfigError as e:
            raise _err(sc, w, str(e)) from None
    for name, t in d.get("projections", {}).items():
        w = f"projections.{name}"
        rule = _connect_rule(sc, t.get("connect", {"rule": "all_to_all"}), f"{w}.connect")
        pl = None
        if "plasticity" in t:
            post_model = net.populations[t["post"]].model.name
            pl = plast.from_config(t["plasticity"], f"{w}.plasticity", "projection", post_model)
        try:
            net.connect(t["pre"], t["post"], rule, _value(t["weight"]),
                        _value(t["delay"]) if "delay" in t else None,
                        t.get("target", "exc"), name, pl)
        except ConfigError as e:
            raise _err(sc, w, str(e)) from None
    for i, s in enumerate(d.get("stimuli", [])):
        cls = stimulus.STIMULI[s["kind"]]
        args = {k: (tuple(v) if isinstance(v, list) else v) for k, v in s.items() if k != "kind"}
        try:
            net.add_stimulus(cls(**args))
        except ConfigError as e:
            raise _err(sc, f"stimuli[{i}]", str(e)) from None
    sc.state_monitors = [StateMonitor(m["population"], m.get("variables", ["v"]),
                                      max(1, int(round(float(m.get("every", sc.dt)) / sc.dt))), m.get("neurons"))
                         for m in d.get("record", {}).get("state", [])]
    return net


def _connect_rule(sc, t, where):
    cls = connectivity.RULES[t["rule"]]
    args = {k: (tuple(v) if isinstance(v, list) else v) for k, v in t.items() if k != "rule"}
    try:
        return cls(**args)
    except ConfigError as e:
        raise _err(sc, where, str(e)) from None
