"""The compiled token loop: every step of one token, to quiescence, in one Numba call per thread.

Mirrors :class:`spikelm.lm.runner.NumpyRunner` operation for operation (same schedule, same
integer arithmetic, same floating-point operations in the same order), so spikes, steps,
SynOps and logits agree bit for bit.

This file is the loop's source. It is not run from here: :mod:`spikelm.lm.compile` writes a
module made of this text followed by a dispatcher over the operators a graph uses (rebinding
``op_start`` and the compile flags ``TIMED``, ``LEARN`` and ``THREADED`` below) that compiles
the functions named in ``COMPILED``, imports it, and Numba caches it on disk. So an operator is
added without an edit here, and each operator set has its own cache. Numba prunes a branch on
a False flag before compiling, so the loop without ``LEARN`` holds no learning code at all, and
the loop without ``THREADED`` no barrier.

**Threads.** ``split`` (:class:`spikelm.lm.bundles.ThreadSplit`) gives each of its
``n_threads`` threads a contiguous share of every population's neurons (whole heads of an
attention population): the thread updates those neurons, lists its spikes in its own region
of ``sp``, and, in the propagate phase, adds *every* spike of the step into the part of the
targets it owns (its heads of the Q·K^T accumulators, its neurons of a product's output).
Held weight rows go by source instead: each thread adds its own neurons' held spikes at the
whole width into its own partial sums (``state.priv``), and after the propagate barrier adds
every thread's partial sums into the columns it owns. Every neuron thus receives exactly the
additions it receives alone; integer sums do not depend on their order, so N threads give the codes, spikes, steps,
SynOps and logits of one, bit for bit. Each step has a barrier after update (the spikes, counts
and lists are seen by all) and one after propagate (the accumulators are whole). Starting needs
none: every thread keeps its own schedule flags (``state.started``, ``state.done`` at ``t P + p``),
decided from the same values, and computes its own share of a starting population's operator
(``op_start``'s range) before it lists its share of the neurons, so it reads only what it wrote.

**Quiet steps.** The barrier after propagate keeps a thread from starting the next step's update
while another still reads what it wrote. A step needs none when no held rows wait to be merged,
no events are recorded, and no spike left its thread: every spiking product factor's spikes
add only into their own thread's part of the output and read only that thread's neurons of the
other factor, or a factor that is done (``split.local``,
:func:`spikelm.lm.numba_runner.local_factors`). Each thread then touched only its own neurons
and what no one writes. A step where populations settle is no exception: each thread starts the
next ones from its own accumulators and from codes final since the step's first barrier. What
the other threads read of an update (its spikes' ranges in ``sp`` and what its lists left,
``aleft``) is kept by step parity, so a thread one step ahead writes the other half; it cannot
get two ahead, as the next step's first barrier waits for all. Every thread decides this from
the same values, so all of them skip the barrier or none does.

The learning variant (``LEARN``) runs on one thread: its rules read and write weights and
traces that every thread would share.

**Held rows.** Outside learning runs, a row source's spikes are not added into its weight rows
in their step: each step's values wait in a slot of ``state.dbuf`` and go in when the source
settles or its slots are full (:func:`spikelm.lm.rows.add_held`: neuron by neuron, through int32 partial sums
where the accumulators are int64). Its targets start only after it settles, so they start with
the same sums (docs/lm.md, "Held rows"). Started neurons keep what is left of their remainder
in ``state.rest``: their inputs are settled.

Arguments are the named bundles of :mod:`spikelm.lm.bundles`: ``struct`` (the graph),
``state``, ``counters`` (the calling thread's own), ``rec`` (the event buffer), ``op_params``
(each operator kind's packed parameters, in kind order), ``lrn`` (spike units, EI-IF neurons
and plasticity; used only under ``LEARN``) and ``split``. :func:`run_token` reads their fields
once per call, then runs the steps; each step's phases are marked in it: **update** (every
neuron kind decides its spike, then one emission block records it), **learn**
(:func:`spikelm.lm.learn.kernels.learn_step`), **settle**, **propagate** (rows, then the product
edges) and **start**. They stay in this one function on purpose: a helper called every step
re-reads the bundles' arrays, and every array read out of a bundle costs Numba an atomic
reference count; measured on the demo, per-step helpers made a token 1.9x slower, and a helper
for the start phase alone 3 % slower. The helpers run once per token (:func:`begin_token`) or
take plain arrays (:func:`activate`).
"""

from __future__ import annotations

import numpy as np

from spikelm.lm.codings import UNIT, spike_value_nb
from spikelm.lm.edges import (MIX, SCORES, reaches, mix_a, mix_a_part, mix_b, mix_b_part, mul_a, mul_a_part, mul_b, mul_b_part,
                              scores_a, scores_a_part, scores_b, scores_b_part)
from spikelm.lm.events import record_spikes
from spikelm.lm.learn.kernels import EIIF, PLAIN, UNITS, learn_step, pending_learn, start_learn
from spikelm.lm.learn.neurons import eiif_fire_nb, unit_remainder_nb, unit_spike_nb
from spikelm.lm.neuron import remainder_nb
from spikelm.lm.rows import INT32_TOP, add_held, held_sum
from spikelm.lm.sync import barrier

#: compile flag: time the row additions into ``counters.timing`` (benchmarks only)
TIMED = False
#: compile flag: spike units, EI-IF neurons and the learn phase (plasticity; one thread)
LEARN = False
#: compile flag: the barriers of a team of threads (without it the loop runs alone)
THREADED = False

#: what :func:`run_token` returns: the token is done; it hit max_steps; the event buffer is
#: full (flush it and call again: all state lives in the arrays)
QUIESCENT, MAX_STEPS, BUFFER_FULL = 0, 1, 2

#: the functions of this file that the generated module compiles (in its footer)
COMPILED = ("activate", "begin_token", "run_token")


def op_start(kind, n, p, arg, struct, counts, acc, S, op_params, scratch, c_lo, c_hi):  # pragma: no cover
    """Placeholder: the generated module defines the dispatcher over its operators."""
    raise NotImplementedError("run the loop through spikelm.lm.compile.token_loop()")


def now_ns():  # pragma: no cover - rebound to a compiled clock in TIMED modules
    return 0


def activate(p, lo, hi, slot, off, shift, gain, offset, qmin, qmax, counts_n, acc, alist, alen, rest, ctx, n):
    """List the neurons ``lo .. hi - 1`` of plain population p (a thread's share) that still have a
    remainder to fire, from ``alist[off[p] + lo]`` on, their number in ``alen[slot]``, and their
    remainders in ``rest`` (arrays passed one by one: it runs at every population start, where
    reading them out of the bundles again would cost their reference counts).

    ``ctx`` > 0: p is laid out [heads, ctx] by key position and operator-fed (attention
    probabilities): the keys after position ``n`` hold code 0, so only keys 0 .. n of each head
    are looked at (a thread's share is whole heads)."""
    b = off[p]
    k, q_lo, q_hi = shift[p], qmin[p], qmax[p]
    span = max(hi - lo, 1)  # a share of nothing: no pass
    seg = hi - lo
    if ctx > 0:
        span = ctx
        seg = min(n + 1, ctx)
    m = 0
    for h0 in range(lo, hi, span):
        for g in range(b + h0, b + h0 + seg):  # two passes: this one vectorises
            rest[g] = remainder_nb(acc[g], counts_n[g], gain[g], offset[g], k, q_lo, q_hi)
        for i in range(h0, h0 + seg):
            alist[b + lo + m] = i  # kept if it has a remainder (written either way: no branch)
            m += np.int64(rest[b + i] != 0)
    alen[slot] = m


def begin_token(n, emb, struct, state, counters, lrn):
    """A fresh token at position n: clear the position's work arrays, inject its embedding codes
    (one thread, for the whole team; :func:`run_token` lists the stimulus' neurons)."""
    S = state.S
    state.acc[:] = 0
    for s in range(S.shape[0]):
        for h in range(S.shape[1]):
            for j in range(n + 1):
                S[s, h, j] = 0
    state.started[:] = 0
    state.done[:] = 0
    state.alen[:] = 0
    for k in range(state.dk.shape[0]):  # spikes still held: a token stopped before quiescence
        if state.dk[k] != 0:
            state.dbuf[:] = 0
            state.dk[:] = 0
            break
    stim = struct.stim
    b = struct.off[stim]
    for c in range(emb.shape[0]):
        state.acc[b + c] = emb[c]
    P = struct.off.shape[0] - 1
    for t in range(state.started.shape[0] // P):  # every thread's flags
        state.started[t * P + stim] = 1
    counters.op_evals[stim] += emb.shape[0]
    if LEARN and lrn.neur.lkind[stim] != PLAIN:
        start_learn(stim, n, 0, struct, state, lrn.neur)
    state.st[0] = 0


def run_token(tid, fresh, n, emb, max_steps, struct, state, counters, rec, op_params, lrn, split):
    """Run position n to quiescence as thread ``tid`` of ``split.n_threads``; returns QUIESCENT,
    MAX_STEPS or BUFFER_FULL (every thread the same).

    Resumable: all state lives in the arrays; ``state.st[0]`` counts the token's steps.
    ``counters`` are this thread's own (the runner adds them up).
    """
    T = split.n_threads if THREADED else 1  # a constant alone: its loops over threads fold away
    P = struct.off.shape[0] - 1
    tP = tid * P if THREADED else 0
    own_lo, own_hi = split.lo, split.hi
    if fresh:
        if tid == 0:
            begin_token(n, emb, struct, state, counters, lrn)
        if THREADED:
            barrier(split.bar, tid, T)
        stim = struct.stim
        if not (LEARN and lrn.neur.lkind[stim] != PLAIN):
            activate(stim, own_lo[tP + stim], own_hi[tP + stim], tP + stim, struct.off, struct.shift, struct.gain,
                     struct.offset, struct.qmin, struct.qmax, state.counts[n], state.acc, state.alist, state.alen,
                     state.rest, struct.pos_ctx[stim], n)
    # every array, read out of its bundle once (see the module docstring)
    off, qmin, qmax, shift, gain, offset = struct.off, struct.qmin, struct.qmax, struct.shift, struct.gain, struct.offset
    spiking, coding, kslot, W = struct.spiking, struct.coding, struct.kslot, struct.W
    out_ptr, out_idx, pj_post, pj_woff, pj_npost = struct.out_ptr, struct.out_idx, struct.pj_post, struct.pj_woff, \
        struct.pj_npost
    pj_wmax, dslot, dbuf, dk, part, rest = struct.pj_wmax, struct.dslot, state.dbuf, state.dk, state.part, \
        state.rest
    pj_poff, priv = struct.pj_poff, state.priv
    n_slots = dbuf.shape[0]
    fac_edge, fac_side, ed_kind, ed_a, ed_b, ed_out = struct.fac_edge, struct.fac_side, struct.ed_kind, struct.ed_a, \
        struct.ed_b, struct.ed_out
    ed_heads, ed_group, ed_dh, ed_slot = struct.ed_heads, struct.ed_group, struct.ed_dh, struct.ed_slot
    ed_window, pos_ctx = struct.ed_window, struct.pos_ctx
    counts, acc, S, kcache = state.counts, state.acc, state.S, state.kcache
    started, done, alist, alen = state.started, state.done, state.alist, state.alen
    stepval, sp, pstart, pend, st, aleft = state.stepval, state.sp, state.pstart, state.pend, state.st, state.aleft
    spikes_pos, spikes_neg, synops, synops_products, shift_adds, timing = counters.spikes_pos, counters.spikes_neg, \
        counters.synops, counters.synops_products, counters.shift_adds, counters.timing
    record, ev_n, ev_size = rec.record, rec.n, rec.step.shape[0]
    in_ptr, in_idx, op_kind, op_arg, op_graph = struct.in_ptr, struct.in_idx, struct.op_kind, struct.op_arg, \
        struct.op_graph
    op_evals, scratch = counters.op_evals, state.scratch[tid]
    neur = lrn.neur
    lkind, unit, vmem, xin, tstart, nspk, active = neur.lkind, neur.unit, neur.vmem, neur.xin, neur.tstart, \
        neur.nspk, neur.active
    theta_base, alpha, rr = neur.theta_base, neur.alpha, neur.r
    bar, local = split.bar, split.local
    my_base = split.sp_base[tid]  # this thread's first slot in sp
    R_spiking = counts.shape[1]
    counts_n = counts[n]  # this position's spike counts
    steps = st[0]
    # populations are in topological order: the ones at work lie in [first, last]
    first = 0
    last = 0
    for p in range(P):
        if started[tP + p] == 1:
            last = p
    while True:
        while first < P and done[tP + first] == 1:
            first += 1
        if first == P:
            if tid == 0:
                st[0] = steps
            return QUIESCENT
        if steps >= max_steps:
            if tid == 0:
                st[0] = steps
            return MAX_STEPS
        if record and ev_n[0] + R_spiking > ev_size:
            if tid == 0:
                st[0] = steps
            return BUFFER_FULL

        # ---- update: every started neuron of this thread with something left fires one spike
        # (what other threads read of it goes to the step's parity: see "quiet steps")
        pb = (steps & 1) * T * P if THREADED else 0
        nsp = my_base
        for p in range(first, last + 1):
            pstart[pb + tP + p] = nsp
            pend[pb + tP + p] = nsp
            if started[tP + p] == 0 or done[tP + p] == 1 or spiking[p] == 0:
                continue
            b = off[p]
            lo_p = own_lo[tP + p] if THREADED else 0
            size = off[p + 1] - b
            lo_q = qmin[p]
            hi_q = qmax[p]
            cod = coding[p]
            ks = kslot[p]
            k_sh = shift[p]
            kind_p = PLAIN
            todo = alen[tP + p]  # the listed neurons (EI-IF: all, they have no list)
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
            dsl = dslot[p]  # held for its rows: this step's slot
            slot = dk[tP + p] if dsl >= 0 else 0
            for tt in range(todo):
                i = alist[b + lo_p + tt]
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
                    rem = unit_remainder_nb(acc[g], c, gain[g], offset[g], k_sh, lo_q, hi_q, unit[g])
                    s = unit_spike_nb(cod, rem, unit[g])
                    again = rem != s
                else:
                    if LEARN:  # rules may change what a started neuron reads
                        rem = remainder_nb(acc[g], c, gain[g], offset[g], k_sh, lo_q, hi_q)
                    else:  # its inputs are settled: the remainder it started with, less its spikes
                        rem = np.int64(rest[g])
                    s = spike_value_nb(cod, rem)
                    again = rem != s
                    rest[g] = rem - s
                if s == 0:
                    continue
                # the one emission path, for every neuron kind
                counts_n[g] = c + s
                stepval[g] = s
                sp[nsp] = g
                nsp += 1
                if ks >= 0:  # keep K channel-major: Q spikes read it along positions
                    kcache[ks, i, n] += s
                if dsl >= 0:
                    dbuf[slot, dsl + i] = s
                if s > 0:
                    n_pos += 1
                if LEARN and kind_p != PLAIN:
                    nspk[g] += 1
                alist[b + lo_p + m] = i  # kept if it fires again next step (written either way: a branch
                m += np.int64(again)  # here was mispredicted so often that it cost a third of the update)
            if not (LEARN and kind_p == EIIF):
                alen[tP + p] = m
                if THREADED:
                    aleft[pb + tP + p] = m
            spikes_pos[p] += n_pos
            spikes_neg[p] += nsp - start - n_pos
            pend[pb + tP + p] = nsp
            if dsl >= 0:
                dk[tP + p] = slot + 1

        if THREADED:  # every thread's spikes, counts and lists are now seen by all
            barrier(bar, tid, T)
        if record and tid == 0:  # population by population, each in neuron order
            for p in range(first, last + 1):
                for t in range(T):
                    record_spikes(rec, steps, p, n, off[p], off[p + 1] - off[p], sp, stepval, pstart[pb + t * P + p],
                                  pend[pb + t * P + p])

        # ---- learn (one thread)
        if LEARN:
            learn_step(n, steps, rec.clock, first, last, nsp, struct, state, neur, lrn.plast)

        # ---- settle: started populations with nothing left to fire are done (in this thread's
        # own flags: every thread decides alike)
        finished = False
        if not LEARN:
            for p in range(first, last + 1):
                if started[tP + p] == 1 and done[tP + p] == 0:
                    left = aleft[pb + tP + p] if THREADED else alen[p]  # its own first: no other's line read
                    if THREADED and left == 0:
                        for t in range(T):
                            left += aleft[pb + t * P + p]
                    if spiking[p] == 0 or left == 0:
                        finished = True
                        done[tP + p] = 1

        # ---- propagate, population by population: weight rows, then product edges; each
        # thread adds every spike into the part of the targets it owns
        cross = False  # a thread read or added another's spikes (or held rows wait to be merged)
        for p in range(first, last + 1):
            dsl = dslot[p]
            fe = fac_edge[p]
            # this thread's spikes (held rows add and count only those), and every thread's
            # (product edges and rows in their step add them all into the owned part)
            n_mine = pend[pb + tP + p] - pstart[pb + tP + p]
            n_sp = n_mine
            if THREADED and (fe >= 0 or (dsl < 0 and out_ptr[p + 1] > out_ptr[p])):
                n_sp = 0
                for t in range(T):
                    n_sp += pend[pb + t * P + p] - pstart[pb + t * P + p]
                if n_sp > 0 and (fe < 0 or local[p] == 0 or (local[p] == 2 and done[tP + ed_b[fe]] == 0)):
                    cross = True
            # held spikes go into their rows when p settles (its targets start only then: settle
            # has just marked it done) or when its slots are full
            n_held = 0
            if dsl >= 0:
                n_held = dk[tP + p]
                if n_held < n_slots and done[tP + p] == 0:
                    n_held = 0
            if n_mine == 0 and n_sp == 0 and n_held == 0:
                continue
            b = off[p]
            # shifted spikes (spike units: multiples of the unit) of the spikes its rows count;
            # a team's product edges count their own
            n_shifted = 0
            if (coding[p] != UNIT or (LEARN and lkind[p] != PLAIN)) and (out_ptr[p + 1] > out_ptr[p] or not THREADED):
                t_lo, t_hi = (tid, tid + 1) if dsl >= 0 else (0, T)
                for t in range(t_lo, t_hi):
                    for e in range(pstart[pb + t * P + p], pend[pb + t * P + p]):
                        v = stepval[sp[e]]
                        if v != 1 and v != -1:
                            n_shifted += 1
            held_top = 1  # the largest |value| a neuron holds (in a team: of this thread's neurons)
            i_lo = own_lo[tP + p] if THREADED else 0
            i_hi = own_hi[tP + p] if THREADED else off[p + 1] - b
            if n_held > 0:
                for i in range(dsl + i_lo, dsl + i_hi):
                    vv = abs(held_sum(dbuf, n_held, i))
                    if vv > held_top:
                        held_top = vv
            if TIMED:
                t0 = now_ns()
            for e in range(out_ptr[p], out_ptr[p + 1]):
                kk = out_idx[e]
                npost = pj_npost[kk]
                wbase = pj_woff[kk]
                q = pj_post[kk]
                c_lo = 0
                width = npost
                if THREADED:  # this thread's columns
                    c_lo = own_lo[tP + q]
                    width = own_hi[tP + q] - c_lo
                if dsl >= 0:  # held: this thread's spikes, at the whole width
                    synops[kk] += npost * n_mine
                    shift_adds[p] += npost * n_shifted
                else:
                    synops[kk] += width * n_sp
                    shift_adds[p] += width * n_shifted
                # views with range indices: no negative-index checks, so the loops vectorise
                a = acc[off[q] + c_lo : off[q] + c_lo + width]
                if dsl >= 0:
                    if n_held > 0:
                        room = 0
                        if pj_wmax[kk] > 0:
                            room = INT32_TOP // (pj_wmax[kk] * held_top)
                        if THREADED:  # this thread's neurons, at full width, into its own partial sums
                            po = pj_poff[kk]
                            add_held(dbuf, n_held, dsl + i_lo, i_hi - i_lo, W, wbase + i_lo * npost, npost, 0,
                                     priv[tid, po : po + npost], room, part[tid, :npost])
                        else:
                            add_held(dbuf, n_held, dsl, off[p + 1] - b, W, wbase, npost, c_lo, a, room,
                                     part[tid, :width])
                    continue
                for t in range(T):
                    for e2 in range(pstart[pb + t * P + p], pend[pb + t * P + p]):
                        g = sp[e2]
                        wo = wbase + (g - b) * npost + c_lo
                        w = W[wo : wo + width]
                        v = stepval[g]
                        if v == 1:  # the commonest values add or subtract the row: no multiply
                            for c in range(width):
                                a[c] += w[c]
                        elif v == -1:
                            for c in range(width):
                                a[c] -= w[c]
                        else:
                            for c in range(width):
                                a[c] += v * w[c]
            if dsl >= 0 and n_held > 0:
                dk[tP + p] = -n_held  # cleared once every thread has read them
                cross = True
            if TIMED:
                timing[0] += now_ns() - t0
                timing[1] += 1
            if fe < 0 or n_sp == 0:
                continue
            kind = ed_kind[fe]
            side = fac_side[p]
            dh = ed_dh[fe]
            grp = ed_group[fe]
            o = ed_out[fe]
            first_key = 0
            if kind == SCORES:
                win = ed_window[fe]
                first_key = n + 1 - win if 0 < win < n + 1 else 0
            ctx = 1
            if kind == MIX:
                ctx = (off[ed_a[fe] + 1] - off[ed_a[fe]]) // ed_heads[fe]
            if not THREADED:  # one thread: the whole target, every spike of p at the same cost
                lo = pstart[p]
                hi = pend[p]
                if kind == SCORES:
                    if side == 0:
                        done_ops = scores_a(sp, lo, hi, b, stepval, n, S, kcache, ed_slot[fe], off[ed_b[fe]], dh, grp,
                                            first_key)
                    else:
                        done_ops = scores_b(sp, lo, hi, b, stepval, n, S, counts_n, ed_slot[fe], off[ed_a[fe]], dh,
                                            grp)
                elif kind == MIX:
                    if side == 0:
                        done_ops = mix_a(sp, lo, hi, b, stepval, n, acc, counts, off[ed_b[fe]], off[o], dh, grp, ctx)
                    else:
                        done_ops = mix_b(sp, lo, hi, b, stepval, n, acc, counts_n, off[ed_a[fe]], off[o], dh, grp, ctx)
                elif side == 0:  # MUL
                    done_ops = mul_a(sp, lo, hi, b, stepval, acc, counts_n, off[ed_b[fe]], off[o])
                else:
                    done_ops = mul_b(sp, lo, hi, b, stepval, acc, counts_n, off[ed_a[fe]], off[o])
                synops_products[p] += done_ops
                shift_adds[p] += done_ops // n_sp * n_shifted
                continue
            # a team: each thread's share of the output (scores: whole heads), from every thread's spikes
            o_lo = own_lo[tP + o]
            o_hi = own_hi[tP + o]
            if kind == SCORES:
                ctx_o = (off[o + 1] - off[o]) // ed_heads[fe]
                o_lo //= ctx_o
                o_hi //= ctx_o
            done_ops = 0
            shifted_ops = 0
            for t in range(T):
                lo = pstart[pb + t * P + p]
                hi = pend[pb + t * P + p]
                if hi == lo:
                    continue
                if t != tid and not reaches(kind, side, own_lo[t * P + p], own_hi[t * P + p], o_lo, o_hi, dh, grp, ctx):
                    continue  # thread t's neurons of p add nothing into this thread's part
                if kind == SCORES:
                    if side == 0:
                        r = scores_a_part(sp, lo, hi, b, stepval, n, S, kcache, ed_slot[fe], off[ed_b[fe]], dh, grp,
                                          first_key, o_lo, o_hi)
                    else:
                        r = scores_b_part(sp, lo, hi, b, stepval, n, S, counts_n, ed_slot[fe], off[ed_a[fe]], dh, grp,
                                          o_lo, o_hi)
                elif kind == MIX:
                    if side == 0:
                        r = mix_a_part(sp, lo, hi, b, stepval, n, acc, counts, off[ed_b[fe]], off[o], dh, grp, ctx,
                                       o_lo, o_hi)
                    else:
                        r = mix_b_part(sp, lo, hi, b, stepval, n, acc, counts_n, off[ed_a[fe]], off[o], dh, grp, ctx,
                                       o_lo, o_hi)
                elif side == 0:  # MUL
                    r = mul_a_part(sp, lo, hi, b, stepval, acc, counts_n, off[ed_b[fe]], off[o], o_lo, o_hi)
                else:
                    r = mul_b_part(sp, lo, hi, b, stepval, acc, counts_n, off[ed_a[fe]], off[o], o_lo, o_hi)
                done_ops += r[0]
                shifted_ops += r[1]
            synops_products[p] += done_ops
            shift_adds[p] += shifted_ops

        # every update of this step is in place: needed before the next step's update unless the
        # step was quiet (no held rows to merge, no spike left its thread, no events recorded),
        # when each thread touched only its own neurons and what no one writes (a settled
        # population is no exception: each thread starts the next from what it wrote itself)
        if THREADED and (cross or record):
            barrier(bar, tid, T)
        for e in range(my_base, nsp):
            stepval[sp[e]] = 0
        for p in range(first, last + 1):  # each thread clears its own neurons' held spikes
            if dk[tP + p] < 0:
                if THREADED:  # and adds every thread's held rows into the columns it owns
                    for e in range(out_ptr[p], out_ptr[p + 1]):
                        kk = out_idx[e]
                        q = pj_post[kk]
                        c_lo = own_lo[tP + q]
                        width = own_hi[tP + q] - c_lo
                        a = acc[off[q] + c_lo : off[q] + c_lo + width]
                        for t in range(T):
                            pv = priv[t, pj_poff[kk] + c_lo : pj_poff[kk] + c_lo + width]
                            for c in range(width):
                                a[c] += pv[c]
                                pv[c] = 0
                dsl = dslot[p]
                c_lo = dsl + (own_lo[tP + p] if THREADED else 0)
                c_hi = dsl + (own_hi[tP + p] if THREADED else off[p + 1] - off[p])
                for k in range(-dk[tP + p]):
                    dbuf[k, c_lo:c_hi] = 0
                dk[tP + p] = 0

        if LEARN:  # (one thread) EI-IF populations: who may fire, after this step's learning; then settle
            for p in range(first, last + 1):
                if started[p] == 1 and done[p] == 0:
                    if lkind[p] == EIIF:
                        pending_learn(p, n, steps, struct, state, neur)
                    if spiking[p] == 0 or alen[p] == 0:
                        finished = True
                        done[p] = 1

        # ---- start: every thread starts the populations whose inputs are all done (in its own
        # flags), computes its share of their operators and lists its share of their neurons
        if finished:
            for p in range(first, P):
                if started[tP + p] == 1:
                    continue
                ready = True
                for e in range(in_ptr[p], in_ptr[p + 1]):
                    if done[tP + in_idx[e]] == 0:
                        ready = False
                        break
                if not ready:
                    continue
                started[tP + p] = 1
                kind = op_kind[p]
                if kind >= 0:
                    op_evals[p] += op_start(kind, n, p, op_arg[p], op_graph, counts, acc, S, op_params, scratch,
                                            own_lo[tP + p], own_hi[tP + p])
                if spiking[p] == 0:
                    done[tP + p] = 1
                elif LEARN and lkind[p] != PLAIN:
                    start_learn(p, n, steps + 1, struct, state, neur)
                else:
                    activate(p, own_lo[tP + p], own_hi[tP + p], tP + p, off, shift, gain, offset, qmin, qmax, counts_n,
                             acc, alist, alen, rest, pos_ctx[p], n)
                if p > last:
                    last = p
        steps += 1

