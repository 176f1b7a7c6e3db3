"""Build rule objects from scenario tables (``[projections.X.plasticity]``, ``[populations.X.plasticity]``)."""
from __future__ import annotations

import dataclasses
import math

from spikelm.errors import ConfigError

from .rules import POPULATION_RULES, PROJECTION_RULES, check_applies, rule_fields

__all__ = ["from_config", "to_config"]


def from_config(table, where, target, model_name, kinds=None):
    """Return the rule described by ``table``.

    Parameters
    ----------
    table : dict
        ``rule = "<name>"`` plus the rule's fields (see docs/plasticity.md).
    where : str
        Prefix for error messages, e.g. ``"scenarios/x.toml: projections.e_to_i.plasticity"``.
    target : "projection" | "population"
    model_name : str
        The neuron model of the population (or of the projection's post population).
    kinds : dict, optional
        rule name -> rule class, for another executor's rule set (the converted-LM one); the
        caller then checks which neurons a rule may act on.

    Raises
    ------
    ConfigError
        One line naming ``where`` and the field.
    """
    if target not in ("projection", "population"):
        raise ConfigError(f"{where}: target must be 'projection' or 'population', got {target!r}")
    engine = kinds is None
    if engine:
        kinds = PROJECTION_RULES if target == "projection" else POPULATION_RULES
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table with a 'rule' field, got {table!r}")
    name = table.get("rule")
    if name is None:
        raise ConfigError(f"{where}.rule: missing; allowed: {', '.join(kinds)}")
    if not isinstance(name, str) or name not in kinds:
        other = (POPULATION_RULES if target == "projection" else PROJECTION_RULES) if engine else {}
        hint = f" ('{name}' is a {'population' if target == 'projection' else 'projection'} rule)" \
            if isinstance(name, str) and name in other else ""
        raise ConfigError(f"{where}.rule: unknown {target} rule {name!r}{hint}; allowed: {', '.join(kinds)}")
    cls = kinds[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in table.items():
        if key == "rule":
            continue
        if key not in fields:
            raise ConfigError(f"{where}.{key}: unknown field of rule '{name}'; allowed: {', '.join(fields)}")
        if isinstance(value, int) and not isinstance(value, bool) and fields[key].type in ("float", "float | None"):
            value = float(value)
        if isinstance(value, str) and value.lower() in ("inf", "+inf", "-inf") and fields[key].type == "float":
            value = float(value)
        kwargs[key] = value
    try:
        rule = cls(**kwargs)
    except ConfigError as e:
        msg = str(e)
        # "<Rule>: field 'x' must ..." -> "<where>.x: must ..."
        head, _, rest = msg.partition(": field '")
        if rest:
            fld, _, tail = rest.partition("'")
            raise ConfigError(f"{where}.{fld}:{tail}") from None
        raise ConfigError(f"{where}: {msg}") from None
    if engine:
        check_applies(rule, target, model_name, where)
    return rule


def to_config(rule) -> dict:
    """The table ``from_config`` reads back into an equal rule (infinities as strings)."""
    out = {}
    for k, v in rule_fields(rule).items():
        if v is None:
            continue
        if isinstance(v, float) and math.isinf(v):
            v = "inf" if v > 0 else "-inf"
        out[k] = v
    return out
