"""The compiled token loop: every step of one token, to quiescence, in one Numba call.

Mirrors :class:`spikelm.lm.runner.NumpyRunner` operation for operation (same schedule, same
integer arithmetic, same floating-point operations in the same order), so spikes, steps,
SynOps and logits agree bit for bit.

This file is the loop's source. It is not run from here: :mod:`spikelm.lm.compile` writes a
module made of this text followed by a dispatcher over the operators a graph uses (rebinding
``op_start`` and the compile flags ``TIMED`` and ``LEARN`` below), imports it, and Numba caches
it on disk. So an operator is added without an edit here, and each operator set has its own
cache. Numba prunes a branch on a False flag before compiling, so the loop without ``LEARN``
holds no learning code at all.

Arguments come in bundles (packed by :class:`spikelm.lm.numba_runner.NumbaRunner`):

- ``struct``: the graph (offsets, inputs, code ranges, gains, codings, projections, edges);
- ``state``: spike counts of every position, accumulators, Q·K^T accumulators, K cache,
  schedule flags, active lists, this step's spikes;
- ``counters``: spikes, operator evaluations, SynOps, shift-adds, phase timing;
- ``rec``: the spike event buffer;
- ``op_params``: each operator kind's packed parameters, in kind order;
- ``lrn``: ``(neur, plast)``, spike units, EI-IF neurons and plasticity
  (:mod:`spikelm.lm.learn.kernels`; used only under ``LEARN``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from spikelm.lm.codings import UNIT, spike_value_nb
from spikelm.lm.edges import MIX, SCORES, mix_a, mix_b, mul_a, mul_b, scores_a, scores_b
from spikelm.lm.learn.kernels import (EIIF, PLAIN, fire_learn, learn_step, pending_learn, record_event,
                                      start_learn)
from spikelm.lm.neuron import remainder_nb

#: compile flag: time the row additions into ``counters[-1]`` (benchmarks only)
TIMED = False
#: compile flag: spike units, EI-IF neurons and the learn phase (plasticity)
LEARN = False


def op_start(kind, n, p, arg, struct, counts, acc, S, op_params, scratch):  # pragma: no cover
    """Placeholder: the generated module defines the dispatcher over its operators."""
    raise NotImplementedError("run the loop through spikelm.lm.compile.token_loop()")


def now_ns():  # pragma: no cover - rebound to a compiled clock in TIMED modules
    return 0


@njit(cache=True)
def _activate(p, n, off, shift, gain, offset, qmin, qmax, counts, acc, alist, alen):
    """List the neurons of population p that still have a remainder to fire."""
    b = off[p]
    m = 0
    for i in range(off[p + 1] - b):
        g = b + i
        if remainder_nb(acc[g], counts[n, g], gain[g], offset[g], shift[p], qmin[p], qmax[p]) != 0:
            alist[b + m] = i
            m += 1
    alen[p] = m


def run_token(fresh, n, emb, max_steps, struct, state, counters, rec, op_params, lrn):
    """Run position n to quiescence. Returns 0 (quiescent), 1 (max_steps hit), 2 (event buffer full).

    Resumable: all state lives in the arrays; ``state[-1][0]`` counts the token's steps.
    """
    (off, in_ptr, in_idx, qmin, qmax, shift, gain, offset, op_kind, op_arg, spiking, coding, stim,
     out_ptr, out_idx, pj_post, pj_woff, pj_npost, W,
     fac_edge, fac_side, ed_kind, ed_a, ed_b, ed_out, ed_heads, ed_group, ed_dh, ed_slot, kslot) = struct
    counts, acc, S, kcache, started, done, alist, alen, stepval, sp, pstart, pend, scratch, st = state
    spikes_pos, spikes_neg, op_evals, synops, synops_products, shift_adds, timing = counters
    record, clock, ev_step, ev_pop, ev_node, ev_val, ev_n = rec
    neur, plast = lrn
    lkind = neur[0]
    ostruct = (off, in_ptr, in_idx, qmin, qmax)
    P = off.shape[0] - 1
    Rs = counts.shape[1]
    if fresh:
        acc[:] = 0
        for s in range(S.shape[0]):
            for h in range(S.shape[1]):
                for j in range(n + 1):
                    S[s, h, j] = 0
        started[:] = 0
        done[:] = 0
        alen[:] = 0
        for c in range(emb.shape[0]):
            acc[off[stim] + c] = emb[c]
        started[stim] = 1
        op_evals[stim] += emb.shape[0]
        if LEARN and lkind[stim] != PLAIN:
            start_learn(stim, n, 0, struct, state, neur)
        else:
            _activate(stim, n, off, shift, gain, offset, qmin, qmax, counts, acc, alist, alen)
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
        # update: started neurons with a remainder fire one spike of their coding's value
        nsp = 0
        for p in range(first, last + 1):
            pstart[p] = nsp
            pend[p] = nsp
            if started[p] == 0 or done[p] == 1 or spiking[p] == 0:
                continue
            if LEARN and lkind[p] != PLAIN:
                nsp = fire_learn(p, n, nsp, steps, struct, state, counters, rec, neur)
                pend[p] = nsp
                continue
            b = off[p]
            k = shift[p]
            lo_q = qmin[p]
            hi_q = qmax[p]
            cod = coding[p]
            ks = kslot[p]
            n_pos = 0
            m = 0
            start_nsp = nsp
            for t in range(alen[p]):
                i = alist[b + t]
                g = b + i
                c = np.int64(crow[g])
                rem = remainder_nb(acc[g], c, gain[g], offset[g], k, lo_q, hi_q)
                s = spike_value_nb(cod, rem)
                if s == 0:
                    continue
                crow[g] = c + s
                stepval[g] = s
                sp[nsp] = g
                nsp += 1
                if ks >= 0:  # keep K channel-major: Q spikes read it along positions
                    kcache[ks, i, n] += s
                if s > 0:
                    n_pos += 1
                if record:
                    record_event(rec, steps, p, n * (off[p + 1] - b) + i, s)
                if rem != s:  # fires again next step
                    alist[b + m] = i
                    m += 1
            alen[p] = m
            pend[p] = nsp
            spikes_pos[p] += n_pos
            spikes_neg[p] += nsp - start_nsp - n_pos
        if LEARN:
            learn_step(n, steps, clock, first, last, nsp, struct, state, neur, plast)
        # propagate, population by population
        for p in range(first, last + 1):
            lo = pstart[p]
            hi = pend[p]
            if hi == lo:
                continue
            b = off[p]
            n_shifted = 0
            if coding[p] != UNIT or (LEARN and lkind[p] != PLAIN):  # spike units: multiples of the unit
                for t in range(lo, hi):
                    v = stepval[sp[t]]
                    if v != 1 and v != -1:
                        n_shifted += 1
            if TIMED:
                t0 = now_ns()
            for e in range(out_ptr[p], out_ptr[p + 1]):
                kk = out_idx[e]
                npost = pj_npost[kk]
                wbase = pj_woff[kk]
                tb = off[pj_post[kk]]
                # views with range indices: no negative-index checks, so the loops vectorise
                a = acc[tb : tb + npost]
                for t in range(lo, hi):
                    g = sp[t]
                    wo = wbase + (g - b) * npost
                    w = W[wo : wo + npost]
                    v = stepval[g]
                    for c in range(npost):
                        a[c] += v * w[c]
                synops[kk] += npost * (hi - lo)
                shift_adds[p] += npost * n_shifted
            if TIMED:
                timing[0] += now_ns() - t0
                timing[1] += 1
            fe = fac_edge[p]
            if fe < 0:
                continue
            kind = ed_kind[fe]
            side = fac_side[p]
            dh = ed_dh[fe]
            grp = ed_group[fe]
            if kind == SCORES:
                if side == 0:
                    done_ops = scores_a(sp, lo, hi, b, stepval, n, S, kcache, ed_slot[fe], off[ed_b[fe]], dh, grp)
                else:
                    done_ops = scores_b(sp, lo, hi, b, stepval, n, S, crow, ed_slot[fe], off[ed_a[fe]], dh, grp)
            elif kind == MIX:
                ctx = (off[ed_a[fe] + 1] - off[ed_a[fe]]) // ed_heads[fe]
                if side == 0:
                    done_ops = mix_a(sp, lo, hi, b, stepval, n, acc, counts, off[ed_b[fe]], off[ed_out[fe]], dh, grp, ctx)
                else:
                    done_ops = mix_b(sp, lo, hi, b, stepval, n, acc, crow, off[ed_a[fe]], off[ed_out[fe]], dh, grp, ctx)
            else:  # MUL
                if side == 0:
                    done_ops = mul_a(sp, lo, hi, b, stepval, acc, crow, off[ed_b[fe]], off[ed_out[fe]])
                else:
                    done_ops = mul_b(sp, lo, hi, b, stepval, acc, crow, off[ed_a[fe]], off[ed_out[fe]])
            synops_products[p] += done_ops
            shift_adds[p] += done_ops // (hi - lo) * n_shifted  # every spike of p costs the same here
        for t in range(nsp):
            stepval[sp[t]] = 0
        # schedule
        finished = False
        for p in range(first, last + 1):
            if LEARN and started[p] == 1 and done[p] == 0 and lkind[p] == EIIF:
                pending_learn(p, n, steps, struct, state, neur)  # EI-IF: after this step's learning
            if started[p] == 1 and done[p] == 0 and (spiking[p] == 0 or alen[p] == 0):
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
            if op_kind[p] >= 0:
                op_evals[p] += op_start(op_kind[p], n, p, op_arg[p], ostruct, counts, acc, S, op_params, scratch)
            if spiking[p] == 0:
                done[p] = 1
            elif LEARN and lkind[p] != PLAIN:
                start_learn(p, n, steps + 1, struct, state, neur)
            else:
                _activate(p, n, off, shift, gain, offset, qmin, qmax, counts, acc, alist, alen)
        steps += 1


@njit(cache=True)
def row_accumulate(W, rows, signs, acc, repeats):
    """The machine's row-accumulation limit: acc += W[j, :] or -= W[j, :] for the given rows and
    signs, nothing else (the benchmark's yardstick for the synaptic phase)."""
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
