"""The spikes of one population as a table: what :meth:`spikelm.simulator.Simulator.spikes_as_tables`
returns and the SONATA readers (:func:`spikelm.io.sonata.read_spikes`) give back.

It lives here, below ``io/``, so that the simulator returns it without importing ``io/``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikelm.errors import ConfigError


@dataclass(eq=False)
class SpikeTable:
    """The spikes of one population, in file order.

    Attributes
    ----------
    timestamps : ndarray of float64
        Spike times in ms.
    node_ids : ndarray of uint64
    values : ndarray of int8/int16, or None
        Spike values of signed populations; None when the file has none.
    sorting : str
        ``"none"``, ``"by_id"`` or ``"by_time"``, as the file declares.
    dt : float or None
        Step width (ms) from the file's ``/spikelm`` metadata; None for other tools' files.
    n_nodes : int or None
        Neuron count from the metadata; None when unknown.
    time_unit : str
        ``"ms"`` (timestamps in ms), or ``"step"`` for converted LMs, whose timestamps are
        step indices (a step there is a round of spike propagation, not a duration).
    """

    timestamps: np.ndarray
    node_ids: np.ndarray
    values: np.ndarray | None = None
    sorting: str = "none"
    dt: float | None = None
    n_nodes: int | None = None
    time_unit: str = "ms"

    def __len__(self):
        return self.timestamps.size

    def steps(self, dt=None):
        """Step of each spike: ``round(timestamp / dt)`` as int64 (dt defaults to the file's)."""
        dt = self.dt if dt is None else dt
        if dt is None or not dt > 0:
            raise ConfigError(f"SpikeTable.steps: dt: got {dt!r}; allowed: a float > 0 (ms); "
                              "this file records none, so pass it")
        return np.rint(self.timestamps / dt).astype(np.int64)
