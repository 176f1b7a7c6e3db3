"""The learning parts of the compiled token loop (Numba), called under the loop's ``LEARN`` flag.

Twins of :mod:`spikelm.lm.learn.reference` (the NumPy reference), operation for operation
and in the same floating-point order, so that both backends agree bit for bit. A learning
neuron's spike is decided in the loop's update phase itself (:mod:`spikelm.lm.loop`, with the
one emission block every neuron kind shares) by the scalar twins of
:mod:`spikelm.lm.learn.neurons`; here:

- :func:`start_learn`: what such a population does when it starts (its active list, EI-IF
  membranes and inputs, the step its window opens);
- :func:`pending_learn`: which EI-IF neurons may still fire (the schedule's quiescence);
- :func:`learn_step`: the learn phase (after update, before propagate): STDP and BrainGPT
  STDP on projections, BrainGPT homeostasis on EI-IF populations;
- :func:`readout_learn`: the readout's three-factor rule (``readout_error``), once per token,
  when the next token is known (the runners call it before that token; no step involved).

Bundles (:mod:`spikelm.lm.bundles`, packed by :class:`spikelm.lm.learn.state.LearnState`):
``neur`` (per-neuron parameters and per-token scratch) and ``plast`` (rule tables, master
weights, traces). The column constants below are the only copies (the NumPy side imports them).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from spikelm.lm import bundles as _bundles
from spikelm.lm import codings as _codings
from spikelm.lm.learn import neurons as _neurons
from spikelm.lm.learn.neurons import eiif_pending_nb, potential_nb, unit_remainder_nb
from spikelm.plasticity import interface as _columns
from spikelm.plasticity.interface import (F_AM, F_AP, F_ETA, F_KM, F_KP, F_WMAX, F_WMIN, G_AMAX, G_AMIN, G_DECAY,
                                          G_ETA, G_ETA_A, G_ETA_R, G_GAIN, G_RMAX, G_RMIN, G_TARGET, G_THMAX,
                                          G_THMIN, G_VREST, G_VT, H_ON, H_POP, KIND_BRAINGPT, KIND_STDP, P_ELEN,
                                          P_ETAB, P_KIND, P_MULT, P_NORM, P_NPOST, P_NPRE, P_ON, P_PAIR, P_POST,
                                          P_SYN, PI, decay_steps_nb)
from spikelm.simulator._numba_cache import invalidate_if_changed

# the kernels inline the neurons', codings' and the engine's trace-decay Numba twins and read
# the bundles' fields and the engine's columns: rebuild their cache when those change
invalidate_if_changed(__file__, [_neurons.__file__, _codings.__file__, _bundles.__file__, _columns.__file__])

#: neuron kinds of the ``lkind`` array: plain SignedIF (the loop's own path), units, EI-IF
PLAIN, UNITS, EIIF = -1, 0, 1
# The rule tables are the engine's (spikelm.plasticity.interface: one vocabulary, the same
# columns at the same places); a dense LM projection has no delay rings or reverse index, so it
# leaves those columns 0 and appends its own after the engine's PI
#: LM int columns of a projection rule: its populations, its integer rows' offset in W, its pre
#: traces' offset, and the largest |integer weight|
P_PRE_POP, P_POST_POP, P_WOFF, P_XPRE, P_QW = range(PI, PI + 5)
PI_LM = PI + 5
#: int columns of the readout rule (``ro_i``): on, integer rows' offset in W, presynaptic and
#: readout sizes, the largest |integer weight|
R_ON, R_WOFF, R_NPRE, R_NPOST, R_QW = range(5)
RI = 5
#: float columns of the readout rule (``ro_f``): eta, eta_bias, threshold, decay
R_ETA, R_ETA_B, R_THR, R_DECAY = range(4)
RF = 4


@njit(cache=True, inline="always")
def bump_trace(x, tl, i, t, etab, base, L, k, nearest):
    """A spike at t: trace i decays from its last spike (table at ``base``, rate k per step)
    and adds 1 (all pairs) or is set to 1 (nearest)."""
    if nearest:
        x[i] = 1.0
    else:
        x[i] = (x[i] * decay_steps_nb(etab, base, L, t - tl[i], k) if tl[i] >= 0 else 0.0) + 1.0
    tl[i] = t


@njit(cache=True, inline="always")
def _set_weight(wm, W, mi, wi, new, qw):
    """Store a master weight and re-derive its integer (round half up, clipped); 1 if it changed."""
    wm[mi] = new
    v = np.floor(new + 0.5)
    if v > qw:
        v = qw
    elif v < -qw:
        v = -qw
    iv = np.int64(v)
    if W[wi] != iv:
        W[wi] = iv
        return 1
    return 0


@njit(cache=True)
def start_learn(p, n, first_step, struct, state, neur):
    """Population p starts: its window opens at ``first_step``; list the neurons that may fire."""
    off, gain, offset, shift = struct.off, struct.gain, struct.offset, struct.shift
    acc, alist = state.acc, state.alist
    counts_n = state.counts[n]
    qmin, qmax = struct.qmin[p], struct.qmax[p]
    b = off[p]
    neur.tstart[p] = first_step
    m = 0
    for i in range(off[p + 1] - b):
        g = b + i
        c = np.int64(counts_n[g])
        if neur.lkind[p] == EIIF:
            neur.vmem[g] = 0.0
            neur.xin[g] = potential_nb(acc[g], gain[g], offset[g], shift[p])
            ok = eiif_pending_nb(0.0, neur.xin[g], 0, neur.theta_base[g], neur.alpha[g], neur.r[g], c, qmin, qmax)
        else:
            ok = unit_remainder_nb(acc[g], c, gain[g], offset[g], shift[p], qmin, qmax, neur.unit[g]) != 0
        if ok:
            alist[b + m] = i
            m += 1
    state.alen[p] = m


@njit(cache=True)
def pending_learn(p, n, steps, struct, state, neur):
    """After step ``steps``: how many EI-IF neurons of p may still fire (into ``state.alen[p]``)."""
    off = struct.off
    counts_n = state.counts[n]
    b = off[p]
    t_next = steps - neur.tstart[p] + 1
    m = 0
    for g in range(b, off[p + 1]):
        if eiif_pending_nb(neur.vmem[g], neur.xin[g], t_next, neur.theta_base[g], neur.alpha[g], neur.r[g],
                           np.int64(counts_n[g]), struct.qmin[p], struct.qmax[p]):
            m += 1
    state.alen[p] = m


@njit(cache=True)
def learn_step(n, steps, clock, first, last, nsp, struct, state, neur, plast):
    """The learn phase of one step (see the module docstring and docs/lm.md)."""
    off, W = struct.off, struct.W
    stepval, sp, pstart, pend = state.stepval, state.sp, state.pstart, state.pend
    vmem, active, psp, ppst, ppen = neur.vmem, neur.active, neur.psp, neur.ppst, neur.ppen
    thb, alp, rr = neur.theta_base, neur.alpha, neur.r
    pr_i, pr_f, wm, xpre, tpre, xpost, tpost = plast.pr_i, plast.pr_f, plast.wm, plast.xpre, plast.tpre, plast.xpost, \
        plast.tpost
    crow, mark, etab, hr_i, hr_f, sbar, vbar, lcnt = plast.crow, plast.mark, plast.etab, plast.hr_i, plast.hr_f, \
        plast.sbar, plast.vbar, plast.lcnt
    t = clock + steps
    P = off.shape[0] - 1
    for r in range(pr_i.shape[0]):
        if pr_i[r, P_ON] == 0:
            continue
        post = pr_i[r, P_POST_POP]
        lo = pstart[post] if first <= post <= last else 0
        hi = pend[post] if first <= post <= last else 0
        pre = pr_i[r, P_PRE_POP]
        if pr_i[r, P_KIND] == KIND_STDP:  # dt_pair = 0 potentiates: arrivals first
            _arrivals(r, t, psp, ppst[pre], ppen[pre], off[pre], pr_i, pr_f, wm, W, xpre, tpre, xpost, tpost, mark,
                      etab, lcnt)
            _posts(r, t, sp, lo, hi, off[post], pr_i, pr_f, wm, W, xpre, tpre, xpost, tpost, mark, etab, lcnt)
        else:  # BrainGPT eq. 15: dt_pair = 0 depresses: post spikes first
            _posts(r, t, sp, lo, hi, off[post], pr_i, pr_f, wm, W, xpre, tpre, xpost, tpost, mark, etab, lcnt)
            _arrivals(r, t, psp, ppst[pre], ppen[pre], off[pre], pr_i, pr_f, wm, W, xpre, tpre, xpost, tpost, mark,
                      etab, lcnt)
            _normalize(r, pr_i, wm, W, crow, mark, lcnt)
    for h in range(hr_i.shape[0]):
        p = hr_i[h, H_POP]
        if hr_i[h, H_ON] == 0 or active[p] == 0:
            continue
        f = hr_f[h]
        for g in range(off[p], off[p + 1]):
            sb = sbar[g] * f[G_DECAY]
            if stepval[g] != 0:
                sb += f[G_GAIN]
            sbar[g] = sb
            vb = vbar[g] * f[G_DECAY] + f[G_GAIN] * vmem[g]
            vbar[g] = vb
            thb[g] = min(max(thb[g] + f[G_ETA] * (sb - f[G_TARGET]), f[G_THMIN]), f[G_THMAX])
            alp[g] = min(max(alp[g] + f[G_ETA_A] * (vb - f[G_VT]), f[G_AMIN]), f[G_AMAX])
            rr[g] = min(max(rr[g] + f[G_ETA_R] * (vb - f[G_VREST]), f[G_RMIN]), f[G_RMAX])
    # this step's spikes arrive next step
    for q in range(nsp):
        psp[q] = sp[q]
    for p in range(P):
        ppst[p] = 0
        ppen[p] = 0
    for p in range(first, last + 1):
        if pend[p] > pstart[p]:
            ppst[p] = pstart[p]
            ppen[p] = pend[p]
        active[p] = 0


@njit(cache=True)
def _arrivals(r, t, psp, lo, hi, base, pr_i, pr_f, wm, W, xpre, tpre, xpost, tpost, mark, etab, lcnt):
    """Pre spikes of the last step arrive now: depression from the post traces, then the pre traces."""
    if hi == lo:
        return
    npost = pr_i[r, P_NPOST]
    xo, yo, mo, wo = pr_i[r, P_XPRE], pr_i[r, P_POST], pr_i[r, P_SYN], pr_i[r, P_WOFF]
    nearest = pr_i[r, P_PAIR] == 1
    L = pr_i[r, P_ELEN]
    ep = pr_i[r, P_ETAB]
    em = ep + L + 1  # the tau_minus table follows the tau_plus one (n = 0..L each)
    kp, km = pr_f[r, F_KP], pr_f[r, F_KM]
    qw = pr_i[r, P_QW]
    am, wmin, wmax, eta = pr_f[r, F_AM], pr_f[r, F_WMIN], pr_f[r, F_WMAX], pr_f[r, F_ETA]
    braingpt = pr_i[r, P_KIND] == KIND_BRAINGPT
    mult = pr_i[r, P_MULT] == 1
    # the post traces do not change during the arrivals: read each once
    cols = np.empty(npost, np.int64)
    xs = np.empty(npost)
    m = 0
    for i in range(npost):
        if tpost[yo + i] >= 0:
            x = decay_steps_nb(etab, em, L, t - tpost[yo + i], km)
            if not nearest:
                x = xpost[yo + i] * x
            cols[m] = i
            xs[m] = x
            m += 1
            if braingpt:
                mark[yo + i] = 1
    flips = 0
    for q in range(lo, hi):
        j = psp[q] - base
        row = j * npost
        for c in range(m):
            i = cols[c]
            x = xs[c]
            w = wm[mo + row + i]
            if braingpt:
                new = w + eta * (-am * x - w)
            else:
                dw = -am * x * (w - wmin) if mult else -am * x
                new = min(max(w + dw, wmin), wmax)
            flips += _set_weight(wm, W, mo + row + i, wo + row + i, new, qw)
        bump_trace(xpre, tpre, xo + j, t, etab, ep, L, kp, nearest)
    lcnt[0] += m * (hi - lo)
    lcnt[1] += flips


@njit(cache=True)
def _posts(r, t, sp, lo, hi, base, pr_i, pr_f, wm, W, xpre, tpre, xpost, tpost, mark, etab, lcnt):
    """Post spikes now: potentiation from the pre traces, then the post traces."""
    if hi == lo:
        return
    npre, npost = pr_i[r, P_NPRE], pr_i[r, P_NPOST]
    xo, yo, mo, wo = pr_i[r, P_XPRE], pr_i[r, P_POST], pr_i[r, P_SYN], pr_i[r, P_WOFF]
    nearest = pr_i[r, P_PAIR] == 1
    L = pr_i[r, P_ELEN]
    ep = pr_i[r, P_ETAB]
    em = ep + L + 1
    kp, km = pr_f[r, F_KP], pr_f[r, F_KM]
    qw = pr_i[r, P_QW]
    ap, wmin, wmax, eta = pr_f[r, F_AP], pr_f[r, F_WMIN], pr_f[r, F_WMAX], pr_f[r, F_ETA]
    braingpt = pr_i[r, P_KIND] == KIND_BRAINGPT
    mult = pr_i[r, P_MULT] == 1
    flips = 0
    n_pre = 0
    for j in range(npre):  # row by row: the weights of one pre neuron lie together
        if tpre[xo + j] < 0:
            continue
        n_pre += 1
        x = decay_steps_nb(etab, ep, L, t - tpre[xo + j], kp)
        if not nearest:
            x = xpre[xo + j] * x
        row = j * npost
        for q in range(lo, hi):
            e = row + sp[q] - base
            w = wm[mo + e]
            if braingpt:
                new = w + eta * (ap * x - w)
            else:
                dw = ap * x * (wmax - w) if mult else ap * x
                new = min(max(w + dw, wmin), wmax)
            flips += _set_weight(wm, W, mo + e, wo + e, new, qw)
    for q in range(lo, hi):
        i = sp[q] - base
        if braingpt and n_pre:
            mark[yo + i] = 1
        bump_trace(xpost, tpost, yo + i, t, etab, em, L, km, nearest)
    lcnt[0] += n_pre * (hi - lo)
    lcnt[1] += flips


@njit(cache=True)
def _normalize(r, pr_i, wm, W, crow, mark, lcnt):
    """Eq. 16: shift every touched column (post neuron i's incoming weights) back to its sum C_i.
    Sums run over j in order (as the reference's), row by row for the memory's sake."""
    if pr_i[r, P_NORM] == 0:
        return
    npre, npost = pr_i[r, P_NPRE], pr_i[r, P_NPOST]
    yo, mo, wo, qw = pr_i[r, P_POST], pr_i[r, P_SYN], pr_i[r, P_WOFF], pr_i[r, P_QW]
    cols = np.empty(npost, np.int64)
    m = 0
    for i in range(npost):
        if mark[yo + i] != 0:
            mark[yo + i] = 0
            cols[m] = i
            m += 1
    if m == 0:
        return
    tot = np.zeros(m)
    for j in range(npre):
        row = mo + j * npost
        for c in range(m):
            tot[c] += wm[row + cols[c]]
    for c in range(m):
        tot[c] = (tot[c] - crow[yo + cols[c]]) / npre
    flips = 0
    for j in range(npre):
        row = j * npost
        for c in range(m):
            e = row + cols[c]
            flips += _set_weight(wm, W, mo + e, wo + e, wm[mo + e] - tot[c], qw)
    lcnt[0] += npre * m
    lcnt[1] += flips


@njit(cache=True)
def readout_learn(c, acc, scale, bias, b0, y, wm, w0, W, ro_i, ro_f, lcnt):
    """The readout rule after one token (``readout_error``; :class:`spikelm.plasticity.rules.ReadoutError`).

    ``c``: the token's presynaptic codes (spike counts) into the readout; ``acc``: its readout
    accumulators (the logits are ``acc * scale + bias``); ``y``: the next token. Updates the
    bias, the masters ``wm`` (flat [n_pre, n_out]) and their integer rows in ``W``, decaying
    toward ``b0`` and ``w0`` (the converted ones); outputs in order, then presynaptic neurons.
    """
    if ro_i[R_ON] == 0:
        return
    npre, npost, wo, qw = ro_i[R_NPRE], ro_i[R_NPOST], ro_i[R_WOFF], ro_i[R_QW]
    eta, eta_b, thr, lam = ro_f[R_ETA], ro_f[R_ETA_B], ro_f[R_THR], ro_f[R_DECAY]
    # softmax of the logits the token gave: exp(z - max) / their sum, summed in order
    p = np.empty(npost)
    mx = -np.inf
    for v in range(npost):
        p[v] = acc[v] * scale[v] + bias[v]
        if p[v] > mx:
            mx = p[v]
    tot = 0.0
    for v in range(npost):
        p[v] = math.exp(p[v] - mx)
        tot += p[v]
    # the presynaptic neurons that fired, and the squared norm of their codes
    nz = np.empty(npre, np.int64)
    m = 0
    nc2 = 0
    for j in range(npre):
        if c[j] != 0:
            nz[m] = j
            m += 1
            nc2 += np.int64(c[j]) * np.int64(c[j])
    keep = 1.0 - lam
    ops = 0
    flips = 0
    for v in range(npost):
        e = p[v] / tot
        if v == y:
            e = e - 1.0
        elif not abs(e) >= thr:
            continue
        b = b0[v] + keep * (bias[v] - b0[v]) if lam > 0.0 else bias[v]
        bias[v] = b - eta_b * e
        ops += 1
        upd = eta > 0.0 and nc2 > 0 and scale[v] != 0.0
        g = eta * e / (scale[v] * np.float64(nc2)) if upd else 0.0
        if lam > 0.0:  # the whole column decays toward the converted weights
            for j in range(npre):
                i = j * npost + v
                w = w0[i] + keep * (wm[i] - w0[i])
                if upd:
                    w = w - g * c[j]
                flips += _set_weight(wm, W, i, wo + i, w, qw)
            ops += npre
        elif upd:  # only the synapses whose presynaptic neuron fired
            for t in range(m):
                i = nz[t] * npost + v
                flips += _set_weight(wm, W, i, wo + i, wm[i] - g * c[nz[t]], qw)
            ops += m
    lcnt[0] += ops
    lcnt[1] += flips
