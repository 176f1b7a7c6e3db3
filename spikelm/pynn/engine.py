"""Runs the network of a PyNN script on spikelm, and hands what it records to the recorders.

A PyNN script may change anything between runs (parameters, weights, spike times, currents,
what is recorded) and sources switch on and off at given times. The engine keeps one spikelm
``Simulator`` while nothing changes; after a change, or at a source's switching time, it
builds the network anew and carries the running state over: every state variable of every
neuron, and the synaptic input already in flight (the event queue). So ``run(a); run(b)``
gives the spikes of ``run(a + b)`` whatever happens in between, unless the script changes
the network (docs/pynn.md, "What carries over").
"""
from __future__ import annotations

import numpy as np

from spikelm.errors import ConfigError
from spikelm.network import get_model
from spikelm.simulator import Simulator, StateMonitor

from . import build


class Engine:
    """The spikelm side of one ``setup()``: builds, runs, carries state, collects records."""

    def __init__(self, state):
        self.state = state
        self.reset()

    def reset(self):
        self.sim = None
        self.layout = None
        self.dirty = True
        self.overrides = []            # (population, PyNN variable, indices, values) set since the last build
        self.touched = set()           # projections whose weights or delays the script set since then
        self.synops = {}
        for rec in self.state.recorders:
            rec._new_segment()

    def invalidate(self, projection=None):
        """Rebuild before the next run; ``projection``: one whose synaptic values the script set."""
        self.dirty = True
        if projection is not None:
            self.touched.add(projection)

    def set_state(self, pop, variable, idx, values):
        """``initialize()`` after a run: the current state of those neurons takes the values."""
        if self.sim is not None:
            self.overrides.append((pop, variable, np.asarray(idx), np.asarray(values, float)))
            self.dirty = True

    # -- running ----------------------------------------------------------------------------------
    def run(self, n_steps):
        st = self.state
        end = st.step + n_steps
        switches = build.boundaries(st)
        for stop in sorted(b for b in switches if st.step < b < end) + [end]:
            if self.dirty or self.sim is None:
                self._build()
            self._first_samples()
            self.sim.run(stop - st.step)
            self._collect()
            st.step = stop
            if stop in switches:        # a source switches here: the next run needs the new network
                self.dirty = True

    # -- building --------------------------------------------------------------------------------
    def _build(self):
        st = self.state
        initial = self._carry() if self.sim is not None else self._initial()
        pending = self._pending() if self.sim is not None else None
        net, layout = build.build_network(st, initial)
        record, monitors = self._recording(layout)
        sim = Simulator(net, backend=st.backend, record=record, state=[m for m, *_ in monitors])
        sim.t = st.step
        if pending is not None:
            self._restore_pending(sim, net, layout, pending)
            if _same_synapses(self.net, net):
                self._carry_plastic(sim, net, layout)
        self.sim, self.net, self.layout, self.monitors = sim, net, layout, monitors
        self.spike_seen = dict.fromkeys(record, 0)
        self.dirty = False
        self.overrides = []
        self.touched = set()

    def _carry_plastic(self, sim, net, layout):
        """Same synapses: learned weights carry over bit for bit (not through PyNN's units), and STDP's traces."""
        for part in layout.parts:
            if part.plastic and part.projection not in self.touched:
                net.projections[part.name].w[:] = self.net.projections[part.name].w
        if sim.learn is not None and self.sim.learn is not None:
            sim.learn.load_state_dict(self.sim.learn.state_dict())

    def _initial(self):
        return {pop: self._initial_of(pop) for pop in self.state.populations}

    def _carry(self):
        """The current state of every PyNN neuron, in spikelm's variables, plus the overrides."""
        out = {}
        dt = self.state.dt
        for pop in self.state.populations:
            cell = pop.celltype
            if pop not in self.layout.groups:          # created since the last build
                out[pop] = self._initial_of(pop)
                continue
            variables = get_model(cell.spikelm_model).state_vars
            state = {var: np.zeros(pop.size) for var in variables}
            for g in self.layout.groups[pop]:
                for var in variables:
                    state[var][g.members] = self.net.populations[g.name].state[var]
            # state that is a parameter in PyNN (Izhikevich's a, b, c, d) follows set()
            state.update(cell.spikelm_state(pop._parameters, {}, dt))
            out[pop] = state
        for pop, variable, idx, values in self.overrides:
            conv = pop.celltype.spikelm_state({k: np.asarray(v)[idx] for k, v in pop._parameters.items()},
                                              {variable: values}, dt)
            for var, arr in conv.items():
                if var in out[pop] and var not in pop.celltype.params_in_state:
                    out[pop][var][idx] = arr
        return out

    def _initial_of(self, pop):
        """The initial state of ``pop`` in spikelm's variables (as initialize() drew it)."""
        pop.celltype.check_runnable(pop.label)
        values = {var: pop._initial_array(var) for var in pop._initial}
        return pop.celltype.spikelm_state(pop._parameters, values, self.state.dt)

    def _pending(self):
        q = self.sim.plan.queue
        index = self.layout.global_index(self.net)
        t = self.state.step
        rows = [(t + k) % q.n_slots for k in range(q.n_slots)]
        return index, q.buf[rows].copy(), q.count[rows].copy()

    def _restore_pending(self, sim, net, layout, pending):
        old_index, buf, count = pending
        new_index = layout.global_index(net)
        q, t = sim.plan.queue, self.state.step
        due = np.flatnonzero(count)
        if due.size and due.max() >= q.n_slots:
            raise ConfigError(f"run: synaptic input is in flight {due.max()} steps ahead, beyond the longest delay "
                              f"of the changed network ({q.n_slots - 1} steps); shorten delays only between runs "
                              "that leave nothing in flight")
        for pop, old in old_index.items():
            new = new_index[pop]
            for k in due:
                q.buf[(t + k) % q.n_slots][:, new] = buf[k][:, old]
        for k in due:
            q.count[(t + k) % q.n_slots] = count[k]
        q.totals[0] = int(count.sum())

    def _recording(self, layout):
        """Spike record (spikelm population names) and StateMonitors for what the recorders ask."""
        record, monitors = [], []
        for pop, groups in layout.groups.items():
            rec = pop.recorder
            for variable, ids in rec.recorded.items():
                if not ids:
                    continue
                idx = np.sort(np.asarray(pop.id_to_index(np.array(sorted(ids))), dtype=np.int64).reshape(-1))
                for g in groups:
                    local = np.flatnonzero(np.isin(g.members, idx))
                    if not local.size:
                        continue
                    if variable.name == "spikes":
                        record.append(g.name)
                        continue
                    svar, _ = pop.celltype.recordables[variable.name]
                    mon = StateMonitor(g.name, [svar], every=1, neurons=local)
                    monitors.append((mon, pop, g, variable.name, svar))
        return sorted(set(record)), monitors

    # -- collecting ------------------------------------------------------------------------------
    def _scale(self, pop, pynn_var, idx):
        _, divide = pop.celltype.recordables[pynn_var]
        if not divide:
            return 1.0
        return pop.celltype.weight_scale(pop._parameters, self.state.dt)[idx]

    def _first_samples(self):
        """The value at the start of a segment (or of a recording) is its first sample."""
        by_key = {}
        for mon, pop, g, var, svar in self.monitors:
            if var in pop.recorder._started:
                continue
            local = mon.neurons
            values = self.net.populations[g.name].state[svar][local]
            by_key.setdefault((pop, var), []).append((g.members[local], values))
        for (pop, var), parts in by_key.items():
            idx = np.concatenate([i for i, _ in parts])
            vals = np.concatenate([v for _, v in parts]) / self._scale(pop, var, idx)
            order = np.argsort(idx)
            pop.recorder.add_samples(var, (pop.first_id + idx[order]).astype(np.int64), vals[order][None, :])
            pop.recorder._started.add(var)

    def _collect(self):
        dt = self.state.dt
        for pop, groups in self.layout.groups.items():
            rec = pop.recorder
            for g in groups:
                if g.name not in self.spike_seen:
                    continue
                steps, ids, _ = self.sim.spikes.get(g.name)
                seen = self.spike_seen[g.name]
                steps, ids = steps[seen:], ids[seen:]
                self.spike_seen[g.name] += steps.size
                gids = pop.first_id + g.members[ids]
                wanted = np.isin(gids, np.fromiter(rec.recorded_spike_ids(), np.int64))
                rec.add_spikes(gids[wanted].astype(np.int64), (steps[wanted] + 1) * dt)
        by_key = {}
        for mon, pop, g, var, svar in self.monitors:
            steps, data = mon.get(svar)
            mon.steps.clear()
            mon.data.clear()
            by_key.setdefault((pop, var), []).append((g.members[mon.neurons], steps, data))
        for (pop, var), parts in by_key.items():
            k = pop.recorder.every_steps()
            idx = np.concatenate([i for i, _, _ in parts])
            steps = parts[0][1]
            keep = (steps + 1) % k == 0
            rows = np.concatenate([d for _, _, d in parts], axis=1)[keep] / self._scale(pop, var, idx)
            order = np.argsort(idx)
            pop.recorder.add_samples(var, (pop.first_id + idx[order]).astype(np.int64), rows[:, order])
        for part in self.layout.parts:
            syn = self.sim.synops.get(part.name, 0)
            key = part.projection
            self.synops[key] = self.synops.get(key, 0) + syn - part.synops_seen
            part.synops_seen = syn
            if part.plastic:
                w = self.net.projections[part.name].w
                part.projection._arrays()[2]["weight"][part.order] = w / part.scale


def _same_synapses(old, new):
    """True when two networks have the same neurons and the same synapses in the same order."""
    if old.fingerprint() != new.fingerprint():
        return False
    for name, a in old.projections.items():
        b = new.projections[name]
        if not (np.array_equal(a.indptr, b.indptr) and np.array_equal(a.post_idx, b.post_idx)
                and np.array_equal(a.delay, b.delay)):
            return False
    return True
