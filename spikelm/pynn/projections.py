"""Projection of ``spikelm.pynn``.

PyNN's connectors compute the connections and hand them over post neuron by post neuron
(``_convergent_connect``); a projection keeps them as flat arrays in creation order:
pre and post index (within ``pre`` and ``post``, which may be views or assemblies) and one
array per synaptic parameter, in PyNN units. The engine splits them into spikelm
projections, one per pair of spikelm populations, when it builds the network; weights that
STDP changed come back here after every run.
"""
from __future__ import annotations

import numpy as np

from spikelm.io.extras import require
from . import simulator
from .synapses import StaticSynapse

common = require("pyNN.common", "spikelm.pynn")
Space = require("pyNN.space", "spikelm.pynn").Space


class Connection(common.Connection):
    """One connection, by its position in the projection's arrays."""

    def __init__(self, projection, index):
        self.projection = projection
        self.index = index

    @property
    def presynaptic_index(self):
        return int(self.projection._arrays()[0][self.index])

    @property
    def postsynaptic_index(self):
        return int(self.projection._arrays()[1][self.index])

    def _get(self, name):
        return float(self.projection._arrays()[2][name][self.index])

    def _set(self, name, value):
        self.projection._arrays()[2][name][self.index] = value
        simulator.state.engine.invalidate(self.projection)

    weight = property(lambda self: self._get("weight"), lambda self, w: self._set("weight", w))
    delay = property(lambda self: self._get("delay"), lambda self, d: self._set("delay", d))

    def __getattr__(self, name):
        params = self.projection._arrays()[2]
        if name in params:
            return float(params[name][self.index])
        raise AttributeError(name)

    def as_tuple(self, *names):
        return tuple(getattr(self, name) for name in names)


class Projection(common.Projection):
    __doc__ = common.Projection.__doc__
    _simulator = simulator
    _static_synapse_class = StaticSynapse

    def __init__(self, presynaptic_population, postsynaptic_population, connector, synapse_type=None,
                 source=None, receptor_type=None, space=None, label=None):
        super().__init__(presynaptic_population, postsynaptic_population, connector, synapse_type, source,
                         receptor_type, Space() if space is None else space, label)
        self._chunks = []
        self._pre = np.zeros(0, np.int64)
        self._post = np.zeros(0, np.int64)
        self._params = {}
        simulator.state.projections.append(self)
        connector.connect(self)
        simulator.state.engine.invalidate()

    # -- storage -------------------------------------------------------------------------------
    def _convergent_connect(self, presynaptic_indices, postsynaptic_index, location_selector=None,
                            **connection_parameters):
        if location_selector is not None:
            raise NotImplementedError("spikelm.pynn has point neurons only: no location_selector")
        pre = np.atleast_1d(np.asarray(presynaptic_indices, dtype=np.int64))
        if pre.size:
            params = {k: np.broadcast_to(np.asarray(v, dtype=float), pre.shape).copy()
                      for k, v in connection_parameters.items()}
            self._chunks.append((pre, np.full(pre.size, int(postsynaptic_index), np.int64), params))

    def _arrays(self):
        """(pre, post, {name: values}) of every connection, in creation order."""
        if self._chunks:
            chunks = self._chunks
            self._chunks = []
            self._pre = np.concatenate([self._pre] + [c[0] for c in chunks])
            self._post = np.concatenate([self._post] + [c[1] for c in chunks])
            names = list(chunks[0][2])
            old = self._params
            self._params = {k: np.concatenate(([old[k]] if k in old else []) + [c[2][k] for c in chunks])
                            for k in names}
        return self._pre, self._post, self._params

    def __len__(self):
        return int(self._arrays()[0].size)

    @property
    def connections(self):
        return (Connection(self, i) for i in range(len(self)))

    def __getitem__(self, i):
        return Connection(self, i)

    def _min_delay_ms(self):
        return float(self._arrays()[2]["delay"].min())

    # -- get / set -----------------------------------------------------------------------------
    def _set_attributes(self, parameter_space):
        pre, post, params = self._arrays()
        parameter_space.evaluate(simplify=True)
        for name, value in parameter_space.items():
            if name not in params:
                from spikelm.errors import ConfigError

                raise ConfigError(f"projection '{self.label}': no synaptic parameter {name!r}; "
                                  f"it has {', '.join(params)}")
            value = np.asarray(value, dtype=float)
            params[name][:] = value if value.ndim == 0 else value[pre, post]
        self._simulator.state.engine.invalidate(self)

    def _set_initial_value_array(self, variable, value):
        from spikelm.errors import ConfigError

        raise ConfigError(f"projection '{self.label}': spikelm.pynn has no synaptic state variable {variable!r} "
                          "to initialize")

    def _get_attributes_as_list(self, names):
        pre, post, params = self._arrays()
        columns = []
        for name in names:
            if name == "presynaptic_index":
                columns.append(pre)
            elif name == "postsynaptic_index":
                columns.append(post)
            else:
                columns.append(params[name])
        return [tuple(row) for row in np.array(columns, dtype=float).T.tolist()]

    def _get_attributes_as_arrays(self, names, multiple_synapses="sum"):
        pre, post, params = self._arrays()
        aggregate = {"sum": (np.add.at, 0.0), "min": (np.minimum.at, np.inf), "max": (np.maximum.at, -np.inf)}
        out = []
        for name in names:
            values = params[name]
            if multiple_synapses in aggregate:
                ufunc_at, fill = aggregate[multiple_synapses]
                arr = np.full(self.shape, fill)
                ufunc_at(arr, (pre, post), values)
            else:      # "first" / "last": the first or last connection of a pair wins
                arr = np.full(self.shape, np.nan)
                order = np.arange(pre.size)[::-1] if multiple_synapses == "first" else np.arange(pre.size)
                arr[pre[order], post[order]] = values[order]
            missing = np.ones(self.shape, dtype=bool)
            missing[pre, post] = False
            arr[missing] = np.nan
            out.append(arr)
        return out
