"""spikelm as a PyNN backend: ``import spikelm.pynn as sim`` runs a PyNN script on spikelm.

Built on PyNN's own base classes, as pyNN.nest and pyNN.brian2 are: PyNN computes the
connections, spikelm's numba backend runs the network, recordings come back as Neo blocks.
Conventions are mapped to pyNN.nest's (``spike_precision="on_grid"``); docs/pynn.md lists
what is supported, and what is refused in one line. Needs the ``pynn`` extra
(``pip install "spikelm[pynn]"``).
"""
from __future__ import annotations

from spikelm.io.extras import require

require("pyNN", "spikelm.pynn")
require("neo", "spikelm.pynn")

from pyNN import errors, random, space  # noqa: E402,F401
from pyNN.connectors import (  # noqa: E402,F401
    AllToAllConnector, ArrayConnector, CloneConnector, DisplacementDependentProbabilityConnector,
    DistanceDependentProbabilityConnector, FixedNumberPostConnector, FixedNumberPreConnector,
    FixedProbabilityConnector, FixedTotalNumberConnector, FromFileConnector, FromListConnector,
    IndexBasedProbabilityConnector, OneToOneConnector, SmallWorldConnector)
from pyNN.random import GSLRNG, NumpyRNG, RandomDistribution  # noqa: E402,F401
from pyNN.space import Space  # noqa: E402,F401
from pyNN.standardmodels import StandardCellType  # noqa: E402

from .cells import (BUILD_ONLY, EIF_cond_alpha_isfa_ista, EIF_cond_exp_isfa_ista, HH_cond_exp,  # noqa: E402,F401
                    IF_cond_alpha, IF_cond_exp, IF_curr_alpha, IF_curr_delta, IF_curr_exp, Izhikevich, RUNNABLE,
                    SpikeSourceArray, SpikeSourcePoisson)
from .control import (create, connect, end, get_current_time, get_max_delay, get_min_delay,  # noqa: E402,F401
                      get_time_step, initialize, num_processes, rank, record, record_gsyn, record_v, reset, run,
                      run_for, run_until, set, setup, synops)
from .electrodes import DCSource, NoisyCurrentSource, StepCurrentSource  # noqa: E402,F401
from .populations import Assembly, Population, PopulationView  # noqa: E402,F401
from .projections import Projection  # noqa: E402,F401
from .simulator import state  # noqa: E402
from .synapses import (AdditiveWeightDependence, MultiplicativeWeightDependence, SpikePairRule,  # noqa: E402,F401
                       STDPMechanism, StaticSynapse, TsodyksMarkramSynapse)

from spikelm.errors import ConfigError  # noqa: E402

from .engine import Engine  # noqa: E402

state.engine_factory = Engine
state.clear()


class NotInSpikelm(ConfigError, AttributeError):
    """A PyNN name that spikelm.pynn does not provide (a model or feature spikelm lacks)."""


def list_standard_models():
    """The standard cell types this backend provides (those in BUILD_ONLY cannot run)."""
    return [name for name, obj in globals().items()
            if isinstance(obj, type) and issubclass(obj, StandardCellType) and obj is not StandardCellType]


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    raise NotInSpikelm(f"spikelm.pynn has no {name}: spikelm simulates the cell types {', '.join(RUNNABLE)}, "
                       "the current sources DCSource, StepCurrentSource, NoisyCurrentSource, and StaticSynapse or "
                       "STDPMechanism synapses (docs/pynn.md)")
