"""From the PyNN objects of a script to one spikelm ``Network`` (the mapping, in one place).

A PyNN population becomes one spikelm population per distinct value of the parameters
spikelm keeps per population (``celltype.group_by``) and per set of noise sources injected:
usually exactly one. ``Layout`` remembers where each PyNN neuron went. A PyNN projection
becomes one spikelm projection per (pre, post) pair of those populations, its connections
sorted by (pre, post) in a stable order that ``Part.order`` records, so weights can go
back and forth. Units and the conventions of docs/coming-from-brian2-nest.md are applied
by the cell types (:mod:`spikelm.pynn.cells`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

import spikelm.network as sn
from spikelm.errors import ConfigError

from .cells import nest_steps
from .electrodes import NoisyCurrentSource
from .synapses import STDPMechanism, StaticSynapse, stdp_rule

TARGET = {"excitatory": "exc", "inhibitory": "inh"}


@dataclass
class Group:
    name: str
    members: np.ndarray          # indices in the PyNN population, ascending
    params: dict                 # spikelm parameters
    noise: list = field(default_factory=list)   # NoisyCurrentSources injected (with repeats)


@dataclass
class Part:
    """One spikelm projection of a PyNN projection."""

    name: str
    projection: object
    order: np.ndarray            # positions in the PyNN projection's arrays, in spikelm's synapse order
    scale: np.ndarray            # PyNN weight -> spikelm weight, per synapse
    plastic: bool
    synops_seen: int = 0         # SynOps of this part already added to the engine's count


@dataclass
class Layout:
    groups: dict = field(default_factory=dict)      # PyNN population -> [Group]
    group_of: dict = field(default_factory=dict)    # PyNN population -> array: group number per neuron
    local_of: dict = field(default_factory=dict)    # PyNN population -> array: index within its group
    parts: list = field(default_factory=list)

    def global_index(self, net):
        """{PyNN population: array of spikelm's global neuron index} (populations in network order)."""
        lo, at = {}, 0
        for pop in net.populations.values():
            lo[pop.name] = at
            at += pop.n
        return {p: np.array([lo[gs[g].name] for g in range(len(gs))], np.int64)[self.group_of[p]] + self.local_of[p]
                for p, gs in self.groups.items()}


def _identifier(label, taken):
    base = re.sub(r"\W", "_", str(label or "")).strip("_") or "pop"
    if not base[0].isalpha():
        base = "p_" + base
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def window_steps(start_ms, stop_ms, dt):
    return int(nest_steps(start_ms, dt)), int(min(nest_steps(min(stop_ms, 2**62 * dt), dt), 2**62))


def boundaries(state):
    """Steps at which some source switches on or off (the engine rebuilds there)."""
    out = set()
    for pop in state.populations:
        if pop.celltype.spikelm_model == "poisson":
            p = pop._parameters
            for start, dur in set(zip(np.asarray(p["start"], float), np.asarray(p["duration"], float))):
                out.update(window_steps(start, start + dur, state.dt))
    for src in state.current_sources:
        if isinstance(src, NoisyCurrentSource) and src.targets:
            out.update(src.window(state.dt))
    return out


def _noise_columns(pop, state):
    """Per neuron, how often each noisy source feeds it (columns), and the sources."""
    sources = [s for s in state.current_sources if isinstance(s, NoisyCurrentSource)
               and any(p is pop for p, _ in s.targets)]
    cols = np.zeros((pop.size, len(sources)))
    for k, s in enumerate(sources):
        for p, i in s.targets:
            if p is pop:
                cols[i, k] += 1
    return cols, sources


def group_population(pop, state, taken):
    """Split ``pop`` into spikelm populations; returns ([Group], group of each neuron, local index)."""
    cell = pop.celltype
    cell.check_runnable(pop.label)
    p = pop._parameters
    noise, sources = _noise_columns(pop, state)
    keys = np.column_stack([np.asarray(p[c], float).reshape(pop.size) for c in cell.group_by] + [noise])
    if keys.shape[1]:
        uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
        inverse = inverse.reshape(pop.size)
    else:
        uniq, inverse = np.zeros((1, 0)), np.zeros(pop.size, np.int64)
    groups = []
    local = np.zeros(pop.size, np.int64)
    for g, key in enumerate(uniq):
        members = np.flatnonzero(inverse == g)
        local[members] = np.arange(members.size)
        row = dict(zip(cell.group_by, key[:len(cell.group_by)]))
        params = _spikelm_params(cell, row, state)
        counts = key[len(cell.group_by):]
        feeds = [s for s, c in zip(sources, counts) for _ in range(int(c))]
        name = _identifier(pop.label if uniq.shape[0] == 1 else f"{pop.label}_{g}", taken)
        groups.append(Group(name, members, params, feeds))
    return groups, inverse.astype(np.int64), local


def _spikelm_params(cell, row, state):
    dt = state.dt
    if cell.spikelm_model == "poisson":
        on, off = window_steps(row["start"], row["start"] + row["duration"], dt)
        return {"rate": float(row["rate"]) if on <= state.step < off else 0.0}
    return cell.spikelm_params({k: float(v) for k, v in row.items()}, dt)


def source_times(pop, members, dt):
    """SpikeSourceArray times as spikelm steps: a spike stamped T is emitted in the step ending at T."""
    out = []
    for i in members:
        seq = pop._parameters["spike_times"][i]
        times = np.asarray(getattr(seq, "value", seq), dtype=float).reshape(-1)
        steps = nest_steps(times, dt) - 1
        if steps.size and steps.min() < 0:
            raise ConfigError(f"SpikeSourceArray '{pop.label}': spike time {times.min():g} ms lies before the end of "
                              f"the first step ({dt:g} ms); a spike at T is sent in the step ending at T, as in "
                              "pyNN.nest")
        if np.unique(steps).size != steps.size:
            dup = steps[np.flatnonzero(np.diff(np.sort(steps)) == 0)[0]]
            raise ConfigError(f"SpikeSourceArray '{pop.label}': neuron {i} has two spike times in the step ending "
                              f"at {(dup + 1) * dt:g} ms (dt = {dt:g} ms); allowed: one spike per neuron and step")
        out.append(tuple(float(s) * dt for s in np.sort(steps)))
    return tuple(out)


def _resolve(obj):
    """(owner population per element, index in that population) of a Population, view or assembly."""
    if hasattr(obj, "populations"):
        parts = [_resolve(p) for p in obj.populations]
        return [o for owners, _ in parts for o in owners], np.concatenate([i for _, i in parts])
    if hasattr(obj, "grandparent"):
        return [obj.grandparent] * obj.size, np.asarray(obj.index_in_grandparent(np.arange(obj.size)), np.int64)
    return [obj] * obj.size, np.arange(obj.size, dtype=np.int64)


def _owner_arrays(obj, pops_order):
    owners, idx = _resolve(obj)
    ordinal = {id(p): k for k, p in enumerate(pops_order)}
    return np.array([ordinal[id(o)] for o in owners], np.int64), idx


def build_network(state, initial_state):
    """The spikelm Network of the script at ``state.step``, and its Layout.

    ``initial_state``: {PyNN population: {spikelm variable: array}} to start from.
    """
    dt = state.dt
    net = sn.Network(dt=dt, seed=state.seed)
    layout, taken = Layout(), set()
    for pop in state.populations:
        groups, group_of, local = group_population(pop, state, taken)
        layout.groups[pop], layout.group_of[pop], layout.local_of[pop] = groups, group_of, local
        cell, init = pop.celltype, initial_state[pop]
        for g in groups:
            params = dict(g.params)
            if cell.spikelm_model == "spike_times":
                params["times"] = source_times(pop, g.members, dt)
            values = {var: np.asarray(arr, float)[g.members] for var, arr in init.items()}
            net.add_population(g.name, cell.spikelm_model, g.members.size, params=params, init=values)
        if cell.injectable:
            _add_currents(net, state, pop, groups)
    for prj in state.projections:
        _add_projection(net, state, layout, prj)
    return net, layout


def _add_currents(net, state, pop, groups):
    dt, p, cell = state.dt, pop._parameters, pop.celltype
    scale = cell.current_scale(p)
    offset = np.asarray(p.get("i_offset", np.zeros(pop.size)), float) * scale
    sources = [s for s in state.current_sources if not isinstance(s, NoisyCurrentSource)
               and any(q is pop for q, _ in s.targets)]
    for g in groups:
        amp = offset[g.members]
        if np.any(amp != 0):
            net.add_stimulus(sn.ConstantCurrent(g.name, _per_neuron(amp)))
        position = {int(i): k for k, i in enumerate(g.members)}
        changes = {}      # step -> per-neuron amplitude added from then on (relative to before)
        for s in sources:
            mine = [position[i] for q, i in s.targets if q is pop and i in position]
            if not mine:
                continue
            prev = 0.0
            for step, a in sorted(s.steps(dt)):
                delta = np.zeros(g.members.size)
                np.add.at(delta, mine, (a - prev) * scale[g.members[mine]])
                changes[step] = changes.get(step, 0.0) + delta
                prev = a
        if changes:
            times, amps, level = [], [], np.zeros(g.members.size)
            for step in sorted(changes):
                level = level + changes[step]
                times.append(max(step, 0) * dt)
                amps.append(_per_neuron(level))
            net.add_stimulus(sn.CurrentSteps(g.name, tuple(times), tuple(amps)))
        on_noise = [s for s in g.noise if _on(s.window(dt), state.step)]
        for s in on_noise:
            k = float(scale[g.members[0]])
            net.add_stimulus(sn.NoiseCurrent(g.name, std=float(s._params["stdev"]) * k,
                                             mean=float(s._params["mean"]) * k))


def _on(window, step):
    return window[0] <= step < window[1]


def _per_neuron(values):
    """One number when every neuron gets the same (the fast path of the kernels), else a tuple."""
    values = np.asarray(values, float)
    return float(values[0]) if np.all(values == values[0]) else tuple(values.tolist())


def _add_projection(net, state, layout, prj):
    dt = state.dt
    pre, post, params = prj._arrays()
    if not pre.size:
        return
    label = prj.label or "projection"
    if not isinstance(prj.synapse_type, (StaticSynapse, STDPMechanism)):
        raise ConfigError(f"projection '{label}': spikelm cannot simulate {type(prj.synapse_type).__name__}; "
                          "it simulates StaticSynapse and STDPMechanism")
    target = TARGET.get(prj.receptor_type)
    if target is None:
        raise ConfigError(f"projection '{label}': receptor_type {prj.receptor_type!r}; spikelm's synapses are "
                          f"{', '.join(TARGET)}")
    pops = list(layout.groups)
    pre_owner, pre_idx = _owner_arrays(prj.pre, pops)
    post_owner, post_idx = _owner_arrays(prj.post, pops)
    po, pi = pre_owner[pre], pre_idx[pre]
    qo, qi = post_owner[post], post_idx[post]
    scale = np.empty(pre.size)
    steps = np.empty(pre.size, np.int64)
    pre_g, post_g = np.empty(pre.size, np.int64), np.empty(pre.size, np.int64)
    for k, pop in enumerate(pops):
        sel = qo == k
        if sel.any():
            scale[sel] = pop.celltype.weight_scale(pop._parameters, dt)[qi[sel]]
            steps[sel] = pop.celltype.delay_steps(params["delay"][sel], dt)
            post_g[sel] = layout.group_of[pop][qi[sel]]
        sel = po == k
        if sel.any():
            pre_g[sel] = layout.group_of[pop][pi[sel]]
    if steps.min() < 1:
        raise ConfigError(f"projection '{label}': delay {params['delay'].min():g} ms is below one time step "
                          f"({dt:g} ms)")
    plastic = isinstance(prj.synapse_type, STDPMechanism)
    sizes = (len(pops), int(pre_g.max()) + 1, len(pops), int(post_g.max()) + 1)
    codes, which = np.unique(np.ravel_multi_index((po, pre_g, qo, post_g), sizes), return_inverse=True)
    by_pair = np.argsort(which.reshape(-1), kind="stable")
    ends = np.cumsum(np.bincount(which.reshape(-1), minlength=codes.size))
    for code, sel in zip(codes, np.split(by_pair, ends[:-1])):
        key = np.unravel_index(code, sizes)
        gpre = layout.groups[pops[key[0]]][key[1]]
        gpost = layout.groups[pops[key[2]]][key[3]]
        a = layout.local_of[pops[key[0]]][pi[sel]]
        b = layout.local_of[pops[key[2]]][qi[sel]]
        order = sel[np.lexsort((b, a))]
        a = layout.local_of[pops[key[0]]][pi[order]]
        b = layout.local_of[pops[key[2]]][qi[order]]
        name = _identifier(f"{label}_{gpre.name}_{gpost.name}", set(net.projections))
        rule = None
        if plastic:
            rule = stdp_rule(prj.synapse_type, {k: v[order] for k, v in params.items()},
                             float(scale[order[0]]), label, dt)
        net.connect(gpre.name, gpost.name, sn.FromArrays(pre=a, post=b),
                    weight=params["weight"][order] * scale[order], delay=steps[order] * dt, target=target,
                    name=name, plasticity=rule)
        layout.parts.append(Part(name, prj, order, scale[order], plastic))
