"""The NumPy reference of learning in converted LMs (the compiled twins: :mod:`spikelm.lm.learn.kernels`).

Called by :class:`spikelm.lm.runner.NumpyRunner` on a :class:`~spikelm.lm.learn.state.LearnState`:
:func:`fire`, :func:`start` and :func:`pending` for populations with spike units or EI-IF
neurons; :func:`learn_step` for the learn phase of every step (after update, before
propagate); :func:`readout_learn` for the readout rule, once per token. The same floating-point operations in the same order as the twins.

**STDP in a converted LM.** Time is the global step (it runs on across tokens). A pre spike of
step s *arrives* at s + 1, when the executors deliver it (docs/plasticity.md's convention);
``dt_pair = t_post - t_arrival``. Populations fire one after another within a token (a
population starts when its inputs are quiescent), so within a token every arrival precedes
every post spike of the projection's target (potentiation); depression pairs an arrival
with the target's spikes of earlier tokens. Every spike counts as one event whatever its
value (a signed-digit spike of 16 is one spike; -1 counts like +1). Plain STDP: arrivals,
then post spikes (dt_pair = 0 potentiates); BrainGPT: post spikes, then arrivals (eq. 15's
dt <= 0 depresses), then eq. 16 on every touched row (the post neuron's incoming weights).
"""

from __future__ import annotations

import math

import numpy as np

from spikelm.lm.learn import kernels as K
from spikelm.lm.learn.neurons import eiif_pending, eiif_step, potential, unit_remainder, unit_step
from spikelm.plasticity.interface import decay_steps_nb


#: a spike's trace update: the compiled function's own Python (the same operations)
bump = K.bump_trace.py_func


#: the engine's trace decay for one distance, in the compiled function's own Python: beyond the
#: table, math.exp as the kernels compute it (NumPy's exp may differ in the last bit)
decay = decay_steps_nb.py_func


def decays(etab, base: int, L: int, d, k) -> np.ndarray:
    """exp(-d k) for whole steps d, from the rule's table at ``base`` (n = 0..L), computed beyond."""
    d = np.asarray(d, dtype=np.int64)
    out = np.empty(d.shape)
    near = d <= L
    out[near] = etab[base + d[near]]
    for j in np.flatnonzero(~near):
        out[j] = decay(etab, base, L, int(d[j]), k)
    return out


def _params(pop):
    if pop.op == "accumulate":
        return pop.gain, pop.offset, pop.shift
    return 1, 0, 0  # operator-fed: the accumulator holds the code


def fire(state, p, pop, n, counts, acc, steps):
    """Update phase of population p; returns (spike values, new counts) for its neurons."""
    a, seg = state.a, state.layout.seg(p)
    count = counts[n, seg]
    a["active"][p] = 1
    if a["lkind"][p] == K.EIIF:
        s, v = eiif_step(a["vmem"][seg], a["xin"][seg], steps - a["tstart"][p], a["theta_base"][seg], a["alpha"][seg],
                         a["r"][seg], count, pop.qmin, pop.qmax)
        a["vmem"][seg] = v
        new = (count + s).astype(count.dtype)
    else:
        from spikelm.lm.codings import coding_id

        M, B, k = _params(pop)
        s, new = unit_step(acc[seg], count, M, B, k, pop.qmin, pop.qmax, a["unit"][seg], coding_id(pop.coding))
    a["nspk"][seg] += s != 0
    return s, new


def start(state, p, pop, n, counts, acc, first_step):
    """Population p starts: its window opens at ``first_step`` (EI-IF membranes and inputs set)."""
    a, seg = state.a, state.layout.seg(p)
    a["tstart"][p] = first_step
    if a["lkind"][p] == K.EIIF:
        M, B, k = _params(pop)
        a["vmem"][seg] = 0.0
        a["xin"][seg] = potential(acc[seg], M, B, k)


def pending(state, p, pop, n, counts, acc, steps) -> bool:
    """Whether any neuron of p may still fire after step ``steps``."""
    a, seg = state.a, state.layout.seg(p)
    count = counts[n, seg]
    if a["lkind"][p] == K.EIIF:
        return bool(eiif_pending(a["vmem"][seg], a["xin"][seg], steps - a["tstart"][p] + 1, a["theta_base"][seg],
                                 a["alpha"][seg], a["r"][seg], count, pop.qmin, pop.qmax).any())
    M, B, k = _params(pop)
    return bool(unit_remainder(acc[seg], count, M, B, k, pop.qmin, pop.qmax, a["unit"][seg]).any())


def _set(a, W, mi, wi, new, qw) -> int:
    a["wm"][mi] = new
    v = np.clip(np.floor(new + 0.5), -qw, qw).astype(W.dtype)
    changed = int((W[wi] != v).sum())
    W[wi] = v
    return changed


def learn_step(state, t: int, spk: dict):
    """The learn phase of the step at global time t; ``spk``: population -> (indices, values)."""
    a, off = state.a, state.layout.offsets
    for r in range(a["pr_i"].shape[0]):
        ri = a["pr_i"][r]
        if not ri[K.P_ON]:
            continue
        pre, post = int(ri[K.P_PRE_POP]), int(ri[K.P_POST_POP])
        arrivals = a["psp"][a["ppst"][pre]: a["ppen"][pre]] - off[pre]
        posts = spk[post][0] if post in spk else np.zeros(0, np.int64)
        if ri[K.P_KIND] == K.KIND_STDP:
            _arrivals(state, r, t, arrivals)
            _posts(state, r, t, posts)
        else:
            _posts(state, r, t, posts)
            _arrivals(state, r, t, arrivals)
            _normalize(state, r)
    for h in range(a["hr_i"].shape[0]):
        p = int(a["hr_i"][h, K.H_POP])
        if not a["hr_i"][h, K.H_ON] or not a["active"][p]:
            continue
        f = a["hr_f"][h]
        seg = state.layout.seg(p)
        sb = a["sbar"][seg] * f[K.G_DECAY]
        if p in spk:
            sb[spk[p][0]] += f[K.G_GAIN]
        a["sbar"][seg] = sb
        vb = a["vbar"][seg] * f[K.G_DECAY] + f[K.G_GAIN] * a["vmem"][seg]
        a["vbar"][seg] = vb
        a["theta_base"][seg] = np.minimum(np.maximum(a["theta_base"][seg] + f[K.G_ETA] * (sb - f[K.G_TARGET]),
                                                     f[K.G_THMIN]), f[K.G_THMAX])
        a["alpha"][seg] = np.minimum(np.maximum(a["alpha"][seg] + f[K.G_ETA_A] * (vb - f[K.G_VT]), f[K.G_AMIN]),
                                     f[K.G_AMAX])
        a["r"][seg] = np.minimum(np.maximum(a["r"][seg] + f[K.G_ETA_R] * (vb - f[K.G_VREST]), f[K.G_RMIN]),
                                 f[K.G_RMAX])
    # this step's spikes arrive next step (population order, as the compiled loop lists them)
    a["ppst"][:] = 0
    a["ppen"][:] = 0
    m = 0
    for p in sorted(spk):
        idx = spk[p][0]
        a["psp"][m: m + idx.size] = off[p] + idx
        a["ppst"][p], a["ppen"][p] = m, m + idx.size
        m += idx.size
    a["active"][:] = 0


def _rule(state, r):
    a = state.a
    ri, rf = a["pr_i"][r], a["pr_f"][r]
    L = int(ri[K.P_ELEN])
    return ri, rf, L, int(ri[K.P_ETAB]), int(ri[K.P_ETAB]) + L + 1


def _arrivals(state, r, t, js):
    a = state.a
    ri, rf, L, ep, em = _rule(state, r)
    if not js.size:
        return
    npost, xo, yo, mo, wo = (int(ri[c]) for c in (K.P_NPOST, K.P_XPRE, K.P_POST, K.P_SYN, K.P_WOFF))
    nearest, mult, brain = ri[K.P_PAIR] == 1, ri[K.P_MULT] == 1, ri[K.P_KIND] == K.KIND_BRAINGPT
    am, wmin, wmax, eta = rf[K.F_AM], rf[K.F_WMIN], rf[K.F_WMAX], rf[K.F_ETA]
    tpost, xpost = a["tpost"][yo: yo + npost], a["xpost"][yo: yo + npost]
    ii = np.flatnonzero(tpost >= 0)
    for j in js:
        if ii.size:
            x = decays(a["etab"], em, L, t - tpost[ii], rf[K.F_KM])
            if not nearest:
                x = xpost[ii] * x
            e = j * npost + ii
            w = a["wm"][mo + e]
            if brain:
                new = w + eta * (-am * x - w)
                a["mark"][yo + ii] = 1
            else:
                dw = -am * x * (w - wmin) if mult else -am * x
                new = np.minimum(np.maximum(w + dw, wmin), wmax)
            a["lcnt"][1] += _set(a, state.W, mo + e, wo + e, new, ri[K.P_QW])
            a["lcnt"][0] += ii.size
        bump(a["xpre"], a["tpre"], xo + j, t, a["etab"], ep, L, rf[K.F_KP], nearest)


def _posts(state, r, t, iis):
    a = state.a
    ri, rf, L, ep, em = _rule(state, r)
    if not iis.size:
        return
    npre, npost, xo, yo, mo, wo = (int(ri[c]) for c in (K.P_NPRE, K.P_NPOST, K.P_XPRE, K.P_POST, K.P_SYN,
                                                        K.P_WOFF))
    nearest, mult, brain = ri[K.P_PAIR] == 1, ri[K.P_MULT] == 1, ri[K.P_KIND] == K.KIND_BRAINGPT
    ap, wmin, wmax, eta = rf[K.F_AP], rf[K.F_WMIN], rf[K.F_WMAX], rf[K.F_ETA]
    tpre, xpre = a["tpre"][xo: xo + npre], a["xpre"][xo: xo + npre]
    js = np.flatnonzero(tpre >= 0)
    if js.size:
        x = decays(a["etab"], ep, L, t - tpre[js], rf[K.F_KP])
        if not nearest:
            x = xpre[js] * x
        for i in iis:
            e = js * npost + i
            w = a["wm"][mo + e]
            if brain:
                new = w + eta * (ap * x - w)
                a["mark"][yo + i] = 1
            else:
                dw = ap * x * (wmax - w) if mult else ap * x
                new = np.minimum(np.maximum(w + dw, wmin), wmax)
            a["lcnt"][1] += _set(a, state.W, mo + e, wo + e, new, ri[K.P_QW])
            a["lcnt"][0] += js.size
    for i in iis:
        bump(a["xpost"], a["tpost"], yo + i, t, a["etab"], em, L, rf[K.F_KM], nearest)


def _normalize(state, r):
    a = state.a
    ri = a["pr_i"][r]
    if not ri[K.P_NORM]:
        return
    npre, npost, yo, mo, wo = (int(ri[c]) for c in (K.P_NPRE, K.P_NPOST, K.P_POST, K.P_SYN, K.P_WOFF))
    col = np.arange(npre) * npost
    for i in np.flatnonzero(a["mark"][yo: yo + npost]):
        a["mark"][yo + i] = 0
        e = col + i
        w = a["wm"][mo + e]
        d = (np.cumsum(w)[-1] - a["crow"][yo + i]) / npre  # a sequential sum, as the compiled twin's
        a["lcnt"][1] += _set(a, state.W, mo + e, wo + e, w - d, ri[K.P_QW])
        a["lcnt"][0] += npre


def readout_learn(c, acc, scale, bias, b0, y, wm, w0, W, ro_i, ro_f, lcnt):
    """The readout rule after one token: the NumPy twin of :func:`spikelm.lm.learn.kernels.readout_learn`
    (same arguments; exponentials by ``math.exp`` and the sum in order, as the twin computes them)."""
    if not ro_i[K.R_ON]:
        return
    npre, npost, wo, qw = (int(ro_i[k]) for k in (K.R_NPRE, K.R_NPOST, K.R_WOFF, K.R_QW))
    eta, eta_b, thr, lam = (float(ro_f[k]) for k in (K.R_ETA, K.R_ETA_B, K.R_THR, K.R_DECAY))
    z = np.asarray(acc, np.int64).astype(np.float64) * scale + bias
    ex = np.array([math.exp(x) for x in z - z.max()])
    e = ex / np.cumsum(ex)[-1]
    e[y] -= 1.0
    learns = np.abs(e) >= thr
    learns[y] = True
    nz = np.flatnonzero(c)
    cf = np.asarray(c, np.int64)
    nc2 = int((cf * cf).sum())
    keep = 1.0 - lam
    for v in np.flatnonzero(learns):
        b = b0[v] + keep * (bias[v] - b0[v]) if lam > 0.0 else bias[v]
        bias[v] = b - eta_b * e[v]
        lcnt[0] += 1
        upd = eta > 0.0 and nc2 > 0 and scale[v] != 0.0
        g = eta * e[v] / (scale[v] * float(nc2)) if upd else 0.0
        rows = (np.arange(npre) if lam > 0.0 else nz) * npost + v
        if lam > 0.0:
            w = w0[rows] + keep * (wm[rows] - w0[rows])
            if upd:
                w = w - g * cf
        elif upd:
            w = wm[rows] - g * cf[nz]
        else:
            continue
        lcnt[1] += _set_flat(wm, W, rows, wo + rows, w, qw)
        lcnt[0] += rows.size


def _set_flat(wm, W, mi, wi, new, qw) -> int:
    wm[mi] = new
    v = np.clip(np.floor(new + 0.5), -qw, qw).astype(W.dtype)
    changed = int((W[wi] != v).sum())
    W[wi] = v
    return changed
