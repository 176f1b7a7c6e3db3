"""Current sources of ``spikelm.pynn``: DCSource, StepCurrentSource, NoisyCurrentSource.

A current switched on at time T (a step boundary) acts from the step that starts at T, so
V first moves at T + dt, as with pyNN.nest. DC and step currents become spikelm
``CurrentSteps`` (per-neuron amplitudes); a noisy current becomes ``NoiseCurrent`` (a new
normal draw every step and neuron, as NEST's noise_generator gives each target its own
noise) while it is on. Changing a parameter between runs takes effect from the current time.
"""
from __future__ import annotations

import numpy as np

from spikelm.errors import ConfigError

from spikelm.io.extras import require
from . import simulator

pynn_electrodes = require("pyNN.standardmodels.electrodes", "spikelm.pynn")
base = require("pyNN.standardmodels", "spikelm.pynn")
ParameterSpace = require("pyNN.parameters", "spikelm.pynn").ParameterSpace
Sequence = require("pyNN.parameters", "spikelm.pynn").Sequence


def _identity(cls):
    return base.build_translations(*[(name, name) for name in cls.default_parameters])


class CurrentSource(base.StandardCurrentSource):
    """Keeps its parameters (PyNN units) and the cells it feeds: (population, index) pairs."""

    def __init__(self, **parameters):
        object.__setattr__(self, "_params", {})
        object.__setattr__(self, "targets", [])
        object.__setattr__(self, "recording", False)
        super().__init__(**parameters)
        space = ParameterSpace(self.default_parameters, self.get_schema(), shape=(1,))
        space.update(**parameters)
        self.set_native_parameters(self.translate(space))
        simulator.state.current_sources.append(self)

    def get_native_parameters(self):
        return ParameterSpace(dict(self._params))

    def set_native_parameters(self, parameters):
        parameters.evaluate(simplify=True)
        for name, value in parameters.items():
            self._params[name] = np.asarray(value.value, float) if isinstance(value, Sequence) else value
        self._check()
        simulator.state.engine.invalidate()

    def _check(self):
        pass

    def inject_into(self, cells):
        for cell in cells:
            if not cell.celltype.injectable:
                raise TypeError("Can't inject current into a spike source.")
            pop = cell.parent
            self.targets.append((pop, int(pop.id_to_index(cell))))
        simulator.state.engine.invalidate()

    def record(self):
        self.recording = True

    def steps(self, dt):
        """[(step, amplitude nA)]: the amplitude in force from each step on (DC and step sources)."""
        raise NotImplementedError

    def _get_data(self):
        state = simulator.state
        n = state.step + 1
        amps = np.zeros(n)
        for step, amp in self.steps(state.dt):
            if step < n:
                amps[max(step, 0):] = amp
        return np.arange(n) * state.dt, amps


def _grid_step(t_ms, dt):
    return int(np.floor(round(float(t_ms) / dt, 9) + 0.5))


class DCSource(CurrentSource, pynn_electrodes.DCSource):
    __doc__ = pynn_electrodes.DCSource.__doc__
    translations = _identity(pynn_electrodes.DCSource)

    def steps(self, dt):
        p = self._params
        return [(_grid_step(p["start"], dt), float(p["amplitude"])), (_grid_step(p["stop"], dt), 0.0)]


class StepCurrentSource(CurrentSource, pynn_electrodes.StepCurrentSource):
    __doc__ = pynn_electrodes.StepCurrentSource.__doc__
    translations = _identity(pynn_electrodes.StepCurrentSource)

    def _check(self):
        times = np.atleast_1d(np.asarray(self._params.get("times", []), float))
        amps = np.atleast_1d(np.asarray(self._params.get("amplitudes", []), float))
        if times.size != amps.size:
            raise ValueError(f"StepCurrentSource: {times.size} times but {amps.size} amplitudes")
        if np.any(times < 0):
            raise ValueError("StepCurrentSource: times must be >= 0 ms (found a negative time)")
        if np.any(np.diff(times) <= 0):
            raise ValueError("StepCurrentSource: times must be strictly increasing")
        dt = simulator.state.dt
        # onto the time grid; of two times in one step the last amplitude holds (as pyNN.brian2)
        grid = np.rint(times / dt) * dt
        keep = np.append(grid[1:] != grid[:-1], True) if grid.size else np.zeros(0, bool)
        self._params["times"] = grid[keep]
        self._params["amplitudes"] = amps[keep]

    def steps(self, dt):
        return [(_grid_step(t, dt), float(a)) for t, a in zip(self._params["times"], self._params["amplitudes"])]


class NoisyCurrentSource(CurrentSource, pynn_electrodes.NoisyCurrentSource):
    __doc__ = pynn_electrodes.NoisyCurrentSource.__doc__
    translations = _identity(pynn_electrodes.NoisyCurrentSource)

    def _check(self):
        dt = simulator.state.dt
        if abs(float(self._params["dt"]) - dt) > 1e-9 * dt:
            raise ConfigError(f"NoisyCurrentSource: dt = {float(self._params['dt']):g} ms; spikelm draws the noise "
                              f"anew every time step, so dt must equal the timestep ({dt:g} ms)")
        if float(self._params["stdev"]) < 0:
            raise ConfigError(f"NoisyCurrentSource: stdev must be >= 0 nA, got {float(self._params['stdev']):g}")

    def window(self, dt):
        """(first step, step after the last) while the noise is on."""
        return _grid_step(self._params["start"], dt), _grid_step(self._params["stop"], dt)

    def record(self):
        raise ConfigError("NoisyCurrentSource.record(): spikelm draws the noise inside its compiled loop and "
                          "does not keep it; record the membrane potential instead")
