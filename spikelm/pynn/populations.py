"""Population, PopulationView and Assembly of ``spikelm.pynn``.

A population keeps its parameters as arrays in PyNN's units (native names are PyNN's), and
its initial values as PyNN's lazy arrays. Changing either marks the engine for a rebuild
before the next run; the running state carries over (docs/pynn.md).
"""
from __future__ import annotations

import os

import numpy as np

from spikelm.io.extras import require
from . import simulator
from .recording import Recorder

common = require("pyNN.common", "spikelm.pynn")
errors = require("pyNN.errors", "spikelm.pynn")
parameters = require("pyNN.parameters", "spikelm.pynn")
ParameterSpace, simplify, LazyArray, Sequence = (parameters.ParameterSpace, parameters.simplify,
                                                 parameters.LazyArray, parameters.Sequence)


def neo_io(io):
    """A file name ending in ``.sonata.h5`` is spikelm's SONATA file; other names go to PyNN's get_io."""
    if isinstance(io, (str, os.PathLike)) and os.fspath(io).endswith(".sonata.h5"):
        from spikelm.io.neo_io import SonataIO

        return SonataIO(io)
    return io


class WritesSonata:
    """``write_data("run.sonata.h5")`` writes spikelm's SONATA layout (docs/pynn.md)."""

    def write_data(self, io, *args, **kwargs):
        return super().write_data(neo_io(io), *args, **kwargs)


class Assembly(WritesSonata, common.Assembly):
    _simulator = simulator


def _check_spike_times(values):
    for seq in np.atleast_1d(values):
        times = np.asarray(seq.value if isinstance(seq, Sequence) else seq, dtype=float)
        if times.size and np.any(times[:-1] > times[1:]):
            raise errors.InvalidParameterValueError(
                "SpikeSourceArray: spike_times must be in increasing order, got "
                f"{np.array2string(times, threshold=8)}")


def _native(celltype, names):
    if any(name in celltype.computed_parameters() for name in names):
        return celltype.get_native_names()
    return celltype.get_native_names(*names)


class PopulationView(WritesSonata, common.PopulationView):
    _assembly_class = Assembly
    _simulator = simulator

    def _get_parameters(self, *names):
        native = self._get_native_parameters(*_native(self.celltype, names))
        return self.celltype.reverse_translate(native)

    def _get_native_parameters(self, *names):
        values = {}
        for name in names:
            value = self.grandparent._parameters[name]
            values[name] = simplify(value[self.index_in_grandparent(np.arange(self.size))])
        return ParameterSpace(values, shape=(self.size,))

    def _set_parameters(self, parameter_space):
        parameter_space.evaluate(simplify=False)
        idx = self.index_in_grandparent(np.arange(self.size))
        for name, value in parameter_space.items():
            if name == "spike_times":
                _check_spike_times(value)
            self.grandparent._parameters[name][idx] = value
        self._simulator.state.engine.invalidate()

    def initialize(self, **initial_values):
        """Set initial values (and, after a run, the current state) of these neurons only."""
        gp = self.grandparent
        idx = self.index_in_grandparent(np.arange(self.size))
        for variable, value in initial_values.items():
            if variable not in gp._initial:
                raise errors.NonExistentParameterError(variable, self.celltype, list(gp._initial))
            current = gp._initial[variable]
            current[idx] = LazyArray(value, shape=(self.size,), dtype=float).evaluate(simplify=False)
            gp.initial_values[variable] = LazyArray(current.copy(), shape=(gp.size,), dtype=float)
            self._simulator.state.engine.set_state(gp, variable, idx, current[idx])

    def _get_view(self, selector, label=None):
        return PopulationView(self, selector, label)


class Population(WritesSonata, common.Population):
    __doc__ = common.Population.__doc__
    _simulator = simulator
    _recorder_class = Recorder
    _assembly_class = Assembly

    def _create_cells(self):
        state = simulator.state
        ids = np.arange(state.id_counter, state.id_counter + self.size)
        self.all_cells = np.array([simulator.ID(i) for i in ids], dtype=simulator.ID)
        self._mask_local = np.ones(self.size, dtype=bool)
        space = self.celltype.native_parameters
        space.shape = (self.size,)
        space.evaluate(simplify=False)
        self._parameters = space.as_dict()
        self._initial = {}
        if "spike_times" in self._parameters:
            _check_spike_times(self._parameters["spike_times"])
        for cell in self.all_cells:
            cell.parent = self
        state.id_counter += self.size
        state.populations.append(self)
        state.engine.invalidate()

    def _set_initial_value_array(self, variable, initial_values):
        # the value is kept in self.initial_values (by PyNN's initialize); after a run it also
        # becomes the current state, as NEST's initialize does
        if variable not in self.celltype.default_initial_values:
            raise errors.NonExistentParameterError(variable, self.celltype,
                                                   list(self.celltype.default_initial_values))
        # evaluated once: a random distribution draws here, in the order of the script, as in
        # pyNN.nest (so a seeded script gives the same initial values on both)
        value = LazyArray(initial_values, shape=(self.size,), dtype=float).evaluate(simplify=False)
        self._initial[variable] = np.asarray(value, float).reshape(self.size).copy()
        self._simulator.state.engine.set_state(self, variable, np.arange(self.size), value)

    def _get_view(self, selector, label=None):
        return PopulationView(self, selector, label)

    def _get_parameters(self, *names):
        return self.celltype.reverse_translate(self._get_native_parameters(*_native(self.celltype, names)))

    def _get_native_parameters(self, *names):
        return ParameterSpace({name: simplify(self._parameters[name]) for name in names}, shape=(self.size,))

    def _set_parameters(self, parameter_space):
        parameter_space.evaluate(simplify=False)
        for name, value in parameter_space.items():
            if name == "spike_times":
                _check_spike_times(value)
            self._parameters[name] = np.asarray(value).copy() if np.ndim(value) else np.full(self.size, value)
        self._simulator.state.engine.invalidate()

    def _initial_array(self, variable):
        """The initial values of ``variable`` as a float array (PyNN units), as drawn by initialize()."""
        return self._initial[variable]
