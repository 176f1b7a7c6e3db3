"""How many threads run a converted LM: ``threads=`` / ``--threads``, else ``$SPIKELM_THREADS``, else
every idle core this process may use, but one thread per :data:`WEIGHTS_PER_THREAD` weights at most.

A token's steps end on barriers of all its threads (:mod:`spikelm.lm.loop`), a few tenths of a
microsecond each on idle cores. A small model's step is a few microseconds of work, which a
second thread cannot shorten by more than the barriers cost, so small models run on one thread
unless asked otherwise. On a machine whose cores other work keeps busy, a thread may wait at a
barrier for the scheduler to run its partner again (milliseconds; measured on a 2-core machine
at load 7: two threads 2.5x slower than one), so the default leaves out the cores that the
load average says are busy (this process counted as one). Any count gives the same results.
"""

from __future__ import annotations

import os

import numpy as np

from spikelm.errors import ConfigError

#: weights (synapses of the projections) per thread below which another thread does not pay
WEIGHTS_PER_THREAD = 4_000_000


def cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def idle_cores() -> int:
    """Cores not kept busy by other work: the cores less the 1-minute load average beyond the
    one this process may itself add (every core where the load is unknown)."""
    try:
        busy = max(0.0, os.getloadavg()[0] - 1.0)
    except (AttributeError, OSError):  # not on a POSIX system
        busy = 0.0
    return max(1, cores() - round(busy))


def default_threads(graph) -> int:
    """Every idle core, but at most one thread per :data:`WEIGHTS_PER_THREAD` weights of ``graph``."""
    weights = sum(pr.weights.size for pr in graph.projections)
    return max(1, min(idle_cores(), weights // WEIGHTS_PER_THREAD))


def check_threads(threads, what: str = "threads") -> int:
    """``threads`` as an int in [1, cores()], or a one-line ConfigError naming ``what``."""
    top = cores()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or not 1 <= threads <= top:
        raise ConfigError(f"{what}: must be an integer from 1 to {top} (this machine's cores), got {threads!r}")
    return int(threads)


def resolve(threads, graph, backend: str = "numba", learning: bool = False) -> int:
    """The thread count of a run: ``threads`` if given, else ``$SPIKELM_THREADS``, else
    :func:`default_threads` (numba); one on the numpy backend and in learning runs, which
    refuse any other count given explicitly."""
    if threads is not None and threads != 1:
        check_threads(threads)
        if backend != "numba":
            raise ConfigError(f"threads={threads}: the {backend} backend runs on one thread (threads apply to numba)")
        if learning:
            raise ConfigError(f"threads={threads}: learning runs (plasticity, spike units, EI-IF neurons) run on "
                              "one thread")
        return int(threads)
    if threads == 1 or backend != "numba" or learning:
        return 1
    n = env_threads()
    return default_threads(graph) if n is None else n


def env_threads() -> int | None:
    """``$SPIKELM_THREADS`` as a checked thread count, or None where it is unset or empty."""
    env = os.environ.get("SPIKELM_THREADS", "").strip()
    if not env:
        return None
    try:
        n = int(env)
    except ValueError:
        raise ConfigError(f"SPIKELM_THREADS: must be an integer number of threads, got {env!r}") from None
    return check_threads(n, "SPIKELM_THREADS")
