"""Numba kernels: the whole step loop of one token in one compiled call.

Mirrors :class:`spikelm.lm.simulate.NumpyRunner` operation for operation (same schedule, same
integer arithmetic, same floating-point operations in the same order), so spikes, steps,
SynOps and logits agree bit for bit; ``tests/test_lm_backends.py`` proves it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from spikelm.lm.neuron import signed_if_fire, signed_if_rule

# feeds and telescoping kinds, as in spikelm.lm.graph
EMBED, LAYERNORM, SYNAPTIC, SOFTMAX, PRODUCT, RESIDUAL, GELU, READOUT = range(8)
TELE_NONE, TELE_Q, TELE_K, TELE_V, TELE_ATT = range(5)


@njit(cache=True)
def layernorm_row(x, gain, bias, eps, qmin, qmax, out):
    """LayerNorm codes of one row of integer codes (same operations as ops.layernorm)."""
    d = x.shape[0]
    s1 = np.int64(0)
    s2 = np.int64(0)
    for c in range(d):
        xc = np.int64(x[c])
        s1 += xc
        s2 += xc * xc
    denom = math.sqrt(np.float64(d * s2 - s1 * s1) + eps)
    for c in range(d):
        y = (np.float64(d * np.int64(x[c]) - s1) / denom) * gain[c] + bias[c]
        y = math.floor(y + 0.5)
        if y < qmin:
            y = qmin
        elif y > qmax:
            y = qmax
        out[c] = np.int64(y)


@njit(cache=True)
def softmax_row(S, n, hi, lo, shift, qmax, out):
    """Probability codes of integer scores S[0..n] (same operations as ops.softmax)."""
    m = S[0]
    for j in range(1, n + 1):
        if S[j] > m:
            m = S[j]
    mask = (np.int64(1) << shift) - 1
    Z = np.int64(0)
    for j in range(n + 1):
        dist = m - S[j]
        h = dist >> shift
        e = np.int64(0)
        if h < hi.shape[0]:
            e = np.int64(math.floor(hi[h] * lo[dist & mask] + 0.5))
        out[j] = e
        Z += e
    for j in range(n + 1):
        out[j] = (2 * out[j] * qmax + Z) // (2 * Z)


@njit(cache=True)
def _start(p, n, feed, arg, off, in_ptr, in_idx, qmin, qmax, counts, acc, S,
           ln_gain, ln_bias, ln_eps, res_gain, res_shift, gelu_lut, sm_hi, sm_lo, sm_shift,
           H, ctx, op_evals, scratch):
    f = feed[p]
    b = off[p]
    size = off[p + 1] - b
    if f == LAYERNORM:
        i = in_idx[in_ptr[p]]
        a = arg[p]
        layernorm_row(counts[n, off[i] : off[i + 1]], ln_gain[a], ln_bias[a], ln_eps[a],
                      qmin[p], qmax[p], scratch)
        for c in range(size):
            acc[b + c] = scratch[c]
        op_evals[p] += size
    elif f == RESIDUAL:
        i0 = off[in_idx[in_ptr[p]]]
        i1 = off[in_idx[in_ptr[p] + 1]]
        a = arg[p]
        k = res_shift[a]
        half = (np.int64(1) << k) >> 1
        for c in range(size):
            u = np.int64(counts[n, i0 + c]) * res_gain[a, 0] + np.int64(counts[n, i1 + c]) * res_gain[a, 1]
            u = (u + half) >> k
            if u < qmin[p]:
                u = qmin[p]
            elif u > qmax[p]:
                u = qmax[p]
            acc[b + c] = u
        op_evals[p] += size
    elif f == GELU:
        i = in_idx[in_ptr[p]]
        a = arg[p]
        for c in range(size):
            acc[b + c] = gelu_lut[a, np.int64(counts[n, off[i] + c]) - qmin[i]]
        op_evals[p] += size
    elif f == SOFTMAX:
        l = arg[p]
        for h in range(H):
            softmax_row(S[l, h], n, sm_hi[l], sm_lo[l], sm_shift[l], qmax[p], scratch)
            for j in range(n + 1):
                acc[b + h * ctx + j] = scratch[j]
        op_evals[p] += H * (n + 1)


@njit(cache=True)
def _activate(p, n, off, unit, qmin, qmax, counts, acc, gain, offset, alist, alen):
    """List the neurons of population p able to fire."""
    b = off[p]
    m = 0
    for i in range(off[p + 1] - b):
        g = b + i
        if signed_if_fire(acc[g], counts[n, g], gain[g], offset[g], unit[p], qmin[p], qmax[p]) != 0:
            alist[b + m] = i
            m += 1
    alen[p] = m


@njit(cache=True)
def run_token(fresh, n, emb, max_steps, st,
              feed, tele, arg, lbase, off, in_ptr, in_idx, qmin, qmax, unit, gain, offset,
              out_ptr, out_idx, pj_post, pj_woff, pj_npost, W,
              counts, acc, S, kcache,
              ln_gain, ln_bias, ln_eps, res_gain, res_shift, gelu_lut, sm_hi, sm_lo, sm_shift,
              H, dh, ctx,
              spikes_pos, spikes_neg, op_evals, synops_proj, synops_tele,
              started, done, alist, alen, stepval, sp, pstart, pend, scratch,
              record, clock, ev_step, ev_pop, ev_node, ev_val, ev_n):
    """Run position n to quiescence. Returns 0 (quiescent), 1 (max_steps hit), 2 (event buffer full).

    Resumable: all state lives in the arrays; ``st[0]`` counts the token's steps.
    """
    P = feed.shape[0]
    Rs = counts.shape[1]
    if fresh:
        acc[:] = 0
        for l in range(S.shape[0]):
            for h in range(H):
                for j in range(n + 1):
                    S[l, h, j] = 0
        started[:] = 0
        done[:] = 0
        alen[:] = 0
        for c in range(emb.shape[0]):
            acc[off[0] + c] = emb[c]
        started[0] = 1
        op_evals[0] += emb.shape[0]
        _activate(0, n, off, unit, qmin, qmax, counts, acc, gain, offset, alist, alen)
        st[0] = 0
    steps = st[0]
    crow = counts[n]  # this position's spike counts
    # populations are in topological order: the ones at work lie in [first, last]
    first = 0
    last = 0
    for p in range(P):
        if started[p] == 1:
            last = p
    while True:
        while first < P and done[first] == 1:
            first += 1
        if first == P:
            st[0] = steps
            return 0
        if steps >= max_steps:
            st[0] = steps
            return 1
        if record and ev_n[0] + Rs > ev_step.shape[0]:
            st[0] = steps
            return 2
        # update: started neurons that can fire, fire
        nsp = 0
        for p in range(first, last + 1):
            pstart[p] = nsp
            pend[p] = nsp
            if started[p] == 0 or done[p] == 1 or feed[p] == READOUT:
                continue
            b = off[p]
            T = unit[p]
            lo_q = qmin[p]
            hi_q = qmax[p]
            is_k = tele[p] == TELE_K
            kl = arg[lbase[p] + 5] if is_k else 0
            n_pos = 0
            m = 0
            start_nsp = nsp
            for t in range(alen[p]):
                i = alist[b + t]
                g = b + i
                c = np.int64(crow[g])
                r = 2 * (np.int64(acc[g]) * gain[g] + offset[g] - c * T)
                s = signed_if_rule(r, c, T, lo_q, hi_q)
                if s == 0:
                    continue
                crow[g] = c + s
                stepval[g] = s
                sp[nsp] = g
                nsp += 1
                if is_k:  # keep K channel-major: Q spikes read it along positions
                    kcache[kl, i, n] += s
                if s > 0:
                    n_pos += 1
                if record:
                    e = ev_n[0]
                    ev_step[e] = clock + steps
                    ev_pop[e] = p
                    ev_node[e] = n * (off[p + 1] - b) + i
                    ev_val[e] = s
                    ev_n[0] = e + 1
                if signed_if_rule(r - 2 * s * T, c + s, T, lo_q, hi_q) != 0:  # fires again next step
                    alist[b + m] = i
                    m += 1
            alen[p] = m
            pend[p] = nsp
            spikes_pos[p] += n_pos
            spikes_neg[p] += nsp - start_nsp - n_pos
        # propagate, population by population
        for p in range(first, last + 1):
            lo = pstart[p]
            hi = pend[p]
            if hi == lo:
                continue
            b = off[p]
            for e in range(out_ptr[p], out_ptr[p + 1]):
                k = out_idx[e]
                npost = pj_npost[k]
                wbase = pj_woff[k]
                tb = off[pj_post[k]]
                # views with range indices: no negative-index checks, so the loops vectorise
                a = acc[tb : tb + npost]
                for t in range(lo, hi):
                    g = sp[t]
                    wo = wbase + (g - b) * npost
                    w = W[wo : wo + npost]
                    if stepval[g] > 0:
                        for c in range(npost):
                            a[c] += w[c]
                    else:
                        for c in range(npost):
                            a[c] -= w[c]
                synops_proj[k] += npost * (hi - lo)
            tk = tele[p]
            if tk == TELE_NONE:
                continue
            lb = lbase[p]
            l = arg[lb + 5]
            oq, ok, ov, oa, oo = off[lb + 1], off[lb + 2], off[lb + 3], off[lb + 4], off[lb + 5]
            for t in range(lo, hi):
                g = sp[t]
                v = stepval[g]
                i = g - b
                if tk == TELE_Q:
                    h = i // dh
                    krow = kcache[l, i]
                    srow = S[l, h]
                    if v > 0:
                        for j in range(n):
                            srow[j] += krow[j]
                    else:
                        for j in range(n):
                            srow[j] -= krow[j]
                    srow[n] += v * (np.int64(krow[n]) - stepval[ok + i])  # K before this step
                    synops_tele[p] += n + 1
                elif tk == TELE_K:
                    S[l, i // dh, n] += v * np.int64(crow[oq + i])
                    synops_tele[p] += 1
                elif tk == TELE_ATT:
                    h = i // ctx
                    j = i % ctx
                    vb = ov + h * dh
                    orow = acc[oo + h * dh : oo + (h + 1) * dh]
                    vrow = counts[j, vb : vb + dh]
                    if j < n:  # a settled position's V
                        if v > 0:
                            for c in range(dh):
                                orow[c] += vrow[c]
                        else:
                            for c in range(dh):
                                orow[c] -= vrow[c]
                    else:  # this position's V, before this step's V spikes
                        for c in range(dh):
                            orow[c] += v * (np.int64(vrow[c]) - stepval[vb + c])
                    synops_tele[p] += dh
                else:  # TELE_V
                    acc[oo + i] += v * np.int64(crow[oa + (i // dh) * ctx + n])
                    synops_tele[p] += 1
        for t in range(nsp):
            stepval[sp[t]] = 0
        # schedule
        finished = False
        for p in range(first, last + 1):
            if started[p] == 1 and done[p] == 0 and (feed[p] == READOUT or alen[p] == 0):
                done[p] = 1
                finished = True
        if not finished:
            steps += 1
            continue
        for p in range(first, P):
            if started[p] == 1:
                continue
            ready = True
            for e in range(in_ptr[p], in_ptr[p + 1]):
                if done[in_idx[e]] == 0:
                    ready = False
                    break
            if not ready:
                continue
            started[p] = 1
            if p > last:
                last = p
            _start(p, n, feed, arg, off, in_ptr, in_idx, qmin, qmax, counts, acc, S,
                   ln_gain, ln_bias, ln_eps, res_gain, res_shift, gelu_lut, sm_hi, sm_lo, sm_shift,
                   H, ctx, op_evals, scratch)
            if feed[p] == READOUT:
                done[p] = 1
            else:
                _activate(p, n, off, unit, qmin, qmax, counts, acc, gain, offset, alist, alen)
        steps += 1


@njit(cache=True)
def row_accumulate(W, rows, signs, acc, repeats):
    """The machine's row-accumulation limit: acc += sign * W[j, :] for the given rows."""
    n = W.shape[1]
    for _ in range(repeats):
        for t in range(rows.shape[0]):
            j = rows[t]
            if signs[t] > 0:
                for c in range(n):
                    acc[c] += W[j, c]
            else:
                for c in range(n):
                    acc[c] -= W[j, c]
    return acc
