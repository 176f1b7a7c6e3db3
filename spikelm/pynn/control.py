"""setup / run / reset / end and the procedural API of ``spikelm.pynn``."""
from __future__ import annotations

from spikelm.io.extras import require
from . import simulator
from .populations import Population, neo_io
from .projections import Projection
from .synapses import StaticSynapse

common = require("pyNN.common", "spikelm.pynn")
control = require("pyNN.common.control", "spikelm.pynn")
get_io = require("pyNN.recording", "spikelm.pynn").get_io
FixedProbabilityConnector = require("pyNN.connectors", "spikelm.pynn").FixedProbabilityConnector

#: setup() options of other backends that spikelm accepts and ignores (one process, no MPI)
IGNORED = ("threads", "verbosity", "spike_precision", "recording_precision", "t_flush", "rank", "num_processes",
           "filename", "label", "file")


def setup(timestep=control.DEFAULT_TIMESTEP, min_delay=control.DEFAULT_MIN_DELAY, **extra_params):
    """Start a new network: ``timestep`` and delays in ms.

    spikelm's own options: ``rng_seed`` (int, seeds connectivity-free randomness: Poisson
    sources and noise; PyNN's RNGs keep their own seeds) and ``backend`` ("numba",
    "numpy" or "cupy"). Options of other backends listed in ``IGNORED`` are accepted; any
    other is refused in one line.
    """
    from spikelm.errors import ConfigError

    max_delay = extra_params.pop("max_delay", control.DEFAULT_MAX_DELAY)
    seed = extra_params.pop("rng_seed", 0)
    backend = extra_params.pop("backend", simulator.DEFAULT_BACKEND)
    unknown = sorted(frozenset(extra_params) - frozenset(IGNORED))
    if unknown:
        raise ConfigError(f"setup: unknown option(s) {', '.join(unknown)}; spikelm.pynn takes timestep, min_delay, "
                          f"max_delay, rng_seed, backend (and ignores {', '.join(IGNORED)})")
    common.setup(timestep, min_delay, max_delay=max_delay)
    simulator.state.clear()
    simulator.state.configure(timestep, min_delay, max_delay, seed, backend)
    return rank()


def end(compatible_output=True):
    """Write the files asked for by ``record(..., to_file)``; the recorded data stay readable."""
    for population, variables, filename in simulator.state.write_on_end:
        io = neo_io(filename)
        population.write_data(get_io(io) if isinstance(io, str) else io, variables)
    simulator.state.write_on_end = []


run, run_until = common.build_run(simulator)
run_for = run
reset = common.build_reset(simulator)
initialize = common.initialize
get_current_time, get_time_step, get_min_delay, get_max_delay, num_processes, rank = \
    common.build_state_queries(simulator)

create = common.build_create(Population)
connect = common.build_connect(Projection, FixedProbabilityConnector, StaticSynapse)
record = common.build_record(simulator)
set = common.set     # PyNN's name (shadows the builtin here)


def record_v(source, filename):
    return record(["v"], source, filename)


def record_gsyn(source, filename):
    return record(["gsyn_exc", "gsyn_inh"], source, filename)


def synops():
    """SynOps (synaptic events delivered) per projection since the last ``reset()``, by label."""
    return {(p.label or f"projection{k}"): int(simulator.state.engine.synops.get(p, 0))
            for k, p in enumerate(simulator.state.projections)}
