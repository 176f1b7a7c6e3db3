"""Memory bounds: estimate what a network will hold before allocating it, and refuse beyond a limit.

A :class:`~spikelm.network.Network` carries one :class:`MemoryBudget`. Every population,
projection and the simulator claim their estimated bytes *before* they allocate; a claim
that would pass the limit raises one :class:`ConfigError` line giving the estimate, the
limit and how to raise it. The default limit is this machine's physical memory, so a
scenario with 1e12 neurons or 2e10 synapses stops at once instead of swapping for hours.
"""
from __future__ import annotations

import os

from spikelm.errors import ConfigError

#: Bytes per neuron besides its state variables: the packed state copy, stimulus and record
#: arrays of the plan (the event queue is claimed by the simulator, per delay slot).
NEURON_OVERHEAD = 48
#: Bytes a synapse keeps: weight (float64), post index (int32), delay (int16), and the room to
#: copy one projection at a time into the plan's concatenated arrays (narrower types only
#: take less).
SYNAPSE_BYTES = 16
#: Bytes per synapse while its projection is being built (checked, not kept): pair indices
#: (2 x int64) and the sort order while drawing, weights and delays drawn as float64.
SYNAPSE_BUILD_BYTES = 64
#: How to raise the limit, named in every refusal.
HOW_TO_RAISE = "raise the limit with --max-memory GB (Python: Network(memory_limit=bytes))"


def machine_memory() -> int:
    """Physical memory of this machine in bytes (16 GiB when the system does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # not a POSIX system: a conservative guess
        return 16 << 30


def human(nbytes: float) -> str:
    """Bytes as a short text: 1.5 GB, 820 MB, 12 kB."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{int(nbytes)} B"


class MemoryBudget:
    """A running estimate of a network's memory against a limit (bytes).

    Parameters
    ----------
    limit : int or float, optional
        Bytes allowed; default :func:`machine_memory`.
    """

    def __init__(self, limit=None):
        if limit is None:
            self.limit, self.source = machine_memory(), "this machine's memory"
        else:
            if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit > 0 \
                    or limit != limit or limit == float("inf"):
                raise ConfigError(f"memory_limit: must be a finite number of bytes > 0, got {limit!r}")
            self.limit, self.source = int(limit), "the limit given"
        self.used = 0

    def claim(self, nbytes, what):
        """Add ``nbytes`` for ``what`` (e.g. "projection 'ee': 2e10 synapses"), or refuse."""
        nbytes = int(nbytes)
        if self.used + nbytes > self.limit:
            raise ConfigError(f"{what} need about {human(nbytes)} (the network {human(self.used + nbytes)} in all), "
                              f"more than {human(self.limit)} ({self.source}); {HOW_TO_RAISE}")
        self.used += nbytes

    def check(self, nbytes, what):
        """Refuse ``nbytes`` more for ``what`` without keeping the claim (temporary buffers)."""
        self.claim(nbytes, what)
        self.used -= int(nbytes)
