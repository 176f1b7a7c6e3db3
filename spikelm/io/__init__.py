"""Files in and out.

The SONATA spike/state file API (``spikelm.io.sonata``) is re-exported here. ``plots`` draws
those files with matplotlib and is not imported here; use ``from spikelm.io import plots``.
"""

from spikelm.io.sonata import (
    SpikeTable,
    SpikeWriter,
    read_metadata,
    read_spikes,
    read_state,
    read_weights,
    summary,
    validate,
)

__all__ = [
    "SpikeTable",
    "SpikeWriter",
    "read_metadata",
    "read_spikes",
    "read_state",
    "read_weights",
    "summary",
    "validate",
]
