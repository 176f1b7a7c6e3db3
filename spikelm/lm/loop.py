"""The compiled token loop: every step of one token, to quiescence, in one Numba call.

Mirrors :class:`spikelm.lm.runner.NumpyRunner` operation for operation (same schedule, same
integer arithmetic, same floating-point operations in the same order), so spikes, steps,
SynOps and logits agree bit for bit.

This file is the loop's source. It is not run from here: :mod:`spikelm.lm.compile` writes a
module made of this text followed by a dispatcher over the operators a graph uses (rebinding
``op_start`` and the compile flags ``TIMED`` and ``LEARN`` below) that compiles the functions
named in ``COMPILED``, imports it, and Numba caches it on disk. So an operator is added
without an edit here, and each operator set has its own cache. Numba prunes a branch on a
False flag before compiling, so the loop without ``LEARN`` holds no learning code at all.

Arguments are the named bundles of :mod:`spikelm.lm.bundles`: ``struct`` (the graph),
``state``, ``counters``, ``rec`` (the event buffer), ``op_params`` (each operator kind's
packed parameters, in kind order) and ``lrn`` (spike units, EI-IF neurons and plasticity;
used only under ``LEARN``). :func:`run_token` reads their fields once per call, then runs the
steps; each step's phases are marked in it: **update** (every neuron kind decides its spike,
then one emission block records it), **learn** (:func:`spikelm.lm.learn.kernels.learn_step`),
**propagate** (rows, then the product edges), **settle** and **start**. They stay in this one
function on purpose: a helper called every step re-reads the bundles' arrays, and every array
read out of a bundle costs Numba an atomic reference count; measured on the demo, per-step
helpers made a token 1.9x slower, and a helper for the start phase alone 3 % slower. The
helpers run once per token (:func:`begin_token`) or take plain arrays (:func:`activate`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from spikelm.lm.codings import UNIT, spike_value_nb
from spikelm.lm.edges import MIX, SCORES, mix_a, mix_b, mul_a, mul_b, scores_a, scores_b
from spikelm.lm.events import record_spikes
from spikelm.lm.learn.kernels import EIIF, PLAIN, UNITS, learn_step, pending_learn, start_learn
from spikelm.lm.learn.neurons import eiif_fire_nb, unit_remainder_nb, unit_spike_nb
from spikelm.lm.neuron import remainder_nb

#: compile flag: time the row additions into ``counters.timing`` (benchmarks only)
TIMED = False
#: compile flag: spike units, EI-IF neurons and the learn phase (plasticity)
LEARN = False

#: what :func:`run_token` returns: the token is done; it hit max_steps; the event buffer is
#: full (flush it and call again: all state lives in the arrays)
QUIESCENT, MAX_STEPS, BUFFER_FULL = 0, 1, 2

#: the functions of this file that the generated module compiles (in its footer)
COMPILED = ("activate", "begin_token", "run_token")


def op_start(kind, n, p, arg, struct, counts, acc, S, op_params, scratch):  # pragma: no cover
    """Placeholder: the generated module defines the dispatcher over its operators."""
    raise NotImplementedError("run the loop through spikelm.lm.compile.token_loop()")


def now_ns():  # pragma: no cover - rebound to a compiled clock in TIMED modules
    return 0


def activate(p, off, shift, gain, offset, qmin, qmax, counts_n, acc, alist, alen):
    """List the neurons of plain population p that still have a remainder to fire (arrays
    passed one by one: it runs at every population start, where reading them out of the
    bundles again would cost their reference counts)."""
    b = off[p]
    m = 0
    for i in range(off[p + 1] - b):
        g = b + i
        if remainder_nb(acc[g], counts_n[g], gain[g], offset[g], shift[p], qmin[p], qmax[p]) != 0:
            alist[b + m] = i
            m += 1
    alen[p] = m


def begin_token(n, emb, struct, state, counters, lrn):
    """A fresh token at position n: clear the position's work arrays, inject its embedding codes."""
    S = state.S
    state.acc[:] = 0
    for s in range(S.shape[0]):
        for h in range(S.shape[1]):
            for j in range(n + 1):
                S[s, h, j] = 0
    state.started[:] = 0
    state.done[:] = 0
    state.alen[:] = 0
    stim = struct.stim
    b = struct.off[stim]
    for c in range(emb.shape[0]):
        state.acc[b + c] = emb[c]
    state.started[stim] = 1
    counters.op_evals[stim] += emb.shape[0]
    if LEARN and lrn.neur.lkind[stim] != PLAIN:
        start_learn(stim, n, 0, struct, state, lrn.neur)
    else:
        activate(stim, struct.off, struct.shift, struct.gain, struct.offset, struct.qmin, struct.qmax,
                 state.counts[n], state.acc, state.alist, state.alen)
    state.st[0] = 0


def run_token(fresh, n, emb, max_steps, struct, state, counters, rec, op_params, lrn):
    """Run position n to quiescence; returns QUIESCENT, MAX_STEPS or BUFFER_FULL.

    Resumable: all state lives in the arrays; ``state.st[0]`` counts the token's steps.
    """
    if fresh:
        begin_token(n, emb, struct, state, counters, lrn)
    # every array, read out of its bundle once (see the module docstring)
    off, qmin, qmax, shift, gain, offset = struct.off, struct.qmin, struct.qmax, struct.shift, struct.gain, struct.offset
    spiking, coding, kslot, W = struct.spiking, struct.coding, struct.kslot, struct.W
    out_ptr, out_idx, pj_post, pj_woff, pj_npost = struct.out_ptr, struct.out_idx, struct.pj_post, struct.pj_woff, \
        struct.pj_npost
    fac_edge, fac_side, ed_kind, ed_a, ed_b, ed_out = struct.fac_edge, struct.fac_side, struct.ed_kind, struct.ed_a, \
        struct.ed_b, struct.ed_out
    ed_heads, ed_group, ed_dh, ed_slot = struct.ed_heads, struct.ed_group, struct.ed_dh, struct.ed_slot
    ed_window = struct.ed_window
    counts, acc, S, kcache = state.counts, state.acc, state.S, state.kcache
    started, done, alist, alen = state.started, state.done, state.alist, state.alen
    stepval, sp, pstart, pend, st = state.stepval, state.sp, state.pstart, state.pend, state.st
    spikes_pos, spikes_neg, synops, synops_products, shift_adds, timing = counters.spikes_pos, counters.spikes_neg, \
        counters.synops, counters.synops_products, counters.shift_adds, counters.timing
    record, ev_n, ev_size = rec.record, rec.n, rec.step.shape[0]
    in_ptr, in_idx, op_kind, op_arg, op_graph = struct.in_ptr, struct.in_idx, struct.op_kind, struct.op_arg, \
        struct.op_graph
    op_evals, scratch = counters.op_evals, state.scratch
    neur = lrn.neur
    lkind, unit, vmem, xin, tstart, nspk, active = neur.lkind, neur.unit, neur.vmem, neur.xin, neur.tstart, \
        neur.nspk, neur.active
    theta_base, alpha, rr = neur.theta_base, neur.alpha, neur.r
    P = off.shape[0] - 1
    R_spiking = counts.shape[1]
    counts_n = counts[n]  # this position's spike counts
    steps = st[0]
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
            return QUIESCENT
        if steps >= max_steps:
            st[0] = steps
            return MAX_STEPS
        if record and ev_n[0] + R_spiking > ev_size:
            st[0] = steps
            return BUFFER_FULL

        # ---- update: every started neuron with something left fires one spike
        nsp = 0
        for p in range(first, last + 1):
            pstart[p] = nsp
            pend[p] = nsp
            if started[p] == 0 or done[p] == 1 or spiking[p] == 0:
                continue
            b = off[p]
            size = off[p + 1] - b
            lo_q = qmin[p]
            hi_q = qmax[p]
            cod = coding[p]
            ks = kslot[p]
            kind_p = PLAIN
            todo = alen[p]  # the listed neurons (EI-IF: all, they have no list)
            t_win = 0
            if LEARN:
                kind_p = lkind[p]
                if kind_p != PLAIN:
                    active[p] = 1
                    t_win = steps - tstart[p]
                if kind_p == EIIF:
                    todo = size
            n_pos = 0
            m = 0
            start = nsp
            for tt in range(todo):
                i = alist[b + tt]
                if LEARN and kind_p == EIIF:
                    i = tt
                g = b + i
                c = np.int64(counts_n[g])
                # the neuron's spike: its kind decides (spikelm.lm.neuron, spikelm.lm.learn.neurons)
                if LEARN and kind_p == EIIF:
                    s, vm = eiif_fire_nb(vmem[g], xin[g], t_win, theta_base[g], alpha[g], rr[g], c, lo_q, hi_q)
                    vmem[g] = vm
                    again = False
                elif LEARN and kind_p == UNITS:
                    rem = unit_remainder_nb(acc[g], c, gain[g], offset[g], shift[p], lo_q, hi_q, unit[g])
                    s = unit_spike_nb(cod, rem, unit[g])
                    again = rem != s
                else:
                    rem = remainder_nb(acc[g], c, gain[g], offset[g], shift[p], lo_q, hi_q)
                    s = spike_value_nb(cod, rem)
                    again = rem != s
                if s == 0:
                    continue
                # the one emission path, for every neuron kind
                counts_n[g] = c + s
                stepval[g] = s
                sp[nsp] = g
                nsp += 1
                if ks >= 0:  # keep K channel-major: Q spikes read it along positions
                    kcache[ks, i, n] += s
                if s > 0:
                    n_pos += 1
                if LEARN and kind_p != PLAIN:
                    nspk[g] += 1
                if again:  # fires again next step
                    alist[b + m] = i
                    m += 1
            if not (LEARN and kind_p == EIIF):
                alen[p] = m
            spikes_pos[p] += n_pos
            spikes_neg[p] += nsp - start - n_pos
            if record:
                record_spikes(rec, steps, p, n, b, size, sp, stepval, start, nsp)
            pend[p] = nsp

        # ---- learn
        if LEARN:
            learn_step(n, steps, rec.clock, first, last, nsp, struct, state, neur, lrn.plast)

        # ---- propagate, population by population: weight rows, then product edges
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
                    win = ed_window[fe]
                    first_key = n + 1 - win if 0 < win < n + 1 else 0
                    done_ops = scores_a(sp, lo, hi, b, stepval, n, S, kcache, ed_slot[fe], off[ed_b[fe]], dh, grp,
                                        first_key)
                else:
                    done_ops = scores_b(sp, lo, hi, b, stepval, n, S, counts_n, ed_slot[fe], off[ed_a[fe]], dh, grp)
            elif kind == MIX:
                ctx = (off[ed_a[fe] + 1] - off[ed_a[fe]]) // ed_heads[fe]
                if side == 0:
                    done_ops = mix_a(sp, lo, hi, b, stepval, n, acc, counts, off[ed_b[fe]], off[ed_out[fe]], dh, grp,
                                     ctx)
                else:
                    done_ops = mix_b(sp, lo, hi, b, stepval, n, acc, counts_n, off[ed_a[fe]], off[ed_out[fe]], dh, grp,
                                     ctx)
            else:  # MUL
                if side == 0:
                    done_ops = mul_a(sp, lo, hi, b, stepval, acc, counts_n, off[ed_b[fe]], off[ed_out[fe]])
                else:
                    done_ops = mul_b(sp, lo, hi, b, stepval, acc, counts_n, off[ed_a[fe]], off[ed_out[fe]])
            synops_products[p] += done_ops
            shift_adds[p] += done_ops // (hi - lo) * n_shifted  # every spike of p costs the same here
        for t in range(nsp):
            stepval[sp[t]] = 0

        # ---- settle: started populations with nothing left to fire are done
        finished = False
        for p in range(first, last + 1):
            if LEARN and started[p] == 1 and done[p] == 0 and lkind[p] == EIIF:
                pending_learn(p, n, steps, struct, state, neur)  # EI-IF: after this step's learning
            if started[p] == 1 and done[p] == 0 and (spiking[p] == 0 or alen[p] == 0):
                done[p] = 1
                finished = True

        # ---- start: populations whose inputs are now all done
        if finished:
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
                kind = op_kind[p]
                if kind >= 0:
                    op_evals[p] += op_start(kind, n, p, op_arg[p], op_graph, counts, acc, S, op_params, scratch)
                if spiking[p] == 0:
                    done[p] = 1
                elif LEARN and lkind[p] != PLAIN:
                    start_learn(p, n, steps + 1, struct, state, neur)
                else:
                    activate(p, off, shift, gain, offset, qmin, qmax, counts_n, acc, alist, alen)
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
