"""The simulator state behind ``spikelm.pynn`` (PyNN's ``simulator`` module of a backend).

PyNN's common code reads ``state`` (time, dt, delays, counters, recorders) and ``ID``.
Time is an integer step counter; ``t`` in ms is derived from it, so it never drifts. The
network a script builds lives in the PyNN objects (populations, projections, current
sources); :class:`~spikelm.pynn.engine.Engine` maps it onto a spikelm ``Network`` and runs it.
"""
from __future__ import annotations

from spikelm.errors import ConfigError

from spikelm.io.extras import require

common = require("pyNN.common", "spikelm.pynn")

name = "spikelm"

#: the backend ``setup(backend=...)`` takes by default
DEFAULT_BACKEND = "numba"


class ID(int, common.IDMixin):
    """A cell of a PyNN population (an int: its global id)."""

    def __init__(self, n):
        int.__init__(n)
        common.IDMixin.__init__(self)


class State(common.control.BaseState):
    """What PyNN's common code asks of a backend, plus the network being built.

    The engine that maps the network onto spikelm is made by ``engine_factory``, which the
    package installs (``spikelm/pynn/__init__.py``): the engine imports the modules that import
    this one, so naming it here would close an import circle.
    """

    engine_factory = None

    def __init__(self):
        super().__init__()
        self.mpi_rank = 0
        self.num_processes = 1
        self.dt = 0.1
        self.seed = 0
        self.backend = DEFAULT_BACKEND
        self.segment_counter = -1
        self.engine = None
        self.clear()

    # -- time --------------------------------------------------------------------------------
    @property
    def t(self):
        """Current time in ms (``step * dt``)."""
        return self.step * self.dt

    def run(self, simtime):
        self.run_until(self.t + simtime)

    def run_until(self, tstop):
        steps = int(round((tstop - self.t) / self.dt))
        if steps > 0:
            self.engine.run(steps)
        self.running = True

    # -- delays ------------------------------------------------------------------------------
    @property
    def min_delay(self):
        if self._min_delay == "auto":
            delays = [p._min_delay_ms() for p in self.projections if len(p)]
            return min(delays) if delays else self.dt
        return self._min_delay

    @min_delay.setter
    def min_delay(self, value):
        self._min_delay = value

    @property
    def max_delay(self):
        if self._max_delay == "auto":
            # the event queue holds delays up to 32767 steps (spikelm.network.projection)
            return 32766 * self.dt
        return self._max_delay

    @max_delay.setter
    def max_delay(self, value):
        self._max_delay = value

    # -- lifecycle ---------------------------------------------------------------------------
    def clear(self):
        """Forget the whole network (``setup()``)."""
        self.recorders = set()
        self.write_on_end = []
        self.populations = []
        self.projections = []
        self.current_sources = []
        self.id_counter = 0
        self._min_delay = "auto"
        self._max_delay = "auto"
        self.segment_counter = -1
        self.engine = None if self.engine_factory is None else self.engine_factory(self)
        self.reset()

    def reset(self):
        """Back to t = 0: initial state, empty queue, a new recording segment."""
        self.running = False
        self.t_start = 0
        self.step = 0
        self.segment_counter += 1
        if self.engine is not None:
            self.engine.reset()

    def configure(self, timestep, min_delay, max_delay, seed, backend):
        if not isinstance(timestep, (int, float)) or isinstance(timestep, bool) or not timestep > 0:
            raise ConfigError(f"setup: timestep must be a positive number of ms, got {timestep!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"setup: rng_seed must be an integer >= 0, got {seed!r}")
        from spikelm.simulator.backends import get_backend

        get_backend(backend)     # refuses an unknown or unavailable backend in one line, now
        self.dt = float(timestep)
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.seed = seed
        self.backend = backend


state = State()
