"""The learned state of a converted LM: neuron parameters, master weights, traces, and their packing.

One :class:`LearnState` is shared by every runner that learns on a model (the NumPy reference
and the compiled loop read and write the same arrays), so learning goes on across texts,
windows and backends, and a checkpoint holds all of it.

**Weights: float masters, integer rows re-derived.** Each plastic projection keeps a float64
master copy of its weights in integer units (one unit = one step of the row's quantizer,
``s_w[c]`` in the float model); the executors read the integer rows, and every master change
re-derives its integer by the converter's rounding (``clip(floor(w + 1/2), -q, q)``). Why:
the updates of eqs. 11 and 15 are small fractions of a unit, which integer weights would
round away (or need a second accumulator per synapse, the same memory); eq. 16 shifts a row
by a real amount, which only a real-valued row can keep at C_i exactly; and at zero rates
the integer rows are the converted ones bit for bit, so the run is the exact one. Cost:
8 bytes per plastic synapse plus the integer copy, one rounding per update; both are counted
(``learn_ops``: master updates, ``weight_flips``: integer weights that changed).

The compiled loop reads the same arrays by name as a
:class:`~spikelm.lm.bundles.LearnBundle` (``neur``: neuron parameters and per-token scratch;
``plast``: rule tables, master weights, traces; :meth:`LearnState.bundle`).

N is the number of spiking neurons of one position: a neuron is a channel, shared by every
position, as its weights are.
"""

from __future__ import annotations

import math

import numpy as np

from spikelm.errors import CheckpointMismatchError, ConfigError, FileFormatError
from spikelm.io.stored import stored_array, stored_int
from spikelm.lm.bundles import LearnBundle, LearnNeurons, LearnRules
from spikelm.lm.learn import kernels as K
from spikelm.lm.learn.attach import Attached, weight_bound
from spikelm.lm.learn.config import STDP, BrainGPTHomeostasis, GatedBrainGPTSTDP, TargetSpikes
from spikelm.lm.learn.export import check_rounding
from spikelm.lm.layout import Layout, flat_weights
from spikelm.plasticity.interface import HF, HI, H_KIND, KIND_BRAINGPT_HOMEO, PF, decay_table, table_length

#: what a checkpoint keeps besides the plastic integer rows (tables and rule columns are rebuilt)
MUTABLE = ("unit", "theta_base", "alpha", "r", "psp", "ppst", "ppen", "wm", "xpre", "tpre", "xpost", "tpost",
           "crow", "mark", "sbar", "vbar", "lcnt", "uth", "rwm", "rb")
#: the readout rule's part of MUTABLE (its master rows, its learned bias)
READOUT_STATE = ("rwm", "rb")


def empty_bundle() -> LearnBundle:
    """A learning bundle of the right types and no content (for the loop compiled without LEARN)."""
    i64, f64 = np.zeros(1, np.int64), np.zeros(1)
    neur = LearnNeurons(lkind=i64, unit=i64, theta_base=f64, alpha=f64, r=f64, vmem=f64, xin=f64, tstart=i64, nspk=i64,
                        active=np.zeros(1, np.uint8), psp=i64, ppst=i64, ppen=i64)
    plast = LearnRules(pr_i=np.zeros((0, K.PI_LM), np.int64), pr_f=np.zeros((0, PF)), wm=f64, xpre=f64, tpre=i64,
                       xpost=f64, tpost=i64, crow=f64, mark=np.zeros(1, np.uint8), etab=f64,
                       hr_i=np.zeros((0, HI), np.int64), hr_f=np.zeros((0, HF)), sbar=f64, vbar=f64,
                       lcnt=np.zeros(2, np.int64))
    return LearnBundle(neur, plast)


class LearnState:
    """Neuron parameters, rules and learned state of one model (see the module docstring).

    Built from :func:`spikelm.lm.learn.attach.attach`'s result; ``graph`` is the graph runners
    execute (the file's neuron choices applied).
    """

    def __init__(self, attached: Attached):
        g = self.graph = attached.graph
        self.attached = attached
        lay = self.layout = Layout.of(g)
        P, N = len(g.pops), lay.n_spiking
        self.W, self.woff = flat_weights(g)
        self.clock = 0
        a = self.a = {}
        a["lkind"] = np.full(P, K.PLAIN, np.int64)
        a["unit"] = np.ones(N, np.int64)
        for name in ("theta_base", "alpha", "r", "vmem", "xin", "sbar", "vbar"):
            a[name] = np.zeros(N)
        for name in ("tstart", "ppst", "ppen"):
            a[name] = np.zeros(P, np.int64)
        a["nspk"] = np.zeros(N, np.int64)
        a["psp"] = np.zeros(N, np.int64)
        a["active"] = np.zeros(P, np.uint8)
        a["lcnt"] = np.zeros(2, np.int64)
        units = {p for p, _, rule in attached.populations if isinstance(rule, TargetSpikes)}
        for p, pop in enumerate(g.pops):
            seg = lay.seg(p) if pop.spiking else None
            if pop.neuron == "eiif_exact":
                a["lkind"][p] = K.EIIF
                for name, v in zip(("theta_base", "alpha", "r"), pop.eiif):
                    a[name][seg] = v
            elif pop.unit is not None or p in units:
                a["lkind"][p] = K.UNITS
                if pop.unit is not None:
                    a["unit"][seg] = pop.unit
        a["uth"] = a["unit"].astype(np.float64)
        self._pack_projections(attached.projections)
        self._pack_populations(attached.populations)
        self._pack_readout(attached.readout)
        plastic = [k for k, _, _ in attached.projections + attached.readout]
        self.w0 = {k: self.W[self.woff[k]: self.woff[k] + g.projections[k].weights.size].copy() for k in plastic}
        self.wm0 = a["wm"].copy()
        self.bounds = {k: weight_bound(g, k) for k in plastic}
        self.tokens_on = True  # the per-token rules (Learning.set_enabled switches all rules)
        #: (rule row, rule) of the rules the readout's error gates, token by token
        self.gated = [(r, rule) for r, (_, _, rule) in enumerate(attached.projections)
                      if isinstance(rule, GatedBrainGPTSTDP)]

    # ------------------------------------------------------------------ packing

    def _pack_projections(self, rules):
        g, a = self.graph, self.a
        ri, rf, wm, tabs = [], [], [], []
        nx = ny = nm = ne = 0
        for k, _, rule in rules:
            pr = g.projections[k]
            npre, npost = pr.weights.shape
            qw = weight_bound(g, k)
            stdp = isinstance(rule, STDP)
            L = table_length(rule.tau_plus, rule.tau_minus, 1.0)  # time in steps: dt = 1
            tp, tm = decay_table(rule.tau_plus, 1.0, L), decay_table(rule.tau_minus, 1.0, L)
            col = np.zeros(K.PI_LM, np.int64)
            col[[K.P_KIND, K.P_PRE_POP, K.P_POST_POP, K.P_WOFF, K.P_SYN, K.P_NPRE, K.P_NPOST, K.P_XPRE, K.P_POST]] = \
                [K.KIND_STDP if stdp else K.KIND_BRAINGPT, pr.pre, pr.post, self.woff[k], nm, npre, npost, nx, ny]
            col[K.P_PAIR] = rule.pairing == "nearest"
            col[K.P_MULT] = stdp and rule.weight_dependence == "multiplicative"
            col[K.P_NORM] = (not stdp) and rule.normalize
            col[K.P_ETAB], col[K.P_ELEN], col[K.P_QW], col[K.P_ON] = ne, L, qw, rule.enabled
            flt = np.zeros(PF)
            flt[[K.F_AP, K.F_AM]] = rule.a_plus, rule.a_minus
            flt[[K.F_KP, K.F_KM]] = 1.0 / rule.tau_plus, 1.0 / rule.tau_minus  # the engine's dt / tau, dt = 1
            flt[K.F_WMIN], flt[K.F_WMAX] = (max(rule.w_min, -qw), min(rule.w_max, qw)) if stdp else (-np.inf, np.inf)
            flt[K.F_ETA] = 0.0 if stdp else rule.eta_w
            w = pr.weights.astype(np.float64)
            saved = g.meta.get("masters", {}).get(k)  # a learned model folder's masters go on learning
            if saved is not None and saved.shape == w.shape:
                w = saved.copy()
            if not stdp and rule.row_sum is not None:  # shift every row (column) onto C at the start
                w = w - (np.cumsum(w, axis=0)[-1] - rule.row_sum) / npre
                seg = slice(self.woff[k], self.woff[k] + w.size)
                self.W[seg] = np.clip(np.floor(w + 0.5), -qw, qw).astype(self.W.dtype).reshape(-1)
            crow = np.full(npost, float(rule.row_sum)) if not stdp and rule.row_sum is not None else \
                np.cumsum(w, axis=0)[-1] if npre else np.zeros(npost)
            ri.append(col)
            rf.append(flt)
            wm.append(w.reshape(-1))
            tabs += [tp, tm]
            a.setdefault("_crow", []).append(crow)
            nx += npre
            ny += npost
            nm += w.size
            ne += 2 * (L + 1)
        a["pr_i"] = np.array(ri, np.int64).reshape(-1, K.PI_LM)
        a["pr_f"] = np.array(rf, np.float64).reshape(-1, PF)
        a["wm"] = np.concatenate(wm) if wm else np.zeros(1)
        a["etab"] = np.concatenate(tabs) if tabs else np.zeros(1)
        a["crow"] = np.concatenate(a.pop("_crow")) if ri else np.zeros(1)
        a["xpre"], a["tpre"] = np.zeros(max(nx, 1)), np.full(max(nx, 1), -1, np.int64)
        a["xpost"], a["tpost"] = np.zeros(max(ny, 1)), np.full(max(ny, 1), -1, np.int64)
        a["mark"] = np.zeros(max(ny, 1), np.uint8)

    def _pack_populations(self, rules):
        hi, hf = [], []
        self.token_rules = []
        for p, _, rule in rules:
            if isinstance(rule, TargetSpikes):
                self.token_rules.append((p, rule))
                continue
            assert isinstance(rule, BrainGPTHomeostasis)
            e = math.exp(-1.0 / rule.tau_avg)  # tau_avg in steps
            f = np.zeros(HF)
            f[[K.G_TARGET, K.G_ETA, K.G_DECAY, K.G_GAIN]] = rule.s_target, rule.eta_theta, e, 1.0 - e
            f[[K.G_THMIN, K.G_THMAX, K.G_ETA_A, K.G_VT, K.G_ETA_R, K.G_VREST]] = \
                rule.theta_min, rule.theta_max, rule.eta_alpha, rule.v_target, rule.eta_r, rule.v_rest
            f[[K.G_AMIN, K.G_AMAX, K.G_RMIN, K.G_RMAX]] = rule.alpha_min, rule.alpha_max, rule.r_min, rule.r_max
            row = np.zeros(HI, np.int64)
            row[[H_KIND, K.H_POP, K.H_ON]] = KIND_BRAINGPT_HOMEO, p, int(rule.enabled)
            hi.append(row)
            hf.append(f)
        self.a["hr_i"] = np.array(hi, np.int64).reshape(-1, HI)
        self.a["hr_f"] = np.array(hf, np.float64).reshape(-1, HF)

    def _pack_readout(self, rules):
        """The readout rule's tables, masters (starting at the integer weights, or a learned
        folder's masters) and learned bias (from the graph's: a learned folder's is there);
        ``ro_i[R_ON] = 0`` without one. Decay pulls toward the graph's rows and bias."""
        g, a = self.graph, self.a
        a["ro_i"], a["ro_f"] = np.zeros(K.RI, np.int64), np.zeros(K.RF)
        head = g.pops[g.readout].params
        self.b0 = np.array(np.broadcast_to(np.asarray(head.bias, np.float64), (g.vocab_size,)))
        self.scale = np.ascontiguousarray(np.broadcast_to(np.asarray(head.scale, np.float64), (g.vocab_size,)))
        a["rb"] = self.b0.copy()
        a["rwm"] = np.zeros(1)
        self.readout_rule = None
        if not rules:
            self.rw0, self.ro_seg = np.zeros(1, np.int8), slice(0, 0)
            return
        (k, where, rule), = rules
        into = [j for j, pr in enumerate(g.projections) if pr.post == g.readout]
        if len(into) != 1:
            raise ConfigError(f"{where}: rule 'readout_error' needs one projection into the readout, "
                              f"this model has {len(into)}")
        pr = g.projections[k]
        npre, npost = pr.weights.shape
        self.readout_rule, self.readout_k = rule, k
        self.rw0 = pr.weights.reshape(-1)  # the converted rows (the graph's, never written)
        self.ro_seg = self.layout.seg(pr.pre)
        a["ro_i"][[K.R_ON, K.R_WOFF, K.R_NPRE, K.R_NPOST, K.R_QW]] = \
            int(rule.enabled), self.woff[k], npre, npost, weight_bound(g, k)
        a["ro_f"][[K.R_ETA, K.R_ETA_B, K.R_THR, K.R_DECAY]] = rule.eta, rule.eta_bias, rule.threshold, rule.decay
        saved = g.meta.get("masters", {}).get(k)
        w = saved if saved is not None and saved.shape == pr.weights.shape else pr.weights
        a["rwm"] = np.array(w, np.float64).reshape(-1)

    def before_token(self, counts, acc, y: int, learn):
        """Before token ``y``: the last token's readout error, its spike ``counts`` (a row of
        every spiking neuron) and readout ``acc`` (None at a sequence's first token), opens or
        closes the gated rules (:class:`GatedBrainGPTSTDP`) and drives the readout rule."""
        if self.gated:
            nll = None
            if acc is not None:
                z = np.asarray(acc, dtype=np.float64) * self.scale + self.a["rb"]  # the logits it gave
                m = z.max()
                nll = m + np.log(np.exp(z - m).sum()) - z[y]
            for r, rule in self.gated:
                self.a["pr_i"][r, K.P_ON] = int(self.tokens_on and rule.enabled and nll is not None
                                                and nll >= rule.surprise)
        if acc is not None:
            self.readout_step(counts[self.ro_seg], acc, y, learn)

    def readout_step(self, pre, acc, y: int, learn):
        """The readout rule after a token whose readout's presynaptic codes were ``pre`` and
        accumulators ``acc``, the next token being ``y``; ``learn``: its kernel (the compiled
        :func:`~spikelm.lm.learn.kernels.readout_learn` or its reference twin)."""
        a = self.a
        if self.readout_rule is None or not a["ro_i"][K.R_ON]:
            return
        learn(pre, acc, self.scale, a["rb"], self.b0, int(y), a["rwm"], self.rw0, self.W,
              a["ro_i"], a["ro_f"], a["lcnt"])

    def logits(self, acc) -> np.ndarray | None:
        """Logits of readout accumulators with the learned bias (None without a readout rule:
        the graph's bias)."""
        if self.readout_rule is None:
            return None
        return np.asarray(acc, dtype=np.float64) * self.scale + self.a["rb"]

    def bundle(self) -> LearnBundle:
        """The learning bundle of the compiled loop: the arrays themselves, not copies."""
        a = self.a
        return LearnBundle(LearnNeurons(**{k: a[k] for k in LearnNeurons._fields}),
                           LearnRules(**{k: a[k] for k in LearnRules._fields}))

    def weights(self, k: int) -> np.ndarray:
        """Projection k's integer rows as the executors read them (a view into the flat array)."""
        pr = self.graph.projections[k]
        return self.W[self.woff[k]: self.woff[k] + pr.weights.size].reshape(pr.weights.shape)

    def masters(self, r: int) -> np.ndarray:
        """Rule r's float master weights [n_pre, n_post] (a view)."""
        ri = self.a["pr_i"][r]
        return self.a["wm"][ri[K.P_SYN]: ri[K.P_SYN] + ri[K.P_NPRE] * ri[K.P_NPOST]].reshape(
            ri[K.P_NPRE], ri[K.P_NPOST])

    # ------------------------------------------------------------------ per token

    def begin_token(self):
        self.a["nspk"][:] = 0

    def end_token(self, clock: int):
        """After a token: the target-spikes rule (units from spikes per token) and the clock."""
        a, lay = self.a, self.layout
        for p, rule in self.token_rules:
            if not (rule.enabled and self.tokens_on):
                continue
            seg = lay.seg(p)
            step = np.exp2(rule.eta * (a["nspk"][seg] - rule.target) / rule.target)
            th = np.minimum(np.maximum(a["uth"][seg] * step, rule.theta_min), rule.theta_max)
            a["uth"][seg] = th
            a["unit"][seg] = np.floor(th + 0.5).astype(np.int64)
        self.clock = int(clock)

    def stats(self) -> dict:
        """Weight and threshold change statistics and the learning cost so far (plain numbers)."""
        a = self.a
        out = {"learn_ops": int(a["lcnt"][0]), "weight_flips": int(a["lcnt"][1])}
        if len(self.attached.projections):
            dw = np.abs(a["wm"] - self.wm0)
            out.update(dw_mean=float(dw.mean()), dw_max=float(dw.max()),
                       w_changed=int(sum((self.weights(k).reshape(-1) != w0).sum() for k, w0 in self.w0.items())))
            dev, idev, sat = 0.0, 0, 0
            for r, (k, _, _rule) in enumerate(self.attached.projections):
                wm = self.masters(r)
                ri = a["pr_i"][r]
                crow = a["crow"][ri[K.P_POST]: ri[K.P_POST] + ri[K.P_NPOST]]
                sat += int((np.abs(wm) > ri[K.P_QW] + 0.5).sum())
                if ri[K.P_NORM]:
                    dev = max(dev, float((np.abs(wm.sum(0) - crow) / np.maximum(1.0, np.abs(crow))).max()))
                    idev = max(idev, int(np.abs(self.weights(k).astype(np.int64).sum(0) - np.rint(crow)).max()))
            out.update(w_saturated=sat, rowsum_dev=dev, int_rowsum_dev=idev)
        if self.readout_rule is not None:
            r0 = self.rw0
            out.update(readout_dw_mean=float(np.abs(a["rwm"] - r0).mean()),
                       readout_w_changed=int((self.weights(self.readout_k).reshape(-1) != r0).sum()),
                       readout_db_max=float(np.abs(a["rb"] - self.b0).max()))
        kinds = a["lkind"]
        lay = self.layout
        for kind, names in ((K.UNITS, ("unit",)), (K.EIIF, ("theta_base", "alpha", "r"))):
            segs = [lay.seg(p) for p in np.flatnonzero(kinds == kind)]
            if segs:
                for name in names:
                    v = np.concatenate([a[name][s] for s in segs]).astype(np.float64)
                    out[f"{name}_mean"] = float(v.mean())
                    out[f"{name}_max"] = float(v.max())
        return out

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict:
        """Copies of everything that changes: neuron parameters, masters, traces, plastic rows, clock."""
        d = {k: self.a[k].copy() for k in MUTABLE}
        for k in self.w0:
            d[f"w{k}"] = self.weights(k).copy()
        d["clock"] = np.array([self.clock], np.int64)
        return d

    def load_state_dict(self, d: dict, source: str = "checkpoint"):
        """Restore :meth:`state_dict` in place; a missing array, another shape, or a value outside
        what a run can produce (:meth:`domains`) is refused, and nothing is changed then."""
        want = {k: self.a[k] for k in MUTABLE}
        if self.readout_rule is None:  # checkpoints written before the readout rule have none of its state
            for k in READOUT_STATE:
                if k not in d:
                    del want[k]
        want.update({f"w{k}": self.weights(k) for k in self.w0})
        for k, arr in want.items():
            got = d.get(k)
            if got is None or np.shape(got) != arr.shape:
                raise CheckpointMismatchError(f"{source}: learned state {k!r} is {np.shape(got) if got is not None else 'missing'}, "
                                              f"expected {arr.shape}")
        raw = np.asarray(d.get("clock", np.zeros(0)))
        clock = stored_int(raw.reshape(-1)[0] if raw.size == 1 else raw, f"{source}: learned/clock")
        checked = {k: stored_array(d[k], f"{source}: learned/{k}", kind, want[k].shape, lo, hi)
                   for k, (kind, lo, hi) in self.domains(clock).items() if k in want}
        self._check_arrivals(checked, source)
        for r, (k, _, _) in enumerate(self.attached.projections):
            ri = self.a["pr_i"][r]
            wm = checked["wm"][ri[K.P_SYN]: ri[K.P_SYN] + ri[K.P_NPRE] * ri[K.P_NPOST]]
            check_rounding(checked[f"w{k}"], wm, self.bounds[k], f"{source}: learned/w{k}")
        for k, arr in want.items():
            arr[...] = checked[k]
        self.clock = clock

    def domains(self, clock: int) -> dict:
        """What each array of :meth:`state_dict` may hold, ``{name: (kind, lo, hi)}`` (None: no
        bound): whatever a run produces, and nothing an executor could index out of bounds with."""
        N = self.layout.n_spiking
        dom = {"unit": ("int", 1, 2**31), "uth": ("float", 1.0, None),  # target spikes: theta_min >= 1
               "theta_base": ("float", 0.0, None), "alpha": ("float", 0.0, None), "r": ("float", 0.0, 1.0),
               "psp": ("int", 0, max(N - 1, 0)), "ppst": ("int", 0, N), "ppen": ("int", 0, N),
               "wm": ("float", None, None), "crow": ("float", None, None), "xpre": ("float", 0.0, None),
               "xpost": ("float", 0.0, None), "tpre": ("int", -1, clock), "tpost": ("int", -1, clock),
               "mark": ("int", 0, 1), "sbar": ("float", 0.0, None), "vbar": ("float", None, None),
               "lcnt": ("int", 0, None), "rwm": ("float", None, None), "rb": ("float", None, None)}
        dom.update({f"w{k}": ("int", -self.bounds[k], self.bounds[k]) for k in self.w0})
        return dom

    def _check_arrivals(self, d: dict, source: str):
        """The last step's spikes (``psp[ppst[p]:ppen[p]]``, arriving next step) lie in their populations."""
        off = self.layout.offsets
        for p, (lo, hi) in enumerate(zip(d["ppst"], d["ppen"])):
            if hi == lo == 0:
                continue
            ids = d["psp"][lo:hi]
            if lo > hi or p >= self.graph.readout or ids.size and not (off[p] <= ids.min() and ids.max() < off[p + 1]):
                raise FileFormatError(f"{source}: learned/psp: the spikes of {self.graph.pops[p].name} "
                                      f"(entries {lo}..{hi}) are not neurons of that population")
