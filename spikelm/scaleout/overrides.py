"""``--set PATH=VALUES``: override scenario fields from the command line.

A *path* names one field of a scenario file (docs/scenarios.md) with dots; a *value* is
written as in TOML. ``spikelm run --set PATH=VALUE`` changes one field of one run;
``spikelm sweep --set PATH=V1,V2,...`` runs every combination (docs/scale-out.md).

Paths (the first rule that matches wins):

- ``seed``, ``dt``: ``network.seed``, ``network.dt``; ``duration``, ``steps``, ``backend``:
  ``run.duration``, ``run.steps``, ``run.backend``;
- a full path from a top-level table: ``network.dt``, ``populations.exc.params.tau_m``,
  ``projections.ee.connect.p``, ``stimuli.0.amplitude`` (a number indexes an array);
- ``POP.PARAM``: ``populations.POP.params.PARAM`` (a model parameter of population POP);
  ``POP.FIELD...`` for the population fields ``n``, ``init``, ``random``, ``params``, ...:
  ``exc.init.v``, ``exc.n``;
- ``PROJ.FIELD...``: ``projections.PROJ.FIELD...``: ``ee.weight``, ``ee.delay``, ``ee.connect.p``.

Values: a comma-separated list of TOML values (``10,20.5,"numpy",{ uniform = [0, 1] }``;
commas inside brackets, braces or quotes do not split), a bare word is a string
(``backend=numpy``), and ``A..B`` is every integer from A to B inclusive.

Every override is checked as the scenario loader checks the file, so a bad value is one line
naming the option and the field. Nothing is evaluated as code: values go through the TOML parser.
"""
from __future__ import annotations

import copy
import itertools
import math
import re
import sys
from dataclasses import dataclass, field

from spikelm.errors import ConfigError, SpikelmError
from spikelm.io.scenario import Scenario, _connect_rule
from spikelm.io.scenario_check import POPULATION, TOP
from spikelm.io.scenario_check import check as _validate
from spikelm.io.textfile import MAX_DEPTH, depth

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SHORTHANDS = {"seed": ("network", "seed"), "dt": ("network", "dt"), "duration": ("run", "duration"),
              "steps": ("run", "steps"), "backend": ("run", "backend")}
TABLES = tuple(sorted(TOP - {"description"}))
#: Largest sweep grid and integer range accepted (checked before anything is expanded).
MAX_POINTS = 100_000
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*\Z")
_RANGE = re.compile(r"\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*\Z")


@dataclass(frozen=True)
class Setting:
    """One ``--set``: the name as written, the resolved path, and its values (at least one)."""

    name: str
    path: tuple
    values: tuple

    @property
    def dotted(self) -> str:
        return ".".join(str(k) for k in self.path)


@dataclass
class OverriddenScenario(Scenario):
    """A scenario with fields overridden; ``overrides`` lists ``[dotted path, value]`` pairs."""

    overrides: list = field(default_factory=list)


# -- parsing --------------------------------------------------------------------------------------
def parse_set(text: str, data: dict, option: str = "--set") -> Setting:
    """Parse one ``PATH=VALUES`` against the scenario table ``data`` (for name lookups)."""
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError(f"{option} {text!r}: expected PATH=VALUES, e.g. exc.tau_m=10,20")
    name, _, raw = text.partition("=")
    name = name.strip()
    path = resolve(name, data, option)
    values = parse_values(raw, f"{option} {name}")
    return Setting(name, path, values)


def resolve(name: str, data: dict, option: str = "--set") -> tuple:
    """The full path (tuple of keys; ints index arrays) that ``name`` addresses in ``data``."""
    where = f"{option} {name}"
    parts = name.split(".") if name else []
    if not parts or any(not p for p in parts):
        raise ConfigError(f"{where}: empty path component; write e.g. exc.tau_m or network.dt")
    keys = []
    for p in parts:
        if p.isdigit():
            keys.append(int(p))
        elif _WORD.match(p):
            keys.append(p)
        else:
            raise ConfigError(f"{where}: {p!r} is not a field name (letters, digits, _ and -) or an index")
    head = keys[0]
    if len(keys) == 1:
        if head in SHORTHANDS:
            return SHORTHANDS[head]
        raise ConfigError(f"{where}: a one-word path is one of {', '.join(SHORTHANDS)}; "
                          "other fields are TABLE.FIELD, POPULATION.PARAM or PROJECTION.FIELD")
    if head in TABLES:
        return tuple(keys)
    pops = data.get("populations", {}) if isinstance(data.get("populations"), dict) else {}
    projs = data.get("projections", {}) if isinstance(data.get("projections"), dict) else {}
    if head in pops and head in projs:
        raise ConfigError(f"{where}: {head!r} is both a population and a projection; write "
                          f"populations.{name} or projections.{name}")
    if head in pops:
        if keys[1] in POPULATION:
            return ("populations", *keys)
        if len(keys) == 2:
            return ("populations", head, "params", keys[1])
        raise ConfigError(f"{where}: POPULATION.PARAM takes one parameter name; population fields "
                          f"are {', '.join(sorted(POPULATION))}")
    if head in projs:
        return ("projections", *keys)
    raise ConfigError(f"{where}: {head!r} is not a population ({', '.join(pops) or 'none'}), a projection "
                      f"({', '.join(projs) or 'none'}) or a table ({', '.join(TABLES)})")


def parse_values(raw: str, where: str) -> tuple:
    """The values of ``A,B,C`` (TOML values or bare words) or of the integer range ``A..B``."""
    m = _RANGE.match(raw)
    if m:
        try:
            lo, hi = int(m.group(1)), int(m.group(2))
        except ValueError:      # more digits than Python converts (4,300): far beyond any seed
            raise ConfigError(f"{where}: range {raw.strip()[:40]}...: a bound of more than 4,300 digits; "
                              "allowed: integers below 2**63") from None
        if hi < lo:
            raise ConfigError(f"{where}: range {raw.strip()} is empty; write A..B with A <= B")
        if hi - lo + 1 > MAX_POINTS:
            raise ConfigError(f"{where}: range {raw.strip()} has {hi - lo + 1} values; at most {MAX_POINTS}")
        return tuple(range(lo, hi + 1))
    items = _split(raw, where)
    if len(items) > MAX_POINTS:
        raise ConfigError(f"{where}: {len(items)} values; at most {MAX_POINTS}")
    return tuple(_value(s, where) for s in items)


def _split(raw, where):
    """Split on commas outside brackets, braces and quotes."""
    items, depth, quote, cur = [], 0, None, []
    for ch in raw:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    items.append("".join(cur))
    items = [s.strip() for s in items]
    if any(not s for s in items):
        raise ConfigError(f"{where}: empty value in {raw!r}; write values separated by commas, e.g. 10,20,30")
    return items


def _value(s, where):
    try:
        v = tomllib.loads(f"v = {s}")["v"]
    except tomllib.TOMLDecodeError:
        if _WORD.match(s):
            return s
        raise ConfigError(f"{where}: {_short(s)} is not a value; write a number, true/false, a word, a \"string\", "
                          "[a, list] or { a = table }") from None
    except ValueError:          # an integer of more digits than Python converts (4,300)
        raise ConfigError(f"{where}: {_short(s)}: a number of more than 4,300 digits; allowed: numbers a "
                          "scenario field can hold (integers below 2**63, floats)") from None
    except RecursionError:
        raise ConfigError(f"{where}: {_short(s)}: nested too deeply") from None
    if depth(v) > MAX_DEPTH:
        raise ConfigError(f"{where}: {_short(s)}: nested {depth(v)} levels deep; allowed: at most {MAX_DEPTH}")
    if not _plain(v):
        raise ConfigError(f"{where}: {s!r}: dates and times are not scenario values")
    return v


def _short(s):
    """A value as a message quotes it: at most 40 characters."""
    return repr(s) if len(s) <= 40 else repr(s[:37] + "...") + f" ({len(s):,} characters)"


def _plain(v):
    if isinstance(v, (bool, int, float, str)):
        return True
    if isinstance(v, list):
        return all(_plain(x) for x in v)
    if isinstance(v, dict):
        return all(_plain(x) for x in v.values())
    return False


# -- applying ---------------------------------------------------------------------------------
def apply(sc: Scenario, assignments, option: str = "--set") -> OverriddenScenario:
    """A copy of ``sc`` with ``assignments`` (pairs (Setting, value)) set, checked like a file.

    Raises ConfigError naming the option, the field and what is allowed.
    """
    data = copy.deepcopy(sc.data)
    out = OverriddenScenario(sc.path, sc.text, data, overrides=list(getattr(sc, "overrides", [])))
    for s, v in assignments:
        _put(data, s, v, option)
        out.overrides.append([s.dotted, v])
        try:
            _validate(out)
            _check_built_field(out, s.path)
        except SpikelmError as e:
            raise ConfigError(f"{option} {s.name}={_show(v)}: {e}") from None
    return out


def check(sc: Scenario, settings, option: str = "--set") -> None:
    """Check each value of each setting alone against ``sc`` (cheap: nothing is built)."""
    for s in settings:
        for v in s.values:
            apply(sc, [(s, v)], option)


def override(sc: Scenario, texts, option: str = "--set") -> OverriddenScenario:
    """``sc`` with each ``PATH=VALUE`` of ``texts`` applied (one value each; for ``spikelm run``)."""
    assignments = []
    for t in texts:
        s = parse_set(t, sc.data, option)
        if len(s.values) != 1:
            raise ConfigError(f"{option} {s.name}: {len(s.values)} values; a run takes one "
                              "(spikelm sweep runs several)")
        assignments.append((s, s.values[0]))
    return apply(sc, assignments, option)


def grid(settings) -> list:
    """Every combination of the settings' values, the first setting varying slowest.

    Returns a list of points; a point is a tuple of ``(Setting, value)``.
    """
    n = math.prod(len(s.values) for s in settings)
    if n > MAX_POINTS:
        raise ConfigError(f"--set: {n} points in the grid; at most {MAX_POINTS}")
    names = [s.dotted for s in settings]
    dup = sorted({x for x in names if names.count(x) > 1})
    if dup:
        raise ConfigError(f"--set {dup[0]}: given twice; give all its values in one --set")
    return [tuple(zip(settings, combo)) for combo in itertools.product(*(s.values for s in settings))]


def _put(data, s, v, option):
    node = data
    for i, k in enumerate(s.path[:-1]):
        here = ".".join(str(x) for x in s.path[: i + 1])
        if isinstance(node, dict):
            if k not in node:
                if isinstance(s.path[i + 1], int):
                    raise ConfigError(f"{option} {s.name}: {here}: not in the scenario (no array to index)")
                node[k] = {}
            node = node[k]
        elif isinstance(node, list) and isinstance(k, int):
            if k >= len(node):
                raise ConfigError(f"{option} {s.name}: {here}: index {k} out of range (the array has "
                                  f"{len(node)} entries)")
            node = node[k]
        else:
            raise ConfigError(f"{option} {s.name}: {here} is a {type(node).__name__}, not a table")
    last = s.path[-1]
    if isinstance(node, list) and isinstance(last, int) and last < len(node):
        node[last] = copy.deepcopy(v)
    elif isinstance(node, dict) and isinstance(last, str):
        node[last] = copy.deepcopy(v)
    else:
        raise ConfigError(f"{option} {s.name}: cannot set {s.dotted} (not a field of a table)")


def _check_built_field(sc, path):
    """Check what the loader leaves to ``build``: model parameters, connection rules, stimuli."""
    from spikelm.network import stimulus
    from spikelm.network.models import get_model
    from spikelm.network.population import make_params

    d = sc.data
    if path[0] == "populations" and len(path) > 2 and path[2] == "params":
        t = d["populations"][path[1]]
        params = t.get("params", {})
        if not isinstance(params, dict):
            raise ConfigError(f"{sc.path}: populations.{path[1]}.params: must be a table")
        if t["model"] == "spike_times" and "times" in params:
            params = dict(params, times=tuple(tuple(x) for x in params["times"]))
        try:
            make_params(get_model(t["model"]), params, f"population '{path[1]}'")
        except ConfigError as e:
            raise ConfigError(f"{sc.path}: {'.'.join(map(str, path))}: {e}") from None
    elif path[0] == "projections" and len(path) > 2 and path[2] == "connect":
        _connect_rule(sc, d["projections"][path[1]].get("connect", {}), f"projections.{path[1]}.connect")
    elif path[0] == "stimuli" and len(path) > 1:
        s = d["stimuli"][path[1]]
        args = {k: (tuple(v) if isinstance(v, list) else v) for k, v in s.items() if k != "kind"}
        try:
            stimulus.STIMULI[s["kind"]](**args)
        except (TypeError, ConfigError) as e:
            raise ConfigError(f"{sc.path}: stimuli[{path[1]}]: {e}".replace("__init__() ", "")) from None


def _show(v):
    text = str(v) if isinstance(v, (int, float, bool)) else repr(v)
    return text if len(text) <= 60 else f"{text[:57]}... ({len(text):,} characters)"
