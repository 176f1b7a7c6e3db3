"""Glue between the simulator and the rules: packing, state (checkpoints, on/off) and the NumPy learn phase.

Packed layout (``PlasticityState.arrays``, the tuple the compiled loop receives; every
field below is a flat typed array, offsets into the shared ones live in the rule tables):

- ``pr_i[R, PI]`` / ``pr_f[R, PF]``: one row per projection rule (ints / floats, columns below).
- ``hr_i[H, HI]`` / ``hr_f[H, HF]``: one row per population rule.
- ``ring, ring_n, ring_t, ring_cur``: per projection rule, the pre spikes of the last
  max_delay + 1 steps (local pre indices), their count per slot, the step each slot holds,
  and for each spike the next delay group it has still to reach.
- *Delay groups*: the synapses of one pre neuron with one delay; all their pre spikes arrive
  together, so they share one pre trace. ``pre_gptr`` (groups of each pre neuron, by
  increasing delay), ``grp_ptr`` (each group's synapses in ``dsyn`` order), ``grp_delay``;
  ``dsyn, dpost``: local synapse id and post neuron, in group order.
- ``csc_ptr, csc_syn, cgrp``: the reverse (CSC) index: incoming synapses of each post
  neuron, and the delay group of each.
- ``etab``: per rule, exp(-n dt / tau_plus) and exp(-n dt / tau_minus) for n = 0..L (the
  trace decays of whole numbers of steps; beyond L the exponential is computed).
- ``xgrp, tgrp``: per delay group, the pre trace at its last arrival (all-to-all pairing
  only; nearest: 1) and the step of that arrival (-1: none yet).
- ``sd``: per plastic synapse in reverse-index order (rule's synapse offset + CSC position,
  so a post spike writes it contiguously): the potentiation part of Izhikevich's
  derivative. ``sdd``: the depression part, in group order (the arrivals of a pre spike
  write it contiguously). The derivative of a synapse is sd + sdd; both decay by sd_decay
  at each weight update.
- ``xpost, tpost, crow, mark``: per post neuron of each projection rule: post trace value,
  step of the last post spike (-1: none), target row sum C_i, "row touched" flag.
- ``rate, h, vbar``: per neuron of each population rule: rate estimate, threshold offset,
  average membrane potential.

Traces are stored lazily (value at the last event plus that event's step) and decayed
with ``exp(-(t - t_last) dt / tau)`` when read, so a step with no event touches nothing
and a long run accumulates no rounding from per-step decays.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from spikelm.errors import CheckpointMismatchError, ConfigError

from .rules import STDP, BrainGPTHomeostasis, BrainGPTSTDP, Homeostasis, check_applies

# projection rule table columns (ints)
P_KIND, P_PROJ, P_ON, P_PAIR, P_MULT, P_MODE, P_EVERY, P_MAXD, P_RING, P_RINGN, P_NPRE, P_NPOST, P_SYN, \
    P_CSCP, P_CSC, P_PGPTR, P_DSYN, P_POST, P_NORM, P_PRELO, P_POSTLO, P_NSYN, P_ETAB, P_ELEN, P_GPTR, P_GRP \
    = range(26)
PI = 26
# projection rule table columns (floats)
F_AP, F_AM, F_KP, F_KM, F_WMIN, F_WMAX, F_ETA, F_SDDECAY, F_SDBIAS = range(9)
PF = 9
# population rule table columns
H_KIND, H_POP, H_ON, H_LO, H_HI, H_OFF, H_ROW = range(7)
HI = 7
G_TARGET, G_ETA, G_DECAY, G_GAIN, G_THMIN, G_THMAX, G_DA, G_ETA_A, G_VT, G_ETA_R, G_VREST, G_AMIN, G_AMAX, \
    G_RMIN, G_RMAX = range(15)
HF = 15

KIND_STDP, KIND_BRAINGPT = 1, 2
# KIND_HOMEO_ROW: theta += ... on a threshold-offset state row (EIIF theta_base, or a LIF
# "theta" row where the model has one); KIND_HOMEO_LIF: the offset rides in LIF's row "a"
KIND_HOMEO_LIF, KIND_HOMEO_ROW, KIND_BRAINGPT_HOMEO = 1, 2, 3
#: plan.consts column a LIF population's packed constants get set to 1 when the rule keeps
#: its offset in the row "a": the LIF kernels must then read "a" even when alpha == 0
LIF_USES_A = 14

NAMES = ("pr_i", "pr_f", "hr_i", "hr_f", "ring", "ring_n", "ring_t", "ring_cur", "csc_ptr", "csc_syn", "cgrp",
         "pre_gptr", "grp_ptr", "grp_delay", "dsyn", "dpost", "etab", "xgrp", "tgrp", "sd", "sdd", "xpost", "tpost",
         "crow", "mark", "rate", "h", "vbar")
#: arrays that change while the simulation runs (what a checkpoint must keep)
MUTABLE = ("ring", "ring_n", "ring_t", "ring_cur", "xgrp", "tgrp", "sd", "sdd", "xpost", "tpost", "crow", "rate",
           "h", "vbar")

LIF_ROW_A = 4  # LIF state row "a" (v, i_e, i_i, ref, a)
EIIF_ROW_V, EIIF_ROW_THETA, EIIF_ROW_ALPHA, EIIF_ROW_R = 0, 1, 2, 3


@dataclass
class PlasticityState:
    """Packed rules and their traces.

    ``arrays`` is the tuple the numba loop receives (see module docstring); ``a`` gives
    the same arrays by name. ``proj_rules`` / ``pop_rules`` list (name, rule) in table order.
    """

    arrays: tuple
    proj_rules: list = field(default_factory=list)
    pop_rules: list = field(default_factory=list)

    @property
    def a(self):
        return dict(zip(NAMES, self.arrays))

    # -- on / off --------------------------------------------------------------------------
    def set_enabled(self, name, enabled):
        """Switch the rules of projection or population ``name`` on or off (takes effect at the next step).

        While off, an STDP rule neither records spikes nor changes weights or traces; a
        homeostasis rule freezes its thresholds (they keep their learned value).
        """
        if not isinstance(enabled, bool):
            raise ConfigError(f"plasticity '{name}': enabled must be true or false, got {enabled!r}")
        a = self.a
        hit = False
        for r, (n, _) in enumerate(self.proj_rules):
            if n == name:
                a["pr_i"][r, P_ON] = int(enabled)
                hit = True
        for r, (n, _) in enumerate(self.pop_rules):
            if n == name:
                a["hr_i"][r, H_ON] = int(enabled)
                hit = True
        if not hit:
            known = ", ".join(sorted({n for n, _ in self.proj_rules + self.pop_rules})) or "none"
            raise ConfigError(f"plasticity: no rule on {name!r}; projections/populations with rules: {known}")

    def enabled(self, name):
        """Whether the (first) rule on ``name`` is on."""
        a = self.a
        for r, (n, _) in enumerate(self.proj_rules):
            if n == name:
                return bool(a["pr_i"][r, P_ON])
        for r, (n, _) in enumerate(self.pop_rules):
            if n == name:
                return bool(a["hr_i"][r, H_ON])
        raise ConfigError(f"plasticity: no rule on {name!r}")

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self):
        """Traces, ring buffers, derivatives, row sums, rate estimates and on/off flags (copies).

        Weights and neuron state (thresholds live in the population state) are not included:
        they are in ``plan.w`` and ``plan.S``.
        """
        a = self.a
        d = {k: a[k].copy() for k in MUTABLE}
        d["proj_enabled"] = a["pr_i"][:, P_ON].copy()
        d["pop_enabled"] = a["hr_i"][:, H_ON].copy()
        return d

    def load_state_dict(self, d):
        """Restore what :meth:`state_dict` returned (in place: the compiled loop keeps its arrays)."""
        a = self.a
        want = dict({k: a[k] for k in MUTABLE}, proj_enabled=a["pr_i"][:, P_ON], pop_enabled=a["hr_i"][:, H_ON])
        missing = sorted(set(want) - set(d))
        if missing:
            raise CheckpointMismatchError(f"plasticity state: missing {', '.join(missing)}")
        for k, dst in want.items():
            src = np.asarray(d[k])
            if src.shape != dst.shape:
                raise CheckpointMismatchError(f"plasticity state: '{k}' has shape {src.shape}, "
                                              f"this network needs {dst.shape}")
            dst[...] = src


def empty_arrays():
    """The packed form of 'no rules' (same types as a real pack, so the loop compiles once)."""
    return _Packer(None).arrays()


def pack(plan):
    """Pack the rules of ``plan``'s network; None when it has none."""
    p = _Packer(plan)
    if not p.proj_rules and not p.pop_rules:
        return None
    return PlasticityState(p.arrays(), p.proj_rules, p.pop_rules)


def _pop_rules(pop):
    r = pop.plasticity
    if r is None:
        return ()
    return tuple(r) if isinstance(r, (list, tuple)) else (r,)


class _Packer:
    def __init__(self, plan):
        self.proj_rules, self.pop_rules = [], []
        self.pr_i, self.pr_f, self.hr_i, self.hr_f = [], [], [], []
        self.bufs = {k: [] for k in ("ring", "ring_n", "ring_t", "csc_ptr", "csc_syn", "cgrp", "pre_gptr",
                                     "grp_ptr", "grp_delay", "dsyn", "dpost", "etab", "xpost", "tpost", "crow",
                                     "mark", "rate", "h", "vbar")}
        self.n_syn = 0
        if plan is None:
            return
        for k, proj in enumerate(plan.projs):
            if proj.plasticity is not None:
                self._proj(plan, k, proj)
        if self.proj_rules:
            self.n_syn = plan.w.size
        for p, pop in enumerate(plan.pops):
            for rule in _pop_rules(pop):
                self._pop(plan, p, pop, rule)

    def _len(self, key):
        return sum(x.size for x in self.bufs[key])

    def _proj(self, plan, k, proj):
        rule = proj.plasticity
        where = f"projection '{proj.name}': plasticity"
        if not isinstance(rule, (STDP, BrainGPTSTDP)):
            check_applies(rule, "projection", proj.post.model.name, where)
            raise ConfigError(f"{where}: not a rule object: {rule!r}")
        check_applies(rule, "projection", proj.post.model.name, where)
        dt = plan.dt
        a, b = int(plan.proj_syn_off[k]), int(plan.proj_syn_off[k + 1])
        n_pre, n_post = proj.pre.n, proj.post.n
        post_l = plan.post[a:b].astype(np.int64)
        dl = plan.delay[a:b].astype(np.int64)
        maxd = int(dl.max()) if b > a else 1
        pre_l = np.repeat(np.arange(n_pre, dtype=np.int64), np.diff(plan.indptr[plan.proj_ptr_off[k]:
                                                                               plan.proj_ptr_off[k] + n_pre + 1]))
        # reverse index: incoming synapses of each post neuron (local synapse ids, CSR order kept)
        csc_syn = np.argsort(post_l, kind="stable").astype(np.int64)
        csc_ptr = np.concatenate([[0], np.cumsum(np.bincount(post_l, minlength=n_post))]).astype(np.int64)
        # delay groups: synapses sorted by (pre, delay); one group per distinct pair
        key = pre_l * (maxd + 1) + dl
        dsyn = np.argsort(key, kind="stable").astype(np.int64)
        ks = key[dsyn]
        first = np.ones(ks.size, dtype=bool)
        first[1:] = ks[1:] != ks[:-1]
        grp_start = np.flatnonzero(first)
        grp_ptr = np.append(grp_start, ks.size).astype(np.int64)
        grp_delay = dl[dsyn][grp_start]
        pre_gptr = np.searchsorted(pre_l[dsyn][grp_start], np.arange(n_pre + 1)).astype(np.int64)
        dpos = np.empty(b - a, dtype=np.int64)
        dpos[dsyn] = np.arange(b - a)
        cgrp = (np.cumsum(first) - 1)[dpos[csc_syn]]
        L = table_length(rule.tau_plus, rule.tau_minus, dt)
        etab = np.concatenate([decay_table(rule.tau_plus, dt, L), decay_table(rule.tau_minus, dt, L)])
        ints = np.zeros(PI, dtype=np.int64)
        flt = np.zeros(PF)
        ints[P_PROJ], ints[P_ON] = k, int(rule.enabled)
        ints[P_PAIR] = int(rule.pairing == "nearest")
        ints[P_MAXD], ints[P_NPRE], ints[P_NPOST], ints[P_SYN], ints[P_NSYN] = maxd, n_pre, n_post, a, b - a
        ints[P_RING], ints[P_RINGN] = self._len("ring"), self._len("ring_n")
        ints[P_CSCP], ints[P_CSC] = self._len("csc_ptr"), self._len("csc_syn")
        ints[P_PGPTR], ints[P_DSYN] = self._len("pre_gptr"), self._len("dsyn")
        ints[P_GPTR], ints[P_GRP] = self._len("grp_ptr"), self._len("grp_delay")
        ints[P_POST] = self._len("xpost")
        ints[P_ETAB], ints[P_ELEN] = self._len("etab"), L
        ints[P_PRELO], ints[P_POSTLO] = plan.proj_pre_lo[k], plan.proj_post_lo[k]
        flt[F_AP], flt[F_AM] = rule.a_plus, rule.a_minus
        flt[F_KP], flt[F_KM] = dt / rule.tau_plus, dt / rule.tau_minus
        crow = np.zeros(n_post)
        if isinstance(rule, STDP):
            ints[P_KIND] = KIND_STDP
            ints[P_MULT] = int(rule.weight_dependence == "multiplicative")
            ints[P_MODE] = int(rule.mode == "izhikevich2006")
            ints[P_EVERY] = max(1, min(round(rule.update_every / dt), 2**62))   # beyond any run: never
            flt[F_WMIN], flt[F_WMAX] = rule.w_min, rule.w_max
            flt[F_SDDECAY], flt[F_SDBIAS] = rule.sd_decay, rule.sd_bias
            w = plan.w[a:b]
            if w.size and (w.min() < rule.w_min or w.max() > rule.w_max):
                raise ConfigError(f"{where}: initial weights span [{w.min():g}, {w.max():g}], outside "
                                  f"[w_min, w_max] = [{rule.w_min:g}, {rule.w_max:g}]")
        else:
            ints[P_KIND] = KIND_BRAINGPT
            ints[P_NORM] = int(rule.normalize)
            flt[F_ETA] = rule.eta_w
            if rule.row_sum is None:
                np.add.at(crow, post_l, plan.w[a:b])
            else:
                crow[:] = rule.row_sum
                if rule.normalize and b > a:  # start on the constraint: shift every row to C
                    deg = np.bincount(post_l, minlength=n_post)
                    tot = np.zeros(n_post)
                    np.add.at(tot, post_l, plan.w[a:b])
                    plan.w[a:b] -= ((tot - crow) / np.maximum(deg, 1))[post_l]
        self.proj_rules.append((proj.name, rule))
        self.pr_i.append(ints)
        self.pr_f.append(flt)
        B = self.bufs
        B["ring"].append(np.zeros((maxd + 1) * n_pre, dtype=np.int64))
        B["ring_n"].append(np.zeros(maxd + 1, dtype=np.int64))
        B["ring_t"].append(np.full(maxd + 1, -1, dtype=np.int64))
        B["csc_ptr"].append(csc_ptr)
        B["csc_syn"].append(csc_syn)
        B["cgrp"].append(cgrp)
        B["pre_gptr"].append(pre_gptr)
        B["grp_ptr"].append(grp_ptr)
        B["grp_delay"].append(grp_delay)
        B["dsyn"].append(dsyn)
        B["dpost"].append(post_l[dsyn])
        B["etab"].append(etab)
        B["xpost"].append(np.zeros(n_post))
        B["tpost"].append(np.full(n_post, -1, dtype=np.int64))
        B["crow"].append(crow)
        B["mark"].append(np.zeros(n_post, dtype=np.int64))

    def _pop(self, plan, p, pop, rule):
        where = f"population '{pop.name}': plasticity"
        if not isinstance(rule, (Homeostasis, BrainGPTHomeostasis)):
            check_applies(rule, "population", pop.model.name, where)
            raise ConfigError(f"{where}: not a rule object: {rule!r}")
        check_applies(rule, "population", pop.model.name, where)
        dt = plan.dt
        ints = np.zeros(HI, dtype=np.int64)
        flt = np.zeros(HF)
        ints[H_POP], ints[H_ON] = p, int(rule.enabled)
        ints[H_LO], ints[H_HI], ints[H_OFF] = plan.pop_lo[p], plan.pop_hi[p], self._len("rate")
        if isinstance(rule, Homeostasis):
            if pop.model.name == "eiif":
                ints[H_KIND], ints[H_ROW] = KIND_HOMEO_ROW, EIIF_ROW_THETA
            elif "theta" in pop.model.state_vars:
                ints[H_KIND], ints[H_ROW] = KIND_HOMEO_ROW, pop.model.state_vars.index("theta")
            else:
                ints[H_KIND], ints[H_ROW] = KIND_HOMEO_LIF, LIF_ROW_A
                plan.consts[p, LIF_USES_A] = 1.0
            e = math.exp(-dt / rule.tau_rate)
            flt[G_TARGET], flt[G_ETA], flt[G_DECAY], flt[G_GAIN] = rule.target_rate, rule.eta * dt * 1e-3, e, \
                (1.0 - e) * 1000.0 / dt
            flt[G_THMIN], flt[G_THMAX] = rule.theta_min, rule.theta_max
            if pop.model.name == "eiif":
                flt[G_THMIN] = max(rule.theta_min, 0.0)
            else:
                flt[G_DA] = plan.consts[p, 13]  # exp(-dt / tau_a) of the LIF population
        else:
            ints[H_KIND] = KIND_BRAINGPT_HOMEO
            e = math.exp(-dt / rule.tau_avg)
            flt[G_TARGET], flt[G_ETA], flt[G_DECAY], flt[G_GAIN] = rule.s_target, rule.eta_theta, e, 1.0 - e
            flt[G_THMIN], flt[G_THMAX] = rule.theta_min, rule.theta_max
            flt[G_ETA_A], flt[G_VT], flt[G_ETA_R], flt[G_VREST] = rule.eta_alpha, rule.v_target, rule.eta_r, \
                rule.v_rest
            flt[G_AMIN], flt[G_AMAX], flt[G_RMIN], flt[G_RMAX] = rule.alpha_min, rule.alpha_max, rule.r_min, \
                rule.r_max
        self.pop_rules.append((pop.name, rule))
        self.hr_i.append(ints)
        self.hr_f.append(flt)
        n = pop.n
        self.bufs["rate"].append(np.zeros(n))
        self.bufs["h"].append(np.zeros(n))
        vbar = np.zeros(n)
        if ints[H_KIND] == KIND_BRAINGPT_HOMEO:
            vbar[:] = plan.S[EIIF_ROW_V, plan.pop_lo[p]:plan.pop_hi[p]]
        self.bufs["vbar"].append(vbar)

    def arrays(self):
        def cat(key, dtype):
            xs = self.bufs[key]
            return np.concatenate(xs).astype(dtype) if xs else np.zeros(0, dtype)

        def table(rows, width, dtype):
            return np.array(rows, dtype=dtype).reshape(-1, width) if rows else np.zeros((0, width), dtype)

        i64, i32, f64 = np.int64, np.int32, np.float64
        n_plastic = self._len("dsyn")
        n_grp = self._len("grp_delay")
        return (
            table(self.pr_i, PI, i64), table(self.pr_f, PF, f64), table(self.hr_i, HI, i64), table(self.hr_f, HF, f64),
            cat("ring", i64), cat("ring_n", i64), cat("ring_t", i64), np.zeros(self._len("ring"), i64),
            cat("csc_ptr", i64), cat("csc_syn", i32), cat("cgrp", i32),
            cat("pre_gptr", i64), cat("grp_ptr", i64), cat("grp_delay", i64), cat("dsyn", i32), cat("dpost", i32),
            cat("etab", f64), np.zeros(n_grp), np.full(n_grp, -1, dtype=i64),
            np.zeros(self.n_syn), np.zeros(n_plastic),
            cat("xpost", f64), cat("tpost", i64), cat("crow", f64), cat("mark", i64),
            cat("rate", f64), cat("h", f64), cat("vbar", f64),
        )


# -- the NumPy reference learn phase ---------------------------------------------------------

def learn_numpy(plan, t, spk_idx, spk_val, state):
    """Learn phase of step ``t`` (after update, before propagate): the reference for the numba kernel."""
    if state is None:
        return
    a = state.a
    spk_idx = np.asarray(spk_idx, dtype=np.int64)
    for r in range(a["pr_i"].shape[0]):
        if a["pr_i"][r, P_ON]:
            _learn_projection(plan, t, spk_idx, a, r)
    for r in range(a["hr_i"].shape[0]):
        _learn_population(plan, t, spk_idx, spk_val, a, r)


# -- trace decay over whole steps (converted LMs' learning uses the same: spikelm.lm.learn) ---------

def table_length(tau_plus, tau_minus, dt) -> int:
    """L of a rule's decay tables (n = 0..L): long enough for a trace to fall below 1e-16."""
    span = 37.0 * max(tau_plus, tau_minus) / dt     # may overflow to inf: capped below
    return 100_000 if not span < 100_000 else math.ceil(span)


def decay_table(tau, dt, L) -> np.ndarray:
    """exp(-n dt / tau) for n = 0..L (one rule's table for one time constant)."""
    return np.array([math.exp(-x * (dt / tau)) for x in np.arange(L + 1, dtype=np.float64)])


def decay_steps(etab, L, dsteps, k):
    """exp(-dsteps k) for whole numbers of steps: the table ``etab`` (n = 0..L) up to L, computed beyond."""
    dsteps = np.asarray(dsteps, dtype=np.int64)
    out = np.empty(dsteps.shape)
    near = dsteps <= L
    out[near] = etab[dsteps[near]]
    out[~near] = np.exp(-dsteps[~near] * k)
    return out


@njit(cache=True)
def decay_steps_nb(etab, e0, L, n, k):
    """exp(-n k) for n whole steps: the table etab[e0:e0 + L + 1] up to L, computed beyond (the
    Numba twin of :func:`decay_steps`)."""
    if n <= L:
        return etab[e0 + n]
    return math.exp(-n * k)


def _learn_projection(plan, t, spk_idx, a, r):
    pi, pf = a["pr_i"][r], a["pr_f"][r]
    kind, nearest, mult, izh = pi[P_KIND], pi[P_PAIR], pi[P_MULT], pi[P_MODE]
    maxd, n_pre, n_post, syn0, nsyn = pi[P_MAXD], pi[P_NPRE], pi[P_NPOST], pi[P_SYN], pi[P_NSYN]
    ns = maxd + 1
    ap, am, kp, km, wmin, wmax, eta = pf[F_AP], pf[F_AM], pf[F_KP], pf[F_KM], pf[F_WMIN], pf[F_WMAX], pf[F_ETA]
    L = pi[P_ELEN]
    ep = a["etab"][pi[P_ETAB]:pi[P_ETAB] + L + 1]
    em = a["etab"][pi[P_ETAB] + L + 1:pi[P_ETAB] + 2 * L + 2]
    w = plan.w[syn0:syn0 + nsyn]
    sd = a["sd"][syn0:syn0 + nsyn]  # reverse-index order
    ds = pi[P_DSYN]
    sdd, dsyn, dpost = (a[k][ds:ds + nsyn] for k in ("sdd", "dsyn", "dpost"))  # group order
    po = pi[P_POST]
    xpost, tpost = a["xpost"][po:po + n_post], a["tpost"][po:po + n_post]
    mark = a["mark"][po:po + n_post]
    rg, rn = pi[P_RING], pi[P_RINGN]
    ring = a["ring"][rg:rg + ns * n_pre].reshape(ns, n_pre)
    cur = a["ring_cur"][rg:rg + ns * n_pre].reshape(ns, n_pre)
    ring_n, ring_t = a["ring_n"][rn:rn + ns], a["ring_t"][rn:rn + ns]
    cptr = a["csc_ptr"][pi[P_CSCP]:pi[P_CSCP] + n_post + 1]
    csyn, cgrp = (a[k][pi[P_CSC]:pi[P_CSC] + nsyn] for k in ("csc_syn", "cgrp"))
    pre_gptr = a["pre_gptr"][pi[P_PGPTR]:pi[P_PGPTR] + n_pre + 1]
    n_grp = pre_gptr[-1]
    grp_ptr = a["grp_ptr"][pi[P_GPTR]:pi[P_GPTR] + n_grp + 1]
    go = pi[P_GRP]
    grp_delay, xgrp, tgrp = (a[k][go:go + n_grp] for k in ("grp_delay", "xgrp", "tgrp"))

    # delay groups whose pre spike arrives now: the spike at t - d reaches its group of delay d
    groups = []
    for d in range(1, maxd + 1):
        sl = (t - d) % ns
        if ring_t[sl] != t - d:
            continue
        for m in range(ring_n[sl]):
            g, end = cur[sl, m], pre_gptr[ring[sl, m] + 1]
            while g < end and grp_delay[g] < d:  # groups missed while the rule was off
                g += 1
            if g < end and grp_delay[g] == d:
                groups.append(g)
                g += 1
            cur[sl, m] = g
    groups = np.array(groups, dtype=np.int64)
    post_lo = pi[P_POSTLO]
    posts = spk_idx[(spk_idx >= post_lo) & (spk_idx < post_lo + n_post)] - post_lo

    def on_arrivals():
        if not groups.size:
            return
        q = np.concatenate([np.arange(grp_ptr[g], grp_ptr[g + 1]) for g in groups])
        s, i = dsyn[q], dpost[q]
        has = tpost[i] >= 0
        sh, ih, qh = s[has], i[has], q[has]
        x = decay_steps(em, L, t - tpost[ih], km)
        if not nearest:
            x = xpost[ih] * x
        if kind == KIND_BRAINGPT:
            w[sh] = w[sh] + eta * (-am * x - w[sh])
            mark[ih] = 1
        else:
            dw = -am * x * (w[sh] - wmin) if mult else -am * x
            if izh:
                sdd[qh] = sdd[qh] + dw
            else:
                w[sh] = np.minimum(np.maximum(w[sh] + dw, wmin), wmax)
        # group pre traces (all-to-all: add 1; nearest: 1 at the last arrival, only its step is kept)
        if not nearest:
            old = tgrp[groups] >= 0
            xgrp[groups] = np.where(old, xgrp[groups] * decay_steps(ep, L, np.where(old, t - tgrp[groups], 0), kp),
                                    0.0) + 1.0
        tgrp[groups] = t

    def on_posts():
        for i in posts:
            c = np.arange(cptr[i], cptr[i + 1])
            g = cgrp[c]
            keep = tgrp[g] >= 0
            c, g = c[keep], g[keep]
            s = csyn[c]
            x = decay_steps(ep, L, t - tgrp[g], kp)
            if not nearest:
                x = xgrp[g] * x
            if kind == KIND_BRAINGPT:
                w[s] = w[s] + eta * (ap * x - w[s])
                if s.size:
                    mark[i] = 1
            else:
                dw = ap * x * (wmax - w[s]) if mult else ap * x
                if izh:
                    sd[c] = sd[c] + dw
                else:
                    w[s] = np.minimum(np.maximum(w[s] + dw, wmin), wmax)
        if nearest:
            xpost[posts] = 1.0
        else:
            old = tpost[posts] >= 0
            xpost[posts] = np.where(old, xpost[posts] * decay_steps(em, L, np.where(old, t - tpost[posts], 0), km),
                                    0.0) + 1.0
        tpost[posts] = t

    if kind == KIND_STDP:  # dt_pair = 0 potentiates: arrivals first, then post spikes
        on_arrivals()
        on_posts()
    else:  # BrainGPT eq. 15: dt_pair = 0 depresses: post spikes first, then arrivals
        on_posts()
        on_arrivals()
        if pi[P_NORM]:
            crow = a["crow"][po:po + n_post]
            for i in np.flatnonzero(mark):
                s = csyn[cptr[i]:cptr[i + 1]]
                tot = 0.0
                for v in w[s]:
                    tot += v
                w[s] = w[s] - (tot - crow[i]) / s.size
        mark[:] = 0

    # record this step's pre spikes for their future arrivals
    pre_lo = pi[P_PRELO]
    pres = spk_idx[(spk_idx >= pre_lo) & (spk_idx < pre_lo + n_pre)] - pre_lo
    sl = t % ns
    ring[sl, :pres.size] = pres
    cur[sl, :pres.size] = pre_gptr[pres]
    ring_n[sl], ring_t[sl] = pres.size, t

    if izh and (t + 1) % pi[P_EVERY] == 0:
        w[dsyn] = w[dsyn] + sdd
        sdd[:] = sdd * pf[F_SDDECAY]
        w[csyn] = np.minimum(np.maximum(w[csyn] + (pf[F_SDBIAS] + sd), wmin), wmax)
        sd[:] = sd * pf[F_SDDECAY]


def _learn_population(plan, t, spk_idx, spk_val, a, r):
    hi_, hf = a["hr_i"][r], a["hr_f"][r]
    kind, on, lo, hi, off = hi_[H_KIND], hi_[H_ON], hi_[H_LO], hi_[H_HI], hi_[H_OFF]
    n = hi - lo
    S = plan.S
    h = a["h"][off:off + n]
    if kind == KIND_HOMEO_LIF and not on:  # frozen: keep the offset in the threshold row
        S[LIF_ROW_A, lo:hi] += h / hf[G_DA] - h
        return
    if not on:
        return
    fired = spk_idx[(spk_idx >= lo) & (spk_idx < hi)] - lo
    rate = a["rate"][off:off + n]
    rate *= hf[G_DECAY]
    if kind == KIND_BRAINGPT_HOMEO:
        rate[fired] += hf[G_GAIN]  # |S| = 1 for every (ternary) spike
        vbar = a["vbar"][off:off + n]
        vbar[:] = vbar * hf[G_DECAY] + hf[G_GAIN] * S[EIIF_ROW_V, lo:hi]
        th, al, rr = S[EIIF_ROW_THETA, lo:hi], S[EIIF_ROW_ALPHA, lo:hi], S[EIIF_ROW_R, lo:hi]
        th[:] = np.minimum(np.maximum(th + hf[G_ETA] * (rate - hf[G_TARGET]), hf[G_THMIN]), hf[G_THMAX])
        al[:] = np.minimum(np.maximum(al + hf[G_ETA_A] * (vbar - hf[G_VT]), hf[G_AMIN]), hf[G_AMAX])
        rr[:] = np.minimum(np.maximum(rr + hf[G_ETA_R] * (vbar - hf[G_VREST]), hf[G_RMIN]), hf[G_RMAX])
        return
    rate[fired] += hf[G_GAIN]
    if kind == KIND_HOMEO_ROW:
        th = S[hi_[H_ROW], lo:hi]
        th[:] = np.minimum(np.maximum(th + hf[G_ETA] * (rate - hf[G_TARGET]), hf[G_THMIN]), hf[G_THMAX])
        return
    # LIF: threshold = v_th + a; the row a holds (spike trace) + h / da, so after the model's
    # decay in the next update the offset in force is exactly h
    hn = np.minimum(np.maximum(h + hf[G_ETA] * (rate - hf[G_TARGET]), hf[G_THMIN]), hf[G_THMAX])
    S[LIF_ROW_A, lo:hi] += hn / hf[G_DA] - h
    h[:] = hn
