"""Spike files in the SONATA layout: written while a run goes, read back, checked, summarised.

Layout (``docs/files.md`` has the full description and the reasons)::

    /                          attrs magic = 0x0A7A, version = [0, 1]   (SONATA convention)
    /spikes/<population>/      attr sorting: HDF5 enum {none: 0, by_id: 1, by_time: 2} = by_time
        timestamps             float64 [n_spikes], attr units = "ms"; timestamp = step * dt
                               (converted LMs: units = "step", timestamp = step)
        node_ids               uint64  [n_spikes]
        values                 int8 (int16 when needed) [n_spikes]; only for signed/graded spikes
    /spikelm/                  run metadata (see ``read_metadata``)
    /report/<population>/      one SONATA frame report per (population, first variable)
        data                   float32 [n_times, n_nodes], attrs units, variable
        mapping/node_ids, index_pointers, index_pointer, element_ids, element_pos, time
    /report/<population>/<variable>/   further variables of the same population, same layout
    /report/<projection>/weights       [n_snapshots, n_synapses], with steps and times beside it

A file is written to ``<path>.partial`` and renamed to ``<path>`` by ``SpikeWriter.finish``;
a run that fails keeps its ``.partial`` file and never touches ``<path>``.
"""


from __future__ import annotations

from .sonata_format import FORMAT, INTERNAL_KEYS, SONATA_MAGIC, SONATA_VERSION, SORTING, SORTING_DTYPE  # noqa: F401
from .sonata_read import SpikeTable, read_metadata, read_spikes, read_state, read_weights, validate
from .sonata_summary import summary
from .sonata_write import COMPRESSION, TIME_UNITS, SpikeWriter  # noqa: F401

__all__ = [
    "SORTING_DTYPE",
    "SpikeTable",
    "SpikeWriter",
    "read_metadata",
    "read_spikes",
    "read_state",
    "read_weights",
    "summary",
    "validate",
]
