"""Files in and out: SONATA spike/state files (``sonata``) and their plots (``plots``).

``plots`` needs matplotlib and is not imported here; use ``from spikelm.io import plots``.
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
