"""The compiled learn phase, called by the numba time loop after the update phase.

The twin of :func:`spikelm.plasticity.interface.learn_numpy`: the same rules, the same order
of operations per synapse and neuron (see that module for the packed layout).
"""
from __future__ import annotations


from numba import njit

from .interface import (EIIF_ROW_ALPHA, EIIF_ROW_R, EIIF_ROW_THETA, EIIF_ROW_V, F_AM, F_AP, F_ETA, F_KM, F_KP,
                        F_SDBIAS, F_SDDECAY, F_WMAX, F_WMIN, G_AMAX, G_AMIN, G_DA, G_DECAY, G_ETA, G_ETA_A, G_ETA_R,
                        G_GAIN, G_RMAX, G_RMIN, G_TARGET, G_THMAX, G_THMIN, G_VREST, G_VT, H_HI, H_KIND, H_LO, H_OFF, H_ROW,
                        H_ON, KIND_BRAINGPT, KIND_BRAINGPT_HOMEO, KIND_HOMEO_LIF, KIND_HOMEO_ROW, KIND_STDP,
                        LIF_ROW_A, P_CSC, P_CSCP, P_DSYN, P_ELEN, P_ETAB, P_EVERY, P_GPTR, P_GRP, P_PGPTR, P_KIND, P_MAXD, P_MODE, P_MULT, P_NORM,
                        P_NPOST, P_NPRE, P_NSYN, P_ON, P_PAIR, P_POST, P_POSTLO, P_PRELO, P_RING, P_RINGN, P_SYN)
from .interface import decay_steps_nb as _decay  # the trace decay converted LMs share


@njit(cache=True)
def _clip(x, lo, hi):
    return min(max(x, lo), hi)


@njit(cache=True)
def _arrivals(t, r, pr_i, pr_f, w, ring, ring_n, ring_t, ring_cur, pre_gptr, grp_ptr, grp_delay, dsyn, dpost, etab,
              xgrp, tgrp, sdd, xpost, tpost, mark):
    """Pre spikes reaching a delay group now: depression from the post trace, then the group's pre trace."""
    kind = pr_i[r, P_KIND]
    nearest = pr_i[r, P_PAIR]
    mult = pr_i[r, P_MULT]
    izh = pr_i[r, P_MODE]
    maxd = pr_i[r, P_MAXD]
    ns = maxd + 1
    n_pre = pr_i[r, P_NPRE]
    syn0 = pr_i[r, P_SYN]
    po = pr_i[r, P_POST]
    rg = pr_i[r, P_RING]
    rn = pr_i[r, P_RINGN]
    pg = pr_i[r, P_PGPTR]
    gp = pr_i[r, P_GPTR]
    go = pr_i[r, P_GRP]
    ds = pr_i[r, P_DSYN]
    L = pr_i[r, P_ELEN]
    ep = pr_i[r, P_ETAB]
    em = ep + L + 1
    am = pr_f[r, F_AM]
    kp = pr_f[r, F_KP]
    km = pr_f[r, F_KM]
    wmin = pr_f[r, F_WMIN]
    wmax = pr_f[r, F_WMAX]
    eta = pr_f[r, F_ETA]
    for d in range(1, maxd + 1):
        sl = (t - d) % ns
        if ring_t[rn + sl] != t - d:
            continue
        for m in range(ring_n[rn + sl]):
            k = rg + sl * n_pre + m
            g = ring_cur[k]
            end = pre_gptr[pg + ring[k] + 1]
            while g < end and grp_delay[go + g] < d:  # groups missed while the rule was off
                g += 1
            if g >= end or grp_delay[go + g] != d:
                ring_cur[k] = g
                continue
            ring_cur[k] = g + 1
            for q in range(ds + grp_ptr[gp + g], ds + grp_ptr[gp + g + 1]):
                i = po + dpost[q]
                if tpost[i] < 0:
                    continue
                x = _decay(etab, em, L, t - tpost[i], km)
                if not nearest:
                    x = xpost[i] * x
                if kind == KIND_BRAINGPT:
                    s = syn0 + dsyn[q]
                    w[s] = w[s] + eta * (-am * x - w[s])
                    mark[i] = 1
                else:
                    if izh and not mult:
                        sdd[q] = sdd[q] + -am * x
                        continue
                    s = syn0 + dsyn[q]
                    if mult:
                        dw = -am * x * (w[s] - wmin)
                    else:
                        dw = -am * x
                    if izh:
                        sdd[q] = sdd[q] + dw
                    else:
                        w[s] = _clip(w[s] + dw, wmin, wmax)
            gg = go + g
            if nearest:  # the pre trace is 1 at the last arrival: only its step is kept
                pass
            elif tgrp[gg] >= 0:
                xgrp[gg] = xgrp[gg] * _decay(etab, ep, L, t - tgrp[gg], kp) + 1.0
            else:
                xgrp[gg] = 1.0
            tgrp[gg] = t


@njit(cache=True)
def _posts(t, r, out_idx, nout, pr_i, pr_f, w, csc_ptr, csc_syn, cgrp, etab, xgrp, tgrp, sd, xpost, tpost, mark):
    """Post spikes now: potentiation of the incoming synapses (reverse index), then the post trace."""
    kind = pr_i[r, P_KIND]
    nearest = pr_i[r, P_PAIR]
    mult = pr_i[r, P_MULT]
    izh = pr_i[r, P_MODE]
    n_post = pr_i[r, P_NPOST]
    syn0 = pr_i[r, P_SYN]
    po = pr_i[r, P_POST]
    cp = pr_i[r, P_CSCP]
    cs = pr_i[r, P_CSC]
    go = pr_i[r, P_GRP]
    post_lo = pr_i[r, P_POSTLO]
    L = pr_i[r, P_ELEN]
    ep = pr_i[r, P_ETAB]
    em = ep + L + 1
    ap = pr_f[r, F_AP]
    kp = pr_f[r, F_KP]
    km = pr_f[r, F_KM]
    wmin = pr_f[r, F_WMIN]
    wmax = pr_f[r, F_WMAX]
    eta = pr_f[r, F_ETA]
    for e in range(nout):
        g = out_idx[e]
        if g < post_lo or g >= post_lo + n_post:
            continue
        i = g - post_lo
        for q in range(csc_ptr[cp + i], csc_ptr[cp + i + 1]):
            gg = go + cgrp[cs + q]
            if tgrp[gg] < 0:
                continue
            x = _decay(etab, ep, L, t - tgrp[gg], kp)
            if not nearest:
                x = xgrp[gg] * x
            if kind == KIND_BRAINGPT:
                s = syn0 + csc_syn[cs + q]
                w[s] = w[s] + eta * (ap * x - w[s])
                mark[po + i] = 1
            else:
                if izh and not mult:
                    sd[syn0 + q] = sd[syn0 + q] + ap * x
                    continue
                s = syn0 + csc_syn[cs + q]
                if mult:
                    dw = ap * x * (wmax - w[s])
                else:
                    dw = ap * x
                if izh:
                    sd[syn0 + q] = sd[syn0 + q] + dw
                else:
                    w[s] = _clip(w[s] + dw, wmin, wmax)
        k = po + i
        if nearest:
            xpost[k] = 1.0
        elif tpost[k] >= 0:
            xpost[k] = xpost[k] * _decay(etab, em, L, t - tpost[k], km) + 1.0
        else:
            xpost[k] = 1.0
        tpost[k] = t


@njit(cache=True)
def _projection(t, r, out_idx, nout, w, plast):
    (pr_i, pr_f, hr_i, hr_f, ring, ring_n, ring_t, ring_cur, csc_ptr, csc_syn, cgrp, pre_gptr, grp_ptr, grp_delay,
     dsyn, dpost, etab, xgrp, tgrp, sd, sdd, xpost, tpost, crow, mark, rate, h, vbar) = plast
    if pr_i[r, P_KIND] == KIND_STDP:  # dt_pair = 0 potentiates: arrivals first
        _arrivals(t, r, pr_i, pr_f, w, ring, ring_n, ring_t, ring_cur, pre_gptr, grp_ptr, grp_delay, dsyn, dpost,
                  etab, xgrp, tgrp, sdd, xpost, tpost, mark)
        _posts(t, r, out_idx, nout, pr_i, pr_f, w, csc_ptr, csc_syn, cgrp, etab, xgrp, tgrp, sd, xpost, tpost, mark)
    else:  # BrainGPT eq. 15: dt_pair = 0 depresses: post spikes first
        _posts(t, r, out_idx, nout, pr_i, pr_f, w, csc_ptr, csc_syn, cgrp, etab, xgrp, tgrp, sd, xpost, tpost, mark)
        _arrivals(t, r, pr_i, pr_f, w, ring, ring_n, ring_t, ring_cur, pre_gptr, grp_ptr, grp_delay, dsyn, dpost,
                  etab, xgrp, tgrp, sdd, xpost, tpost, mark)
        po = pr_i[r, P_POST]
        syn0 = pr_i[r, P_SYN]
        cp = pr_i[r, P_CSCP]
        cs = pr_i[r, P_CSC]
        norm = pr_i[r, P_NORM]
        for i in range(pr_i[r, P_NPOST]):
            if mark[po + i] == 0:
                continue
            mark[po + i] = 0
            if norm:
                a = csc_ptr[cp + i]
                b = csc_ptr[cp + i + 1]
                tot = 0.0
                for q in range(a, b):
                    tot += w[syn0 + csc_syn[cs + q]]
                shift = (tot - crow[po + i]) / (b - a)
                for q in range(a, b):
                    s = syn0 + csc_syn[cs + q]
                    w[s] = w[s] - shift
    # record this step's pre spikes for their future arrivals
    ns = pr_i[r, P_MAXD] + 1
    n_pre = pr_i[r, P_NPRE]
    pre_lo = pr_i[r, P_PRELO]
    rg = pr_i[r, P_RING]
    pg = pr_i[r, P_PGPTR]
    sl = t % ns
    c = 0
    for e in range(nout):
        g = out_idx[e]
        if pre_lo <= g < pre_lo + n_pre:
            ring[rg + sl * n_pre + c] = g - pre_lo
            ring_cur[rg + sl * n_pre + c] = pre_gptr[pg + g - pre_lo]
            c += 1
    ring_n[pr_i[r, P_RINGN] + sl] = c
    ring_t[pr_i[r, P_RINGN] + sl] = t
    if pr_i[r, P_MODE] and (t + 1) % pr_i[r, P_EVERY] == 0:
        wmin = pr_f[r, F_WMIN]
        wmax = pr_f[r, F_WMAX]
        bias = pr_f[r, F_SDBIAS]
        decay = pr_f[r, F_SDDECAY]
        syn0 = pr_i[r, P_SYN]
        ds = pr_i[r, P_DSYN]
        for q in range(ds, ds + pr_i[r, P_NSYN]):
            s = syn0 + dsyn[q]
            w[s] = w[s] + sdd[q]
            sdd[q] = sdd[q] * decay
        cs = pr_i[r, P_CSC]
        for q in range(pr_i[r, P_NSYN]):
            s = syn0 + csc_syn[cs + q]
            w[s] = _clip(w[s] + (bias + sd[syn0 + q]), wmin, wmax)
            sd[syn0 + q] = sd[syn0 + q] * decay


@njit(cache=True)
def _population(t, r, out_idx, nout, S, plast):
    (pr_i, pr_f, hr_i, hr_f, ring, ring_n, ring_t, ring_cur, csc_ptr, csc_syn, cgrp, pre_gptr, grp_ptr, grp_delay,
     dsyn, dpost, etab, xgrp, tgrp, sd, sdd, xpost, tpost, crow, mark, rate, h, vbar) = plast
    kind = hr_i[r, H_KIND]
    lo = hr_i[r, H_LO]
    hi = hr_i[r, H_HI]
    off = hr_i[r, H_OFF] - lo
    if hr_i[r, H_ON] == 0:
        if kind == KIND_HOMEO_LIF:  # frozen: keep the offset in the threshold row
            da = hr_f[r, G_DA]
            for n in range(lo, hi):
                S[LIF_ROW_A, n] += h[off + n] / da - h[off + n]
        return
    decay = hr_f[r, G_DECAY]
    gain = hr_f[r, G_GAIN]
    for n in range(lo, hi):
        rate[off + n] *= decay
    for e in range(nout):
        g = out_idx[e]
        if lo <= g < hi:
            rate[off + g] += gain
    eta = hr_f[r, G_ETA]
    target = hr_f[r, G_TARGET]
    thmin = hr_f[r, G_THMIN]
    thmax = hr_f[r, G_THMAX]
    if kind == KIND_BRAINGPT_HOMEO:
        for n in range(lo, hi):
            k = off + n
            vbar[k] = vbar[k] * decay + gain * S[EIIF_ROW_V, n]
            S[EIIF_ROW_THETA, n] = _clip(S[EIIF_ROW_THETA, n] + eta * (rate[k] - target), thmin, thmax)
            S[EIIF_ROW_ALPHA, n] = _clip(S[EIIF_ROW_ALPHA, n] + hr_f[r, G_ETA_A] * (vbar[k] - hr_f[r, G_VT]),
                                         hr_f[r, G_AMIN], hr_f[r, G_AMAX])
            S[EIIF_ROW_R, n] = _clip(S[EIIF_ROW_R, n] + hr_f[r, G_ETA_R] * (vbar[k] - hr_f[r, G_VREST]),
                                     hr_f[r, G_RMIN], hr_f[r, G_RMAX])
    elif kind == KIND_HOMEO_ROW:
        row = hr_i[r, H_ROW]
        for n in range(lo, hi):
            S[row, n] = _clip(S[row, n] + eta * (rate[off + n] - target), thmin, thmax)
    elif kind == KIND_HOMEO_LIF:
        da = hr_f[r, G_DA]
        for n in range(lo, hi):
            k = off + n
            hn = _clip(h[k] + eta * (rate[k] - target), thmin, thmax)
            S[LIF_ROW_A, n] += hn / da - h[k]
            h[k] = hn


@njit(cache=True)
def learn(t, out_idx, out_val, nout, S, w, indptr, post, delay, proj_ptr_off, proj_syn_off, proj_pre_lo,
          proj_post_lo, pop_lo, pop_hi, plast):
    pr_i = plast[0]
    hr_i = plast[2]
    for r in range(pr_i.shape[0]):
        if pr_i[r, P_ON]:
            _projection(t, r, out_idx, nout, w, plast)
    for r in range(hr_i.shape[0]):
        _population(t, r, out_idx, nout, S, plast)
