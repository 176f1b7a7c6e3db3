"""The Network container: populations, projections and stimuli, with one seed and one dt."""
from __future__ import annotations

import json

import numpy as np

from spikelm.errors import ConfigError

from . import connectivity as conn
from .budget import NEURON_OVERHEAD, SYNAPSE_BUILD_BYTES, SYNAPSE_BYTES, MemoryBudget
from .models import get_model
from .models.sources import MAX_STEP, spike_steps
from .population import Population
from .projection import Projection
from .stimulus import ConstantCurrent, CurrentSteps, NoiseCurrent, PoissonInput, amplitude_size


class Network:
    """What is simulated. Build it, then hand it to :class:`spikelm.simulator.Simulator`.

    Parameters
    ----------
    dt : float
        Step width in ms.
    seed : int
        Seeds connectivity, initial values and the simulator's random streams.
    memory_limit : int, optional
        Bytes the network and its simulator may take (default: this machine's physical
        memory). Populations, projections and the simulator estimate their memory before
        allocating and refuse beyond it (:mod:`spikelm.network.budget`).
    """

    def __init__(self, dt=0.1, seed=0, memory_limit=None):
        if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not dt > 0 or not np.isfinite(dt):
            raise ConfigError(f"network: 'dt' must be a positive number of ms, got {dt!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"network: 'seed' must be an integer >= 0, got {seed!r}")
        self.dt = float(dt)
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.budget = MemoryBudget(memory_limit)
        self.populations: dict[str, Population] = {}
        self.projections: dict[str, Projection] = {}
        self.stimuli: list = []

    def add_population(self, name, model, n, params=None, init=None, plasticity=None) -> Population:
        """Add ``n`` neurons of ``model`` (see :class:`Population`)."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"population name must be an identifier (letters, digits, _), got {name!r}")
        if name in self.populations:
            raise ConfigError(f"population '{name}' is defined twice")
        if isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1:
            kind = get_model(model) if isinstance(model, str) else model
            n_vars = len(getattr(kind, "state_vars", ())) or 1
            self.budget.claim(int(n) * (16 * n_vars + NEURON_OVERHEAD), f"population '{name}': {int(n):,} neurons")
        pop = Population(name, model, n, params, init, self.rng, plasticity)
        try:    # the per-step constants depend on dt: a rate too high for it is refused here, not at run
            pop.model.derive(pop.params, self.dt)
        except ConfigError as e:
            raise ConfigError(f"population '{name}': {e}") from None
        if pop.model.name == "spike_times":      # times become steps only here, where dt is known
            for j, times in enumerate(pop.params.times):
                spike_steps(times, self.dt, f"population '{name}': times[{j}]")
        self.populations[name] = pop
        return pop

    def population(self, name, what="") -> Population:
        try:
            return self.populations[name]
        except (KeyError, TypeError):
            known = ", ".join(self.populations) or "none defined"
            raise ConfigError(f"{what}population {name!r} is not defined; populations: {known}") from None

    def connect(self, pre, post, rule=None, weight=1.0, delay=None, target="exc", name=None,
                plasticity=None, weight_dtype="float64") -> Projection:
        """Connect population ``pre`` to ``post``.

        ``rule`` is a connectivity rule (default all-to-all), ``weight`` a number, array or
        distribution, ``delay`` in ms (default one step; rounded to whole steps, >= 1 step).
        ``weight_dtype`` "float32" rounds the weights to float32 once, when drawn (half the
        memory; static projections only): every backend then adds the same numbers.
        """
        name = name or f"{pre}_to_{post}"
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"projection name must be an identifier (letters, digits, _), got {name!r}")
        what = f"projection '{name}': "
        if name in self.projections:
            raise ConfigError(f"{what}defined twice")
        p_pre, p_post = self.population(pre, what), self.population(post, what)
        if p_post.model.is_source:
            raise ConfigError(f"{what}post population '{post}' is a spike source ({p_post.model.name}) and takes no input")
        rule = rule if rule is not None else conn.AllToAll()
        expected = getattr(rule, "expected_synapses", None)
        if expected is not None:
            n_syn = expected(p_pre.n, p_post.n)
            what_syn = f"{what}about {n_syn:,} synapses"
            self.budget.check(n_syn * SYNAPSE_BUILD_BYTES, what_syn)
            self.budget.claim(n_syn * SYNAPSE_BYTES, what_syn)
        proj = Projection(name, p_pre, p_post, rule, weight,
                          self.dt if delay is None else delay, self.dt, target, self.rng, plasticity, weight_dtype)
        self.projections[name] = proj
        return proj

    def add_stimulus(self, stim):
        """Attach a stimulus (ConstantCurrent, CurrentSteps, NoiseCurrent, PoissonInput)."""
        if not isinstance(stim, (ConstantCurrent, CurrentSteps, NoiseCurrent, PoissonInput)):
            raise ConfigError(f"unknown stimulus {stim!r}")
        pop = self.population(stim.population, f"stimulus {type(stim).__name__}: ")
        for t in getattr(stim, "times", ()):
            if not t / self.dt < MAX_STEP:
                raise ConfigError(f"stimulus {type(stim).__name__}: time {t:g} ms is beyond step {MAX_STEP:.3g} "
                                  f"at dt = {self.dt:g} ms")
        if pop.model.is_source:
            raise ConfigError(f"stimulus {type(stim).__name__}: population '{pop.name}' is a spike source and takes no input")
        if amplitude_size(stim) - {pop.n}:
            raise ConfigError(f"stimulus {type(stim).__name__}: a per-neuron amplitude needs {pop.n} values (population "
                              f"'{pop.name}'), got {sorted(amplitude_size(stim) - {pop.n})[0]}")
        self.stimuli.append(stim)
        return stim

    @property
    def n_neurons(self):
        return sum(p.n for p in self.populations.values())

    def summary(self) -> dict:
        """A JSON-able description (stored in run files)."""
        return {
            "dt_ms": self.dt, "seed": self.seed,
            "populations": {p.name: {"model": p.model.name, "n": p.n} for p in self.populations.values()},
            "projections": {k.name: {"pre": k.pre.name, "post": k.post.name, "synapses": int(k.n_syn),
                                     "target": k.target, "max_delay_steps": k.max_delay}
                            for k in self.projections.values()},
            "stimuli": [type(s).__name__ for s in self.stimuli],
        }

    def fingerprint(self) -> str:
        """A string that differs between networks a checkpoint cannot move between."""
        return json.dumps(self.summary(), sort_keys=True)
