"""Scenario files: a network and a run described in TOML (no code, nothing evaluated).

The format is documented field by field in ``docs/scenarios.md``. :func:`load_scenario`
reads and validates a file and returns a :class:`Scenario` whose ``build(seed)`` makes the
:class:`~spikelm.network.Network`. Every problem raises :class:`ConfigError` with one line:
``<file>: <dotted.field>: <what is wrong and what is allowed>``.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from spikelm.errors import ConfigError, SpikelmError
from spikelm.network import Network, Normal, Uniform, connectivity, stimulus
from spikelm.network.models import get_model
from spikelm.simulator.monitors import StateMonitor

TOP = {"network", "populations", "projections", "stimuli", "record", "run", "description"}
NETWORK = {"dt", "seed"}
POPULATION = {"model", "n", "params", "init", "random", "plasticity"}
PROJECTION = {"pre", "post", "connect", "weight", "delay", "target", "plasticity"}
RUN = {"duration", "steps", "backend"}
RECORD = {"spikes", "state", "weights"}


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

    def build(self, seed=None) -> Network:
        """Build the network (``seed`` overrides the file's)."""
        try:
            return _build(self, self.seed if seed is None else seed)
        except SpikelmError as e:
            msg = str(e)
            raise type(e)(msg if msg.startswith(self.path) else f"{self.path}: {msg}") from None


def load_scenario(path) -> Scenario:
    """Read, parse and validate a scenario file."""
    p = Path(path)
    src = str(path)
    if not p.is_file():
        raise ConfigError(f"{src}: no such scenario file")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{src}: cannot read the file as UTF-8 text ({e.__class__.__name__})") from None
    return loads_scenario(text, src)


def loads_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """Parse and validate scenario TOML ``text``; ``source`` names it in errors (a file name)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{source}: not valid TOML: {e}") from None
    sc = Scenario(source, text, data)
    _validate(sc)
    return sc


# -- validation ------------------------------------------------------------------------------
def _err(sc, where, msg):
    return ConfigError(f"{sc.path}: {where}: {msg}")


def _keys(sc, table, allowed, where):
    if not isinstance(table, dict):
        raise _err(sc, where, f"must be a table, got {type(table).__name__}")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise _err(sc, f"{where}.{unknown[0]}" if where else unknown[0],
                   f"unknown field; allowed here: {', '.join(sorted(allowed))}")


def _number(sc, v, where, positive=False, nonneg=False, integer=False):
    ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    if integer:
        ok = isinstance(v, int) and not isinstance(v, bool)
    if not ok:
        raise _err(sc, where, f"must be {'an integer' if integer else 'a number'}, got {v!r}")
    if not math.isfinite(v):
        raise _err(sc, where, f"must be finite, got {v!r}")
    if positive and not v > 0:
        raise _err(sc, where, f"must be > 0, got {v!r}")
    if nonneg and v < 0:
        raise _err(sc, where, f"must be >= 0, got {v!r}")
    return v


def _validate(sc):
    d = sc.data
    _keys(sc, d, TOP, "")
    for req in ("network", "populations"):
        if req not in d:
            raise _err(sc, req, "missing; a scenario needs [network] and at least one [populations.NAME]")
    _keys(sc, d["network"], NETWORK, "network")
    if "dt" not in d["network"]:
        raise _err(sc, "network.dt", "missing; give the step width in ms, e.g. dt = 0.1")
    _number(sc, d["network"]["dt"], "network.dt", positive=True)
    if "seed" in d["network"]:
        _number(sc, d["network"]["seed"], "network.seed", nonneg=True, integer=True)
    pops = d["populations"]
    if not isinstance(pops, dict) or not pops:
        raise _err(sc, "populations", "needs at least one [populations.NAME] table")
    for name, t in pops.items():
        w = f"populations.{name}"
        _keys(sc, t, POPULATION, w)
        for req in ("model", "n"):
            if req not in t:
                raise _err(sc, f"{w}.{req}", "missing")
        try:
            get_model(t["model"])
        except ConfigError as e:
            raise _err(sc, f"{w}.model", str(e)) from None
        _number(sc, t["n"], f"{w}.n", positive=True, integer=True)
    projs = d.get("projections", {})
    if not isinstance(projs, dict):
        raise _err(sc, "projections", "must be a set of [projections.NAME] tables")
    for name, t in projs.items():
        w = f"projections.{name}"
        _keys(sc, t, PROJECTION, w)
        for req in ("pre", "post", "weight"):
            if req not in t:
                raise _err(sc, f"{w}.{req}", "missing")
        for end in ("pre", "post"):
            if t[end] not in pops:
                raise _err(sc, f"{w}.{end}", f"population {t[end]!r} is not defined; defined: {', '.join(pops)}")
        if "delay" in t:
            _check_value(sc, t["delay"], f"{w}.delay", positive=True)
        _check_value(sc, t["weight"], f"{w}.weight")
    stims = d.get("stimuli", [])
    if not isinstance(stims, list):
        raise _err(sc, "stimuli", "must be an array of tables: [[stimuli]]")
    for i, s in enumerate(stims):
        w = f"stimuli[{i}]"
        if not isinstance(s, dict) or "kind" not in s:
            raise _err(sc, w, f"needs 'kind', one of {', '.join(stimulus.STIMULI)}")
        if s["kind"] not in stimulus.STIMULI:
            raise _err(sc, f"{w}.kind", f"unknown stimulus {s['kind']!r}; allowed: {', '.join(stimulus.STIMULI)}")
        if s.get("population") not in pops:
            raise _err(sc, f"{w}.population", f"population {s.get('population')!r} is not defined; defined: "
                                              f"{', '.join(pops)}")
    if "run" in d:
        _keys(sc, d["run"], RUN, "run")
        if "duration" in d["run"]:
            _number(sc, d["run"]["duration"], "run.duration", positive=True)
        if "steps" in d["run"]:
            _number(sc, d["run"]["steps"], "run.steps", positive=True, integer=True)
        if "backend" in d["run"] and d["run"]["backend"] not in ("numpy", "numba", "cupy"):
            raise _err(sc, "run.backend", f"must be one of numpy, numba, cupy, got {d['run']['backend']!r}")
    rec = d.get("record", {})
    _keys(sc, rec, RECORD, "record")
    spikes = rec.get("spikes", "all")
    if spikes != "all":
        if not isinstance(spikes, list) or any(s not in pops for s in spikes):
            raise _err(sc, "record.spikes", f"must be \"all\" or a list of defined populations ({', '.join(pops)}), "
                                            f"got {spikes!r}")
    for i, m in enumerate(rec.get("state", [])):
        w = f"record.state[{i}]"
        _keys(sc, m, {"population", "variables", "every", "neurons"}, w)
        if m.get("population") not in pops:
            raise _err(sc, f"{w}.population", f"population {m.get('population')!r} is not defined")
        if "every" in m:
            _number(sc, m["every"], f"{w}.every", positive=True)
    if "weights" in rec:
        wt = rec["weights"]
        _keys(sc, wt, {"every", "projections"}, "record.weights")
        _number(sc, wt.get("every"), "record.weights.every", positive=True)
        if not isinstance(wt.get("projections"), list) or any(p not in projs for p in wt["projections"]):
            raise _err(sc, "record.weights.projections", f"must list defined projections ({', '.join(projs)})")


def _check_value(sc, v, where, positive=False):
    if isinstance(v, dict):
        if len(v) != 1 or next(iter(v)) not in ("uniform", "normal"):
            raise _err(sc, where, "a distribution is one of { uniform = [low, high] } or { normal = [mean, std] }")
        (kind, args), = v.items()
        if not isinstance(args, list) or len(args) != 2:
            raise _err(sc, f"{where}.{kind}", f"needs two numbers, got {args!r}")
        for k, a in enumerate(args):
            _number(sc, a, f"{where}.{kind}[{k}]")
        if positive and min(args) <= 0 and kind == "uniform":
            raise _err(sc, where, f"must be > 0, got a range reaching {min(args)}")
        return
    if isinstance(v, list):
        for k, a in enumerate(v):
            _number(sc, a, f"{where}[{k}]", positive=positive)
        return
    _number(sc, v, where, positive=positive)


# -- building ----------------------------------------------------------------------------------
def _value(sc, v, where, randoms=None):
    if isinstance(v, dict) and "from" in v:
        _keys(sc, v, {"from", "offset", "scale", "power"}, where)
        if randoms is None or v["from"] not in randoms:
            raise _err(sc, f"{where}.from", f"unknown random variable {v['from']!r}; declare it under 'random'")
        base = randoms[v["from"]] ** float(v.get("power", 1.0))
        return float(v.get("offset", 0.0)) + float(v.get("scale", 1.0)) * base
    if isinstance(v, dict):
        (kind, (a, b)), = v.items()
        return Uniform(float(a), float(b)) if kind == "uniform" else Normal(float(a), float(b))
    if isinstance(v, list):
        return np.asarray(v, dtype=float)
    return float(v)


def _build(sc, seed):
    d = sc.data
    net = Network(dt=sc.dt, seed=seed)
    from spikelm import plasticity as plast

    for name, t in d["populations"].items():
        w = f"populations.{name}"
        model = get_model(t["model"])
        randoms = {}
        for rname, spec in t.get("random", {}).items():
            _check_value(sc, spec, f"{w}.random.{rname}")
            val = _value(sc, spec, f"{w}.random.{rname}")
            randoms[rname] = val.draw(t["n"], net.rng) if hasattr(val, "draw") else np.full(t["n"], val)
        params = t.get("params", {})
        if not isinstance(params, dict):
            raise _err(sc, f"{w}.params", "must be a table of model parameters")
        if model.name == "spike_times" and "times" in params:
            params = dict(params, times=tuple(tuple(x) for x in params["times"]))
        init = {}
        for var, v in t.get("init", {}).items():
            if not (isinstance(v, dict) and "from" in v):
                _check_value(sc, v, f"{w}.init.{var}")
            init[var] = _value(sc, v, f"{w}.init.{var}", randoms)
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
            post_model = d["populations"][t["post"]]["model"]
            pl = plast.from_config(t["plasticity"], f"{w}.plasticity", "projection", post_model)
        try:
            net.connect(t["pre"], t["post"], rule, _value(sc, t["weight"], f"{w}.weight"),
                        _value(sc, t["delay"], f"{w}.delay") if "delay" in t else None,
                        t.get("target", "exc"), name, pl)
        except ConfigError as e:
            raise _err(sc, w, str(e)) from None
    for i, s in enumerate(d.get("stimuli", [])):
        cls = stimulus.STIMULI[s["kind"]]
        args = {k: v for k, v in s.items() if k != "kind"}
        for k in ("times", "amplitudes"):
            if k in args and isinstance(args[k], list):
                args[k] = tuple(args[k])
        try:
            net.add_stimulus(cls(**args))
        except TypeError as e:
            raise _err(sc, f"stimuli[{i}]", f"{e}".replace("__init__() ", "")) from None
        except ConfigError as e:
            raise _err(sc, f"stimuli[{i}]", str(e)) from None
    sc.state_monitors = [StateMonitor(m["population"], m.get("variables", ["v"]),
                                      max(1, int(round(float(m.get("every", sc.dt)) / sc.dt))), m.get("neurons"))
                         for m in d.get("record", {}).get("state", [])]
    return net


def _connect_rule(sc, t, where):
    if not isinstance(t, dict) or "rule" not in t:
        raise _err(sc, where, f"needs 'rule', one of {', '.join(connectivity.RULES)}")
    if t["rule"] not in connectivity.RULES:
        raise _err(sc, f"{where}.rule", f"unknown rule {t['rule']!r}; allowed: {', '.join(connectivity.RULES)}")
    cls = connectivity.RULES[t["rule"]]
    args = {k: (tuple(v) if isinstance(v, list) else v) for k, v in t.items() if k != "rule"}
    try:
        return cls(**args)
    except TypeError as e:
        raise _err(sc, where, f"{e}".replace("__init__() ", "")) from None
    except ConfigError as e:
        raise _err(sc, where, str(e)) from None
