"""NIR graph -> spikelm scenario (the TOML data of docs/scenarios.md), at a chosen dt.

Each neuron node becomes a LIF population (split by parameter set where its neurons differ:
spikelm parameters are per population); each path of weight nodes from a spike source to a
neuron node becomes a projection of explicit synapses; Input nodes become spike sources
(``spike_times``, to be filled with the input's spikes) and Affine biases constant currents;
Output nodes say which populations are recorded. How parameters map is in
:mod:`spikelm.io.nir_params`; how edges are timed:

- ``step-per-edge`` (default): every edge takes one step, spikelm's minimum delay, and a Delay
  node adds its own (rounded to steps). For exponential-current synapses a delay of d steps is
  Brian2/NEST's (d - 1) dt, so an edge without Delay is NIR's instantaneous edge.
- ``same-step``: as the deep-learning libraries run a network, a spike crosses every
  feed-forward edge within the step it was emitted in and a recurrent edge takes one step.
  spikelm reproduces that by running each population ``depth`` steps behind (its distance
  from the inputs): its step t is the library's step t - depth, its biases start at step
  ``depth``. ``NirImport.offsets`` holds each population's depth.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from spikelm.errors import ConfigError, FileFormatError

from .nir_compose import Composer
from .nir_graph import READOUT, SPIKING
from .nir_params import check_options, lif_params, neuron_from_nir, synaptic_bias

TIMINGS = ("step-per-edge", "same-step")
SOURCE_MODELS = ("spike_times", "poisson")
CURRENT_KINDS = ("constant_current", "current_steps", "noise_current")


@dataclass
class Group:
    """Neurons ``idx`` of a neuron node, simulated as population ``pop`` with one parameter set."""

    pop: str
    idx: np.ndarray


def to_scenario(g, dt, discretisation, timing, time_unit):
    """(scenario data, populations fed by Input nodes {name: n}, offsets {population: steps})."""
    check_options(dt, discretisation, time_unit)
    if timing not in TIMINGS:
        raise ConfigError(f"--timing: must be one of {', '.join(TIMINGS)}, got {timing!r}")
    return _Builder(g, dt, discretisation, timing, time_unit).run()


class _Builder:
    def __init__(self, g, dt, discretisation, timing, time_unit):
        self.g, self.dt, self.disc, self.timing, self.unit = g, dt, discretisation, timing, time_unit
        self.names = set()
        self.maps, self.groups, self.local = {}, {}, {}
        self.stim_inputs, self.source_pops = {}, {}
        self.populations, self.projections, self.stimuli, self.bias_stimuli = {}, {}, [], []

    # -- populations ---------------------------------------------------------------------
    def _name(self, want):
        base = re.sub(r"\W", "_", str(want))
        base = base if base.isidentifier() else f"n_{base}"
        name, k = base, 1
        while name in self.names:
            name, k = f"{base}_{k}", k + 1
        self.names.add(name)
        return name

    def _neuron_groups(self, name, node):
        m = neuron_from_nir(node, self.g.where(name), self.dt, self.disc, self.unit)
        keys = list(zip(*(m.params[k] for k in sorted(m.params))))
        order = {}
        for j, key in enumerate(keys):
            order.setdefault(key, []).append(j)
        base = node.meta.get("population", name)
        groups = [Group(self._name(base if len(order) == 1 else f"{base}_{k}"), np.array(ix, dtype=np.int64))
                  for k, ix in enumerate(order.values())]
        self.maps[name], self.groups[name] = m, groups
        local = np.zeros((node.size_out, 2), dtype=np.int64)
        for k, grp in enumerate(groups):
            local[grp.idx] = np.column_stack([np.full(grp.idx.size, k), np.arange(grp.idx.size)])
        self.local[name] = local
        init = node.meta.get("init", {})
        for grp in groups:
            params = lif_params(m.params, grp.idx[0])
            table = {"model": "lif", "n": int(grp.idx.size), "params": params, "init": {}}
            for var, vals in (init.items() if isinstance(init, dict) else ()):
                arr = np.asarray(vals, dtype=np.float64) if isinstance(vals, list) else None
                if var not in ("v", "i_e", "i_i") or arr is None or arr.shape != (node.size_out,) \
                        or not np.all(np.isfinite(arr)):
                    raise FileFormatError(f"{self.g.where(name)}: metadata init.{var} must be a list of "
                                          f"{node.size_out} finite numbers")
                table["init"][var] = arr[grp.idx]
            self.populations[grp.pop] = table

    def _source(self, name, node):
        meta = node.meta
        stim = meta.get("stimulus")
        if isinstance(stim, dict):
            self.stim_inputs[name] = stim
            return
        model = meta.get("model", "spike_times")
        if model not in SOURCE_MODELS:
            raise FileFormatError(f"{self.g.where(name)}: metadata model must be one of {', '.join(SOURCE_MODELS)}")
        params = meta.get("params", {}) if model == "poisson" else {"times": meta.get("params", {}).get(
            "times", [[] for _ in range(node.size_out)])}
        pop = self._name(meta.get("population", name))
        self.source_pops[name] = pop
        self.groups[name] = [Group(pop, np.arange(node.size_out))]
        self.local[name] = np.column_stack([np.zeros(node.size_out, np.int64), np.arange(node.size_out)])
        self.populations[pop] = {"model": model, "n": int(node.size_out), "params": params}

    # -- timing --------------------------------------------------------------------------
    def _depths(self, inputs):
        """Distance of each spike-source and neuron node from the inputs (same-step timing)."""
        nodes = [n for n in self.g.nodes if n in self.groups]
        src = {n: sorted({t.src for t in inputs[n].terms if t.src in self.groups}) for n in inputs}
        state, back = {}, set()
        for root in [n for n in nodes if self.g.nodes[n].kind == "Input"] + nodes:
            if root in state:
                continue
            stack = [(root, iter(self._succ(root, src)))]
            state[root] = 1
            while stack:
                node, it = stack[-1]
                nxt = next(it, None)
                if nxt is None:
                    state[node] = 2
                    stack.pop()
                elif state.get(nxt) == 1:
                    back.add((node, nxt))
                elif nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, iter(self._succ(nxt, src))))
        depth = {n: 0 for n in nodes}
        for _ in range(len(nodes)):
            moved = False
            for n, pres in src.items():
                for p in pres:
                    if (p, n) not in back and depth[p] + 1 > depth[n]:
                        depth[n], moved = depth[p] + 1, True
            if not moved:
                break
        return depth, back

    @staticmethod
    def _succ(node, src):
        return [n for n, pres in src.items() if node in pres]

    # -- the whole graph -----------------------------------------------------------------
    def run(self):
        g = self.g
        order = g.meta.get("order") if isinstance(g.meta.get("order"), list) else []
        rank = {p: i for i, p in enumerate(order)}
        names = sorted(g.nodes, key=lambda n: (rank.get(g.nodes[n].meta.get("population"), len(rank)),))
        for name in names:
            node = g.nodes[name]
            if node.kind == "Input":
                self._source(name, node)
            elif node.kind in SPIKING or node.kind in READOUT:
                self._neuron_groups(name, node)
        comp = Composer(g, self.dt, self.unit)
        targets = [n for n in names if n in self.maps]
        inputs = {n: comp.input_of(n) for n in targets}
        depth, back = self._depths(inputs) if self.timing == "same-step" else ({}, set())
        for n in targets:
            for t in inputs[n].terms:
                if t.src in self.stim_inputs:
                    self._stimulus(n, t)
                else:
                    self._projection(n, t, depth, back)
            self._biases(n, inputs[n].const, depth.get(n, 0))
        self._order_stimuli()
        return self._data(depth)

    def _delay_steps(self, t, dst, depth, back):
        extra = t.pre[None, :] + t.post[:, None]
        if self.timing == "step-per-edge":
            return extra + 1
        step = depth[dst] - depth[t.src] + (1 if (t.src, dst) in back else 0)
        d = extra + step
        if np.any(d[t.M != 0] < 1):
            raise FileFormatError(f"{self.g.source}: edge path {' -> '.join([t.src, *t.path, dst])}: feeds back to a "
                                  f"population {depth[t.src] - depth[dst]} layers up; with --timing same-step only "
                                  f"recurrence within a layer can be reproduced (use --timing step-per-edge)")
        return d

    def _projection(self, dst, t, depth, back):
        m = self.maps[dst]
        delays = self._delay_steps(t, dst, depth, back)
        post, pre = np.nonzero(t.M.T)[::-1]  # row-major over pre: synapses sorted by pre, then post
        meta = {}
        for n in t.path:
            meta.update({k: v for k, v in self.g.nodes[n].meta.items() if k in ("projection", "target")})
        target = meta.get("target", "exc")
        if target not in ("exc", "inh"):
            raise FileFormatError(f"{self.g.source}: path {' -> '.join([t.src, *t.path, dst])}: metadata target "
                                  f"must be exc or inh")
        w = t.M[post, pre] * m.gain[post]
        d = delays[post, pre]
        if np.any(d > 32767):
            raise FileFormatError(f"{self.g.source}: path {' -> '.join([t.src, *t.path, dst])}: a delay of more "
                                  f"than 32767 steps")
        sl, dl = self.local[t.src], self.local[dst]
        weights = [n for n in t.path if self.g.nodes[n].kind in ("Affine", "Linear")]
        base = meta.get("projection") or (weights or t.path or [f"{t.src}_to_{dst}"])[-1]
        pairs = sorted({(a, b) for a in range(len(self.groups[t.src])) for b in range(len(self.groups[dst]))})
        for a, b in pairs:
            keep = (sl[pre, 0] == a) & (dl[post, 0] == b)
            if not keep.any() and "projection" not in meta:
                continue
            key = (base if len(pairs) == 1 else f"{base}_{a}_{b}", self.groups[t.src][a].pop,
                   self.groups[dst][b].pop, target)
            parts = self.projections.setdefault(key, [])
            parts.append((sl[pre[keep], 1], dl[post[keep], 1], w[keep], d[keep]))

    def _stimulus(self, dst, t):
        """A current or Poisson stimulus written by spikelm's export (an Input node with its data)."""
        stim, m = self.stim_inputs[t.src], self.maps[dst]
        kind, where = stim.get("kind"), self.g.where(t.src)
        scale = t.M.diagonal() if t.M.shape[0] == t.M.shape[1] and not np.any(t.M - np.diag(t.M.diagonal())) else None
        if kind in CURRENT_KINDS and m.synaptic:
            raise FileFormatError(f"{where}: a current input into the CubaLIF node '{dst}' would enter its synaptic "
                                  f"current, not V as a spikelm stimulus does")
        for grp in self.groups[dst]:
            ix = grp.idx
            if kind == "constant_current":
                amp = t.M @ _per_input(stim["amplitude"], t.M.shape[1], f"{where}: metadata stimulus.amplitude")
                self.stimuli.append((stim.get("index", 0), {"kind": kind, "population": grp.pop,
                                                            "amplitude": _vec(amp[ix] * m.current_gain[ix])}))
            elif kind == "current_steps":
                amps = [_vec((t.M @ _per_input(a, t.M.shape[1], f"{where}: metadata stimulus.amplitudes[{k}]"))[ix]
                             * m.current_gain[ix]) for k, a in enumerate(stim["amplitudes"])]
                self.stimuli.append((stim.get("index", 0), {"kind": kind, "population": grp.pop,
                                                            "times": list(stim["times"]), "amplitudes": amps}))
            elif kind in ("noise_current", "poisson_input"):
                gain = (m.current_gain if kind == "noise_current" else m.gain)[ix] * (scale[ix] if scale is not None
                                                                                      else np.nan)
                # noise is drawn per neuron and scaled: a negative gain would flip the drawn values
                if scale is None or np.unique(gain).size != 1 or (kind == "noise_current" and not gain[0] > 0):
                    raise FileFormatError(f"{where}: a {kind} reaches '{dst}' with different gains per neuron (or a "
                                          f"negative noise gain); spikelm's {kind} has one for the whole population")
                c = float(gain[0])
                s = ({"kind": kind, "population": grp.pop, "mean": stim["mean"] * c, "std": stim["std"] * c}
                     if kind == "noise_current" else
                     {"kind": kind, "population": grp.pop, "rate": stim["rate"], "weight": c,
                      "target": stim.get("target", "exc")})
                self.stimuli.append((stim.get("index", 0), s))
            else:
                raise FileFormatError(f"{where}: metadata stimulus kind {kind!r} is not one spikelm writes")

    def _biases(self, name, const, start):
        if not np.any(const):
            return
        m = self.maps[name]
        for grp in self.groups[name]:
            ix = grp.idx
            if m.synaptic:
                pairs = [synaptic_bias(m, float(const[j]), j, self.dt, self.disc, start) for j in ix]
                if any(p is None for p in pairs):
                    raise FileFormatError(f"{self.g.where(name)}: its bias enters the synaptic current and would have "
                                          f"to start at step {start}; spikelm can start such a bias at step 0 "
                                          f"(exact) or 0-1 (euler) only")
                amp = np.array([p[0] for p in pairs])
                init = self.populations[grp.pop]["init"]
                init["i_e"] = init.get("i_e", np.zeros(ix.size)) + np.array([p[1] for p in pairs])
            else:
                amp = const[ix] * m.current_gain[ix]
            # a synaptic bias is already timed by its initial current: its constant part runs from step 0
            s = ({"kind": "constant_current", "population": grp.pop, "amplitude": _vec(amp)}
                 if start == 0 or m.synaptic else
                 {"kind": "current_steps", "population": grp.pop, "times": [start * self.dt],
                  "amplitudes": [_vec(amp)]})
            self.bias_stimuli.append(s)

    def _order_stimuli(self):
        self.stimuli = [s for _, s in sorted(self.stimuli, key=lambda x: x[0])] + self.bias_stimuli

    def _data(self, depth):
        g = self.g
        pops = {}
        for name, table in self.populations.items():
            if "init" in table:
                table["init"] = {k: _vec(v) for k, v in table["init"].items()}
                if not table["init"]:
                    del table["init"]
            pops[name] = table
        projs = {}
        rank = {p: i for i, p in enumerate(g.meta.get("projections", []) if isinstance(g.meta.get("projections"),
                                                                                     list) else [])}
        for (name, pre, post, target), parts in sorted(self.projections.items(), key=lambda kv: rank.get(kv[0][0],
                                                                                                      len(rank))):
            a = np.concatenate([p[0] for p in parts]).astype(np.int64)
            b = np.concatenate([p[1] for p in parts]).astype(np.int64)
            w = np.concatenate([p[2] for p in parts])
            d = np.concatenate([p[3] for p in parts])
            o = np.lexsort((b, a))  # (pre, post), repeats by layer: the order a projection keeps
            projs[self._name(name)] = {
                "pre": pre, "post": post, "connect": {"rule": "arrays", "pre": a[o].tolist(), "post": b[o].tolist()},
                "weight": w[o].tolist(), "delay": [round(x, 12) for x in (d[o] * self.dt).tolist()],
                "target": target}
        spikes, state = [], []
        for name, node in g.nodes.items():
            if node.kind != "Output":
                continue
            src = g.preds(name)[0]
            while g.nodes[src].kind == "Pass" and len(g.preds(src)) == 1:
                src = g.preds(src)[0]
            if src not in self.groups:
                raise FileFormatError(f"{g.where(name)}: reads '{src}' ({g.nodes[src].kind}); spikelm records "
                                      f"populations, so an Output must follow a neuron or Input node")
            for grp in self.groups[src]:
                if src in self.maps and self.maps[src].readout:
                    state.append({"population": grp.pop, "variables": ["v"], "every": self.dt})
                elif grp.pop not in spikes:
                    spikes.append(grp.pop)
        offsets = {grp.pop: int(depth.get(n, 0)) for n, gs in self.groups.items() for grp in gs}
        data = {"description": f"imported from the NIR graph {g.source} at dt = {self.dt} ms "
                               f"({self.disc} discretisation, {self.timing} timing, file time unit {self.unit})",
                "network": {"dt": float(self.dt), "seed": int(g.meta.get("seed", 0))},
                "populations": pops}
        if projs:
            data["projections"] = projs
        if self.stimuli:
            data["stimuli"] = self.stimuli
        run = g.meta.get("run")
        if isinstance(run, dict) and run:
            data["run"] = {k: v for k, v in run.items() if k in ("duration", "steps", "backend")}
        # spikelm's own export says when every population (spike sources too) was recorded
        data["record"] = {"spikes": "all" if g.meta.get("record") == "all" or not spikes else spikes}
        if state:
            data["record"]["state"] = state
        inputs = {p: self.populations[p]["n"] for n, p in self.source_pops.items() if g.nodes[n].kind == "Input"
                  and self.populations[p]["model"] == "spike_times" and "population" not in g.nodes[n].meta}
        return data, inputs, offsets


def _per_input(value, n, where):
    """A stimulus amplitude (one number, or one per element of its Input node) as ``n`` floats."""
    a = np.asarray(value, dtype=np.float64)
    if a.ndim > 1 or (a.ndim == 1 and a.size != n):
        raise FileFormatError(f"{where}: {a.size} values for an Input of {n}; expected one number or {n}")
    return np.broadcast_to(a, (n,))


def _vec(a):
    """A per-neuron list, or one number when every neuron has the same."""
    a = np.asarray(a, dtype=np.float64).ravel()
    return float(a[0]) if a.size and np.all(a == a[0]) else a.tolist()
