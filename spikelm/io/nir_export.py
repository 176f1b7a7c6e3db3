"""spikelm Network -> NIR graph.

- A LIF population becomes a NIR ``LIF`` node (delta synapses: tau_e = tau_i = 0) or a
  ``CubaLIF`` node (the synapses it receives share one time constant, its tau_syn).
- A projection becomes one path per (delay, repeated pair) group of its synapses: a
  ``Linear`` node holding their weights, then a ``Delay`` node of (d - 1) dt where the delay d
  is more than one step (one step is spikelm's minimum: NIR's instantaneous edge).
- A spike source population (``spike_times``, ``poisson``) becomes an ``Input`` node; a
  stimulus becomes an ``Input`` node followed by a ``Scale`` node into its population (a
  current for ConstantCurrent, CurrentSteps, NoiseCurrent; spikes for PoissonInput).
- The chosen populations get ``Output`` nodes.

Parameters are chosen so that a weight keeps its exact value both ways (r = tau / dt for
LIF, r = 1 and w_in = tau_syn / dt for CubaLIF: a NIR weight is then spikelm's jump of V or of
the synaptic current). What NIR has no field for (names, targets, initial state, the data of
inputs, the seed) goes into each node's metadata under "spikelm" (JSON), which spikelm's
import reads back and other tools ignore. What NIR cannot express is refused: every obstacle
of the network in one message, each naming its population, projection or stimulus.
"""
from __future__ import annotations

import json

import numpy as np

from spikelm import __version__
from spikelm.errors import ConfigError
from spikelm.network.stimulus import ConstantCurrent, CurrentSteps, NoiseCurrent, PoissonInput

from .nir_graph import META_KEY
from .nir_params import MS_PER_UNIT, next_down


def to_graph(net, outputs=None, time_unit="s", run=None):
    import nir

    if time_unit not in MS_PER_UNIT:
        raise ConfigError(f"time_unit: must be one of {', '.join(MS_PER_UNIT)}, got {time_unit!r}")
    dt_f = net.dt / MS_PER_UNIT[time_unit]
    ex = _Exporter(net, dt_f, MS_PER_UNIT[time_unit])
    with np.errstate(over="ignore", invalid="ignore"):    # an overflow is refused below, naming the node
        for pop in net.populations.values():
            ex.population(pop)
        for proj in net.projections.values():
            ex.projection(proj)
        for i, stim in enumerate(net.stimuli):
            ex.stimulus(i, stim)
    for name, node in ex.nodes.items():     # a value too large for its unit overflows to inf on the way
        for field, value in vars(node).items():
            if isinstance(value, np.ndarray) and value.dtype.kind == "f" and not np.all(np.isfinite(value)):
                ex.problems.append(f"node '{name}': {field} is not finite after conversion to NIR's units "
                                   "(a time constant or weight too large)")
    if ex.problems:     # every obstacle at once: fixing one at a time would take as many tries
        n = len(ex.problems)
        raise ConfigError(f"{n} obstacle{'s' if n > 1 else ''} to writing it as NIR: "
                          + "; ".join(f"({k}) {p}" for k, p in enumerate(ex.problems, 1))
                          + " (docs/nir.md lists what NIR can express)")
    neurons = [p.name for p in net.populations.values() if not p.model.is_source]
    for name in neurons if outputs is None else outputs:
        if name not in net.populations:
            raise ConfigError(f"outputs: population {name!r} is not defined; populations: {', '.join(net.populations)}")
        out = ex.unique(f"{name}_out")
        ex.nodes[out] = nir.Output(output_type=np.array([net.populations[name].n]))
        ex.edges.append((name, out))
    meta = {"dt": net.dt, "seed": net.seed, "order": list(net.populations), "projections": list(net.projections),
            "record": "all" if outputs is None else list(outputs), "run": dict(run or {}), "time_unit": time_unit,
            "writer": f"spikelm {__version__}"}
    graph = nir.NIRGraph(nodes=ex.nodes, edges=ex.edges, metadata={META_KEY: json.dumps(meta)}, type_check=False)
    graph.check_types()  # every edge joins nodes of matching sizes (a bug here, not a user error)
    return graph


def _meta(**kw):
    return {META_KEY: json.dumps(kw)}


class _Exporter:
    def __init__(self, net, dt_f, ms_per_unit):
        self.net, self.dt_f, self.u = net, dt_f, ms_per_unit
        self.nodes, self.edges, self.kind = {}, [], {}
        self.problems = []

    def unique(self, name):
        while name in self.nodes or name in self.net.populations:
            name += "_"
        return name

    def _refuse(self, what, msg):
        """Note what NIR cannot express; the export goes on to find the others, then refuses them all."""
        self.problems.append(f"{what}: {msg}")

    # -- populations -------------------------------------------------------------------------
    def population(self, pop):
        import nir

        what = f"population '{pop.name}'"
        model = pop.model.name
        before = len(self.problems)
        if pop.plasticity is not None:
            self._refuse(what, "it has a plasticity rule (NIR graphs hold no learning rules)")
        if model in ("spike_times", "poisson"):
            params = ({"times": [list(map(float, t)) for t in pop.params.times]} if model == "spike_times"
                      else {"rate": float(pop.params.rate)})
            self.nodes[pop.name] = nir.Input(input_type=np.array([pop.n]),
                                             metadata=_meta(population=pop.name, model=model, params=params))
            self.kind[pop.name] = "source"
            return
        if model != "lif":
            self._refuse(what, f"model {model} has no NIR node (NIR's neurons are LIF, CubaLIF, IF, LI, CubaLI, I)")
            return
        p = pop.params
        if not p.t_ref < self.net.dt / 2:     # a refractory period of one step or more (any size)
            self._refuse(what, f"t_ref = {p.t_ref} ms: NIR neurons have no refractory period (set t_ref = 0)")
        if p.alpha != 0:
            self._refuse(what, "it has an adaptive threshold (alpha > 0), which NIR neurons have not")
        st = pop.state
        if np.any(st["ref"] != 0) or np.any(st["a"] != 0):
            self._refuse(what, "its state is mid-run (refractory or adapted neurons); export a fresh network")
        tau_syn = self._synapse_tau(pop)
        if tau_syn is None or len(self.problems) > before:
            self.kind[pop.name] = "refused"
            return
        n, dt_f = pop.n, self.dt_f
        tau = np.full(n, p.tau_m / self.u)
        common = dict(r=None, v_leak=np.full(n, p.e_l), v_threshold=np.full(n, next_down(p.v_th)),
                      v_reset=np.full(n, p.v_reset))
        init = {"v": st["v"].tolist()} if np.any(st["v"] != p.e_l) else {}
        for var in ("i_e", "i_i"):
            if np.any(st[var] != 0):
                if tau_syn == 0:
                    self._refuse(what, f"initial {var} is not 0 on a population with delta synapses")
                init[var] = st[var].tolist()
        meta = _meta(population=pop.name, init=init)
        if tau_syn == 0:
            common["r"] = tau / dt_f  # a weight is then the jump of V: r w dt / tau = w
            node = nir.LIF(tau=tau, **common, metadata=meta)
        else:
            ts = np.full(n, tau_syn / self.u)
            common["r"] = np.ones(n)  # with w_in = tau_syn / dt a weight is the jump of the current
            node = nir.CubaLIF(tau_syn=ts, tau_mem=tau, w_in=ts / dt_f, **common, metadata=meta)
        self.nodes[pop.name] = node
        self.kind[pop.name] = "current" if tau_syn else "delta"

    def _synapse_tau(self, pop):
        """The one synaptic time constant of the inputs ``pop`` receives (0: delta synapses)."""
        p = pop.params
        used = {k.target for k in self.net.projections.values() if k.post is pop}
        used |= {s.target for s in self.net.stimuli if isinstance(s, PoissonInput) and s.population == pop.name}
        used |= {"exc"} if np.any(pop.state["i_e"] != 0) else set()
        used |= {"inh"} if np.any(pop.state["i_i"] != 0) else set()
        if not used:  # no synaptic input: keep the population's own kind where a current stimulus allows
            currents = any(s.population == pop.name and not isinstance(s, PoissonInput) for s in self.net.stimuli)
            return p.tau_e if p.tau_e == p.tau_i and not currents else 0.0
        taus = {p.tau_e if t == "exc" else p.tau_i for t in used}
        if len(taus) > 1:
            self._refuse(f"population '{pop.name}'", f"its exc and inh inputs have different synaptic time "
                                                     f"constants (tau_e = {p.tau_e}, tau_i = {p.tau_i} ms); a NIR "
                                                     "neuron has one (CubaLIF's tau_syn): set tau_e = tau_i")
            return None
        return taus.pop()

    # -- projections ---------------------------------------------------------------------
    def projection(self, proj):
        import nir

        what = f"projection '{proj.name}'"
        if proj.plasticity is not None:
            self._refuse(what, "it has a plasticity rule (NIR graphs hold no learning rules)")
            return
        if self.problems:   # the graph will not be written: only look for further obstacles
            return
        pre, post = proj.pre_idx(), proj.post_idx.astype(np.int64)
        # the k-th synapse of a repeated (pre, post) pair goes to layer k: a dense matrix holds one
        key = pre * proj.post.n + post
        order = np.argsort(key, kind="stable")
        ks = key[order]
        first = np.flatnonzero(np.r_[True, ks[1:] != ks[:-1]]) if ks.size else np.zeros(0, np.int64)
        runs = np.repeat(first, np.diff(np.r_[first, ks.size]))
        layer = np.empty(proj.n_syn, dtype=np.int64)
        layer[order] = np.arange(ks.size) - runs
        groups = sorted({(int(a), int(d)) for a, d in zip(layer, proj.delay)}) or [(0, 1)]
        for k, (lay, d) in enumerate(groups):
            sel = (layer == lay) & (proj.delay == d)
            w = np.zeros((proj.post.n, proj.pre.n))
            w[post[sel], pre[sel]] = proj.w[sel]
            base = proj.name if len(groups) == 1 else f"{proj.name}_{k}"
            lin = self.unique(base)
            self.nodes[lin] = nir.Linear(weight=w, metadata=_meta(projection=proj.name, target=proj.target))
            self.edges.append((proj.pre.name, lin))
            last = lin
            if d > 1:
                dl = self.unique(f"{base}_delay")
                self.nodes[dl] = nir.Delay(delay=np.full(proj.post.n, (d - 1) * self.dt_f))
                self.edges.append((lin, dl))
                last = dl
            self.edges.append((last, proj.post.name))

    # -- stimuli -------------------------------------------------------------------------
    def stimulus(self, i, s):
        import nir

        pop = self.net.populations[s.population]
        what = f"stimulus {i} ({type(s).__name__} on '{pop.name}')"
        if pop.name not in self.nodes:      # its population is refused already
            return
        n = pop.n
        if isinstance(s, PoissonInput):
            data = {"kind": "poisson_input", "rate": s.rate, "target": s.target}
            scale = np.full(n, s.weight)  # one input spike per neuron, through its own weight
        else:
            if self.kind[pop.name] != "delta":
                self._refuse(what, "a current injected into V has no NIR form on a CubaLIF node (its inputs all "
                                   "enter the synaptic current)")
                return
            if isinstance(s, ConstantCurrent):
                data = {"kind": "constant_current", "amplitude": _json(s.amplitude)}
            elif isinstance(s, CurrentSteps):
                data = {"kind": "current_steps", "times": list(map(float, s.times)),
                        "amplitudes": [_json(a) for a in s.amplitudes]}
            elif isinstance(s, NoiseCurrent):
                data = {"kind": "noise_current", "mean": s.mean, "std": s.std}
            else:
                self._refuse(what, "unknown stimulus")
                return
            node = self.nodes[pop.name]
            scale = pop.params.r_m / node.r  # NIR drives r s x; spikelm r_m x
        data["index"] = i
        name = self.unique(f"stimulus{i}")
        self.nodes[name] = nir.Input(input_type=np.array([n]), metadata=_meta(stimulus=data))
        sc = self.unique(f"stimulus{i}_scale")
        self.nodes[sc] = nir.Scale(scale=scale)
        self.edges += [(name, sc), (sc, pop.name)]


def _json(a):
    return [float(x) for x in a] if isinstance(a, tuple) else float(a)
