"""Checking a scenario table field by field, before anything is built.

Every field of ``docs/scenarios.md`` is checked here for presence, type and range, so that
building the network only converts values that are known to be right. Each problem raises
one :class:`ConfigError` line ``<file>: <dotted.field>: <what is wrong and what is allowed>``.
Relations that need the built objects (an array's length against a projection's synapse
count, a model's own parameter constraints) are checked while building, with the same prefix.
"""
from __future__ import annotations

import dataclasses
import math

from spikelm.errors import ConfigError
from spikelm.network import connectivity, microcircuit, stimulus
from spikelm.network.models import MODELS
from spikelm.network.models.sources import MAX_STEP
from spikelm.network.projection import TARGETS

TOP = {"network", "populations", "microcircuit", "projections", "stimuli", "record", "run", "description"}
NETWORK = {"dt", "seed"}
POPULATION = {"model", "n", "params", "init", "random", "plasticity"}
PROJECTION = {"pre", "post", "connect", "weight", "delay", "target", "plasticity"}
RUN = {"duration", "steps", "backend", "max_steps"}
RECORD = {"spikes", "state", "weights"}
STATE = {"population", "variables", "every", "neurons"}
BACKENDS = ("numpy", "numba", "cupy")
#: Fields of each connectivity rule and what they hold.
RULE_FIELDS = {
    "all_to_all": {"allow_autapses": "flag"},
    "fixed_probability": {"p": "probability", "allow_autapses": "flag"},
    "fixed_in_degree": {"k": "count", "allow_autapses": "flag"},
    "fixed_out_degree": {"k": "count", "allow_autapses": "flag"},
    "fixed_total_number": {"n": "count", "allow_autapses": "flag"},
    "one_to_one": {},
    "arrays": {"pre": "indices", "post": "indices"},
}
#: Fields of each stimulus besides ``kind`` and ``population``.
STIMULUS_FIELDS = {
    "constant_current": {"amplitude": "amplitude"},
    "current_steps": {"times": "numbers", "amplitudes": "amplitudes"},
    "noise_current": {"std": "number", "mean": "number"},
    "poisson_input": {"rate": "number", "weight": "number", "target": "target"},
}


def _required(cls):
    return [f.name for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]


class Checker:
    """The checks, each raising ``<file>: <where>: <message>``."""

    def __init__(self, path):
        self.path = path

    def err(self, where, msg):
        return ConfigError(f"{self.path}: {where}: {msg}" if where else f"{self.path}: {msg}")

    # -- shapes
    def table(self, v, where, allowed=None, required=()):
        if not isinstance(v, dict):
            raise self.err(where, f"must be a table, got {_show(v)}")
        if allowed is not None:
            unknown = sorted(set(v) - set(allowed))
            if unknown:
                raise self.err(f"{where}.{unknown[0]}" if where else unknown[0],
                               f"unknown field; allowed here: {', '.join(sorted(allowed))}")
        for r in required:
            if r not in v:
                raise self.err(f"{where}.{r}" if where else r, "missing")
        return v

    def items(self, v, where, what="table"):
        """A list of tables (``[[stimuli]]``, ``record.state``)."""
        if not isinstance(v, list):
            raise self.err(where, f"must be an array of tables, got {_show(v)}")
        for i, x in enumerate(v):
            self.table(x, f"{where}[{i}]")
        return v

    def ident(self, name, where):
        """A name the user chose (population, projection, random variable)."""
        if not isinstance(name, str) or not name.isidentifier():
            raise self.err(where, f"name {name!r} must be an identifier (letters, digits, _; no spaces, "
                                  "dots or slashes)")

    def name(self, v, where, known, what):
        """A reference to something defined elsewhere in the file."""
        if not isinstance(v, str):
            raise self.err(where, f"must be the name of a {what} (a string), got {_show(v)}")
        if v not in known:
            raise self.err(where, f"{what} {v!r} is not defined; defined: {', '.join(known) or 'none'}")
        return v

    def choice(self, v, where, allowed):
        if not isinstance(v, str) or v not in allowed:
            raise self.err(where, f"got {_show(v)}; allowed: {', '.join(allowed)}")
        return v

    def flag(self, v, where):
        if not isinstance(v, bool):
            raise self.err(where, f"must be true or false, got {_show(v)}")
        return v

    def text(self, v, where):
        if not isinstance(v, str):
            raise self.err(where, f"must be a string, got {_show(v)}")
        return v

    def number(self, v, where, positive=False, nonneg=False, integer=False, upper=None):
        if integer:
            if isinstance(v, bool) or not isinstance(v, int):
                raise self.err(where, f"must be an integer, got {_show(v)}")
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.err(where, f"must be a number, got {_show(v)}")
        if isinstance(v, int) and not -(2**63) <= v < 2**63:     # TOML integers are 64-bit
            raise self.err(where, f"an integer of {len(str(abs(v)))} digits; allowed: 64-bit integers "
                                  "(below 9.22e+18 in magnitude)")
        if not math.isfinite(v):
            raise self.err(where, f"must be finite, got {v!r}")
        if positive and not v > 0:
            raise self.err(where, f"must be > 0, got {v!r}")
        if nonneg and v < 0:
            raise self.err(where, f"must be >= 0, got {v!r}")
        if upper is not None and v > upper:
            raise self.err(where, f"must be at most {upper:.3g}, got {v!r}")
        return v

    def numbers(self, v, where, positive=False, nonneg=False, integer=False, upper=None, nonempty=False):
        if not isinstance(v, list):
            raise self.err(where, f"must be a list of {'integers' if integer else 'numbers'}, got {_show(v)}")
        if nonempty and not v:
            raise self.err(where, "must not be empty")
        for i, x in enumerate(v):
            self.number(x, f"{where}[{i}]", positive=positive, nonneg=nonneg, integer=integer, upper=upper)
        return v

    def duration(self, v, where, dt):
        """A time in ms that becomes a whole number of steps (at least one)."""
        self.number(v, where, positive=True)
        ratio = v / dt
        if not ratio < MAX_STEP:
            raise self.err(where, f"{v!r} ms is {ratio:.3g} steps at dt = {dt:g} ms; allowed: below "
                                  f"{MAX_STEP:.3g} steps")
        if round(ratio) < 1:
            raise self.err(where, f"{v!r} ms is less than one step (dt = {dt:g} ms); allowed: >= {dt / 2:g} ms")
        return round(ratio)

    def times(self, v, where, dt):
        """A non-empty list of times in ms (>= 0), each on a step below MAX_STEP."""
        self.numbers(v, where, nonneg=True, nonempty=True)
        for i, t in enumerate(v):
            if not t / dt < MAX_STEP:
                raise self.err(f"{where}[{i}]", f"{t!r} ms is step {t / dt:.3g} at dt = {dt:g} ms; allowed: "
                                                f"below step {MAX_STEP:.3g}")
        return v

    def value(self, v, where, positive=False, randoms=None):
        """A number, a list of numbers, a distribution or (with ``randoms``) a ``from`` table."""
        if isinstance(v, dict):
            if "from" in v:
                if randoms is None:
                    raise self.err(where, "'from' is allowed only in init (a function of a random variable)")
                self.table(v, where, {"from", "offset", "scale", "power"})
                self.name(v["from"], f"{where}.from", randoms, "random variable")
                for k in ("offset", "scale", "power"):
                    if k in v:
                        self.number(v[k], f"{where}.{k}")
                return
            kinds = [k for k in v if k in ("uniform", "normal")]
            bounds = set(v) - set(kinds)
            if len(kinds) != 1 or (bounds and (kinds != ["normal"] or not bounds <= {"low", "high"})):
                raise self.err(where, "a distribution is { uniform = [low, high] } or { normal = [mean, std] } "
                               "(optionally with low = L, high = H: values outside are drawn again)"
                               + (", or { from = NAME, offset, scale, power }" if randoms is not None else ""))
            kind = kinds[0]
            args = v[kind]
            for b in sorted(bounds):
                self.number(v[b], f"{where}.{b}")
            if v.get("low", -math.inf) > v.get("high", math.inf):
                raise self.err(f"{where}.low", f"{v['low']!r} is above high {v['high']!r}")
            self.numbers(args, f"{where}.{kind}")
            if len(args) != 2:
                raise self.err(f"{where}.{kind}", f"needs two numbers, got {len(args)}")
            if kind == "uniform" and args[0] > args[1]:
                raise self.err(f"{where}.uniform", f"low {args[0]!r} is above high {args[1]!r}")
            if kind == "normal" and args[1] < 0:
                raise self.err(f"{where}.normal", f"std must be >= 0, got {args[1]!r}")
            if positive and kind == "uniform" and args[0] <= 0:
                raise self.err(where, f"must be > 0, got a range reaching {args[0]!r}")
            return
        if isinstance(v, list):
            self.numbers(v, where, positive=positive)   # empty: a projection without synapses (NIR zeros)
            return
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.err(where, f"must be a number, a list of numbers or a distribution, got {_show(v)}")
        self.number(v, where, positive=positive)


def check(sc):
    """Check every field of ``sc.data`` (a parsed scenario); raise ConfigError at the first problem."""
    c = Checker(sc.path)
    d = c.table(sc.data, "", TOP, ("network",))
    if "populations" not in d and "microcircuit" not in d:
        raise c.err("populations", "missing (a scenario needs [populations.NAME] tables or a [microcircuit])")
    if "description" in d:
        c.text(d["description"], "description")
    net = c.table(d["network"], "network", NETWORK, ("dt",))
    dt = c.number(net["dt"], "network.dt", positive=True)
    if "seed" in net:
        c.number(net["seed"], "network.seed", nonneg=True, integer=True, upper=2**63 - 1)
    pops = c.table(d.get("populations", {}), "populations")
    if not pops and "microcircuit" not in d:
        raise c.err("populations", "needs at least one [populations.NAME] table")
    for name, t in pops.items():
        _population(c, name, t, dt)
    if "microcircuit" in d:
        for name, n in _microcircuit(c, d["microcircuit"]).items():
            if name in pops:
                raise c.err(f"populations.{name}", "is defined twice (the microcircuit defines it)")
            pops = {**pops, name: {"model": "lif", "n": n}}
    projs = c.table(d.get("projections", {}), "projections")
    for name, t in projs.items():
        _projection(c, name, t, pops)
    for i, s in enumerate(c.items(d.get("stimuli", []), "stimuli")):
        _stimulus(c, f"stimuli[{i}]", s, pops, dt)
    _record(c, c.table(d.get("record", {}), "record", RECORD), pops, projs, dt)
    run = c.table(d.get("run", {}), "run", RUN)
    if "duration" in run:
        c.duration(run["duration"], "run.duration", dt)
    for k in ("steps", "max_steps"):
        if k in run:
            c.number(run[k], f"run.{k}", positive=True, integer=True, upper=MAX_STEP)
    if "backend" in run:
        c.choice(run["backend"], "run.backend", BACKENDS)


def _population(c, name, t, dt):
    w = f"populations.{name}"
    c.ident(name, w)
    c.table(t, w, POPULATION, ("model", "n"))
    model = MODELS.get(t["model"]) if isinstance(t["model"], str) else None
    if model is None:
        raise c.err(f"{w}.model", f"unknown neuron model {t['model']!r}; known models: {', '.join(sorted(MODELS))}")
    c.number(t["n"], f"{w}.n", positive=True, integer=True, upper=MAX_STEP)
    params = c.table(t.get("params", {}), f"{w}.params",
                     {f.name for f in dataclasses.fields(model.params)})
    for k, v in params.items():
        if model.name == "spike_times" and k == "times":
            if not isinstance(v, list):
                raise c.err(f"{w}.params.times", f"must be a list of lists of times (ms), one per neuron, got {_show(v)}")
            if len(v) != t["n"]:
                raise c.err(f"{w}.params.times", f"{len(v)} lists of times for {t['n']} neurons; give one per neuron")
            for j, times in enumerate(v):
                if times:
                    c.times(times, f"{w}.params.times[{j}]", dt)
                else:
                    c.numbers(times, f"{w}.params.times[{j}]")
        else:
            c.number(v, f"{w}.params.{k}", integer=model.name == "signed_if")
    _model_params(c, model, params, f"{w}.params", dt)
    randoms = c.table(t.get("random", {}), f"{w}.random")
    for r, v in randoms.items():
        c.ident(r, f"{w}.random.{r}")
        c.value(v, f"{w}.random.{r}")
    init = c.table(t.get("init", {}), f"{w}.init")
    for var, v in init.items():
        if var not in model.state_vars:
            raise c.err(f"{w}.init.{var}", f"unknown state variable of {model.name}; allowed: "
                                           f"{', '.join(model.state_vars)}")
        c.value(v, f"{w}.init.{var}", randoms=list(randoms))
    if "plasticity" in t:
        _rule_table(c, t["plasticity"], f"{w}.plasticity")


def _model_params(c, model, params, where, dt):
    """The model's own checks of its parameters (ranges, relations, the rate against dt), run here
    so that a file (a NIR import, a sweep point) is refused before anything is built or written."""
    from spikelm.network.population import make_params

    if model.name == "spike_times" and "times" in params:
        params = dict(params, times=tuple(tuple(x) for x in params["times"]))
    try:
        model.derive(make_params(model, params, where), dt)
    except ConfigError as e:
        msg = str(e)
        # "<Model>Params: parameter 'x' must ..." -> "<where>.x: must ..."
        head, _, rest = msg.partition(": parameter '")
        if rest and "Params" in head:
            name, _, tail = rest.partition("' ")
            raise c.err(f"{where}.{name}", tail) from None
        raise c.err(where, msg.split(": ", 1)[1] if msg.split(": ", 1)[0].endswith("Params") else msg) from None


#: [microcircuit] fields: what each holds (every one is required but the options below)
MICROCIRCUIT = {
    "populations": "names", "n": "counts", "conn_probs": "matrix", "k_ext": "counts", "full_mean_rates": "rates",
    "v0_mean": "numbers", "v0_std": "rates", "neuron": "neuron", "scale": "fraction", "indegree_scale": "fraction",
    "background": microcircuit.BACKGROUNDS, "v0": microcircuit.V0_TYPES, "v0_original": "pair", "bg_rate": "rate",
    "psp_exc": "number", "psp_l4e_to_l23e": "number", "g": "number", "weight_rel_std": "rate", "delay_exc": "positive",
    "delay_inh": "positive", "delay_rel_std": "rate", "weight_dtype": ("float32", "float64"),
}
MICROCIRCUIT_OPTIONAL = {"scale", "indegree_scale", "background", "v0", "v0_original", "bg_rate", "psp_exc",
                         "psp_l4e_to_l23e", "g", "weight_rel_std", "delay_exc", "delay_inh", "delay_rel_std",
                         "weight_dtype"}
NEURON = ("c_m", "tau_m", "tau_syn", "e_l", "v_th", "v_reset", "t_ref")


def _microcircuit(c, t):
    """Check the [microcircuit] table; return {population: neurons at this scale}."""
    w = "microcircuit"
    c.table(t, w, set(MICROCIRCUIT), sorted(set(MICROCIRCUIT) - MICROCIRCUIT_OPTIONAL))
    for k, kind in MICROCIRCUIT.items():
        if k not in t:
            continue
        where, v = f"{w}.{k}", t[k]
        if isinstance(kind, tuple):
            c.choice(v, where, kind)
        elif kind == "names":
            if not isinstance(v, list) or not v:
                raise c.err(where, f"must be a non-empty list of population names, got {_show(v)}")
            for i, name in enumerate(v):
                c.ident(name, f"{where}[{i}]")
            if len(set(v)) != len(v):
                raise c.err(where, "names a population twice")
        elif kind == "counts":
            c.numbers(v, where, nonneg=True, integer=True, upper=MAX_STEP, nonempty=True)
        elif kind in ("rates", "numbers"):
            c.numbers(v, where, nonneg=kind == "rates", nonempty=True)
        elif kind == "matrix":
            if not isinstance(v, list) or not v:
                raise c.err(where, f"must be a list of rows (targets) of probabilities (sources), got {_show(v)}")
            for i, row in enumerate(v):
                c.numbers(row, f"{where}[{i}]", nonneg=True, upper=0.999999, nonempty=True)
        elif kind == "neuron":
            c.table(v, where, set(NEURON), NEURON)
            for f in NEURON:
                c.number(v[f], f"{where}.{f}", positive=f in ("c_m", "tau_m", "tau_syn"), nonneg=f == "t_ref")
            if v["tau_syn"] == v["tau_m"]:
                raise c.err(f"{where}.tau_syn", "must differ from tau_m (the PSP-to-current factor divides by their "
                                                "difference)")
        elif kind == "fraction":
            c.number(v, where, positive=True, upper=1.0)
        elif kind == "pair":
            c.numbers(v, where)
            if len(v) != 2 or v[1] < 0:
                raise c.err(where, f"must be [mean, std] in mV with std >= 0, got {_show(v)}")
        elif kind == "rate":
            c.number(v, where, nonneg=True)
        elif kind == "positive":
            c.number(v, where, positive=True)
        else:
            c.number(v, where)
    try:
        p = microcircuit.MicrocircuitParams.from_table(t)
    except ConfigError as e:
        raise c.err(w, str(e).removeprefix("microcircuit: ")) from None
    n = microcircuit.derived(p)["n"]
    return {name: max(int(k), 1) for name, k in zip(p.populations, n)}


def _rule_table(c, t, where):
    c.table(t, where, required=("rule",))
    c.text(t["rule"], f"{where}.rule")


def _projection(c, name, t, pops):
    w = f"projections.{name}"
    c.ident(name, w)
    c.table(t, w, PROJECTION, ("pre", "post", "weight"))
    for end in ("pre", "post"):
        c.name(t[end], f"{w}.{end}", list(pops), "population")
    conn = c.table(t.get("connect", {"rule": "all_to_all"}), f"{w}.connect", required=("rule",))
    rule = c.choice(conn["rule"], f"{w}.connect.rule", list(connectivity.RULES))
    fields = RULE_FIELDS[rule]
    c.table(conn, f"{w}.connect", {"rule", *fields}, _required(connectivity.RULES[rule]))
    for k, kind in fields.items():
        if k not in conn:
            continue
        where = f"{w}.connect.{k}"
        if kind == "flag":
            c.flag(conn[k], where)
        elif kind == "probability":
            p = conn[k]
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
                raise c.err(where, f"must be a probability in [0, 1], got {_show(p)}")
        elif kind == "count":
            c.number(conn[k], where, nonneg=True, integer=True, upper=MAX_STEP)
        else:
            c.numbers(conn[k], where, nonneg=True, integer=True, upper=MAX_STEP)
    if rule == "arrays" and len(conn["pre"]) != len(conn["post"]):
        raise c.err(f"{w}.connect", f"'pre' has {len(conn['pre'])} indices, 'post' {len(conn['post'])}; "
                                    "allowed: lists of equal length")
    c.value(t["weight"], f"{w}.weight")
    if "delay" in t:
        c.value(t["delay"], f"{w}.delay", positive=True)
    if "target" in t:
        c.choice(t["target"], f"{w}.target", TARGETS)
    if "plasticity" in t:
        _rule_table(c, t["plasticity"], f"{w}.plasticity")


def _stimulus(c, w, s, pops, dt):
    kind = c.choice(s.get("kind"), f"{w}.kind", list(stimulus.STIMULI))
    fields = STIMULUS_FIELDS[kind]
    c.table(s, w, {"kind", "population", *fields}, ["kind", *_required(stimulus.STIMULI[kind])])
    c.name(s["population"], f"{w}.population", list(pops), "population")
    for k, what in fields.items():
        if k not in s:
            continue
        if what == "number":
            c.number(s[k], f"{w}.{k}")
        elif what == "amplitude":
            _amplitude(c, s[k], f"{w}.{k}")
        elif what == "amplitudes":
            if not isinstance(s[k], list) or not s[k]:
                raise c.err(f"{w}.{k}", f"must be a non-empty list (a number or a list of one number per neuron "
                                        f"for each time), got {_show(s[k])}")
            for i, a in enumerate(s[k]):
                _amplitude(c, a, f"{w}.{k}[{i}]")
        elif k == "times":
            c.times(s[k], f"{w}.{k}", dt)
        elif what == "numbers":
            c.numbers(s[k], f"{w}.{k}", nonempty=True)
        else:
            c.choice(s[k], f"{w}.{k}", TARGETS)
    # what the stimulus and the network check when built, checked here (so an imported or
    # overridden file is refused before it is written or run)
    args = {k: (tuple(v) if isinstance(v, list) else v) for k, v in s.items() if k != "kind"}
    try:
        stim = stimulus.STIMULI[kind](**args)
    except ConfigError as e:
        raise c.err(w, str(e)) from None
    pop = pops[s["population"]]
    if MODELS[pop["model"]].is_source:
        raise c.err(f"{w}.population", f"population {s['population']!r} is a spike source and takes no input")
    wrong = sorted(stimulus.amplitude_size(stim) - {pop["n"]})
    if wrong:
        raise c.err(w, f"a per-neuron amplitude needs {pop['n']} values (population {s['population']!r}), "
                       f"got {wrong[0]}")


def _amplitude(c, v, where):
    """A current: one number for every neuron, or a list of one number per neuron (NIR biases)."""
    if isinstance(v, list):
        c.numbers(v, where, nonempty=True)
    else:
        c.number(v, where)


def _record(c, rec, pops, projs, dt):
    spikes = rec.get("spikes", "all")
    if spikes != "all":
        if not isinstance(spikes, list):
            raise c.err("record.spikes", f"must be \"all\" or a list of populations, got {_show(spikes)}")
        for i, p in enumerate(spikes):
            c.name(p, f"record.spikes[{i}]", list(pops), "population")
        _unique(c, spikes, "record.spikes", "population")
    seen = {}
    for i, m in enumerate(c.items(rec.get("state", []), "record.state")):
        w = f"record.state[{i}]"
        c.table(m, w, STATE, ("population",))
        pop = pops[c.name(m["population"], f"{w}.population", list(pops), "population")]
        model = MODELS[pop["model"]]
        variables = m.get("variables", ["v"])
        if not isinstance(variables, list) or not variables:
            raise c.err(f"{w}.variables", f"must be a non-empty list of state variables, got {_show(variables)}")
        for j, var in enumerate(variables):
            c.choice(var, f"{w}.variables[{j}]", model.state_vars)
            if (m["population"], var) in seen:
                raise c.err(f"{w}.variables[{j}]", f"{m['population']}.{var} is already recorded by "
                                                   f"{seen[m['population'], var]}; record each variable once "
                                                   "(one entry may list several neurons and variables)")
            seen[m["population"], var] = f"{w}"
        if "every" in m:
            c.duration(m["every"], f"{w}.every", dt)
        if "neurons" in m:
            c.numbers(m["neurons"], f"{w}.neurons", nonneg=True, integer=True, upper=pop["n"] - 1, nonempty=True)
            _unique(c, m["neurons"], f"{w}.neurons", "neuron")
    if "weights" in rec:
        wt = c.table(rec["weights"], "record.weights", {"every", "projections"}, ("every", "projections"))
        c.duration(wt["every"], "record.weights.every", dt)
        if not isinstance(wt["projections"], list):
            raise c.err("record.weights.projections", f"must list defined projections, got {_show(wt['projections'])}")
        for i, p in enumerate(wt["projections"]):
            c.name(p, f"record.weights.projections[{i}]", list(projs), "projection")
        _unique(c, wt["projections"], "record.weights.projections", "projection")


def _unique(c, values, where, what):
    """Refuse a list naming one entry twice (the record would hold it twice, or clash)."""
    first = {}
    for i, v in enumerate(values):
        if v in first:
            raise c.err(f"{where}[{i}]", f"{what} {v!r} is listed twice (also at [{first[v]}]); list each once")
        first[v] = i


def _show(v):
    """A value as the message shows it: short, with its TOML type."""
    kind = {dict: "a table", list: "an array", str: "a string", bool: "a boolean"}.get(type(v))
    text = repr(v)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{kind} {text}" if kind else text
