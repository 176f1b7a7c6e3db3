"""A population: ``n`` neurons of one model, with their state arrays (structure of arrays)."""
from __future__ import annotations

import dataclasses

import numpy as np

from spikelm.errors import ConfigError

from .models import NeuronModel, get_model
from .values import draw


class Population:
    """``n`` neurons of one :class:`~spikelm.network.models.NeuronModel`.

    Parameters
    ----------
    name : str
        Unique within the network.
    model : NeuronModel or str
    n : int
    params : the model's params dataclass, or a dict of its fields (defaults fill the rest)
    init : dict, optional
        Initial values of state variables: a number, an array of length n or a distribution.
    plasticity : rule object, optional
        A population rule (homeostasis) from :mod:`spikelm.plasticity`.

    The state lives in ``state`` (dict of float64 arrays). Once a simulator is built the
    arrays are views into the simulator's packed state, so edits show on both sides.
    """

    def __init__(self, name, model, n, params=None, init=None, rng=None, plasticity=None):
        self.name = name
        self.model: NeuronModel = get_model(model) if isinstance(model, str) else model
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"population '{name}': 'n' must be an integer >= 1, got {n!r}")
        self.n = int(n)
        self.params = make_params(self.model, params, f"population '{name}'")
        if self.model.name == "spike_times" and len(self.params.times) != self.n:
            raise ConfigError(f"population '{name}': 'times' has {len(self.params.times)} lists for {self.n} neurons")
        rng = rng if rng is not None else np.random.default_rng(0)
        self.state = self.model.init_state(self.n, self.params, rng)
        for var, value in (init or {}).items():
            if var not in self.state:
                raise ConfigError(f"population '{name}': unknown state variable '{var}' in init; "
                                  f"{self.model.name} has {', '.join(self.model.state_vars)}")
            self.state[var][:] = draw(value, self.n, rng, f"population '{name}': init.{var}")
        self.window_start = 0
        self.plasticity = plasticity

    def __repr__(self):
        return f"Population({self.name!r}, {self.model.name}, n={self.n})"


def make_params(model: NeuronModel, params, what):
    if params is None:
        return model.params()
    if isinstance(params, model.params):
        return params
    if not isinstance(params, dict):
        raise ConfigError(f"{what}: params must be a table of {model.name} parameters, got {params!r}")
    fields = {f.name for f in dataclasses.fields(model.params)}
    unknown = sorted(set(params) - fields)
    if unknown:
        raise ConfigError(f"{what}: unknown parameter(s) {', '.join(unknown)} for model {model.name}; "
                          f"allowed: {', '.join(sorted(fields))}")
    try:
        return model.params(**params)
    except TypeError as e:
        raise ConfigError(f"{what}: {e}") from None
