"""The compiled time loop of the numba backend: a chunk of steps, five phases each, in one call.

This file is the loop's source. It is not run from here: :mod:`spikelm.simulator.compile`
writes a module made of this text followed by the dispatch over the neuron models a network
uses (``update_range`` and ``may_fire_range`` below, calling each model's kernels of
:mod:`spikelm.simulator.kernels` by kind number) and the compile flags, imports it, and
Numba caches it on disk. So a model is added without an edit here, and a network without
noise, Poisson input, current steps, listed spikes or plasticity compiles none of them:
Numba prunes a branch on a False flag before typing.

**Threads.** The neurons are split into blocks of post-synaptic neurons, one per thread
(``work.bounds``). A block owns its neurons' state, their input slots in the event queue and
every synapse that ends on them. One parallel region per step runs, for each block, the
propagation of the previous step's spikes into its neurons (phase 4 of step t - 1), then the
delivery and update of its neurons (phases 1 and 2 of step t). Every block walks the
previous step's spikes in the one global order, and a row's synapses in CSR order, so each
input sum receives its terms in the same order whatever the number of blocks: N threads
give the spikes of one, bit for bit. Between regions, one thread gathers the step's spikes
in neuron order, runs the learn phase (serial: rules read and write shared traces and
weights) and the record phase. ``THREADED = False`` compiles the same loop without a parallel
region (one block), which is what one thread runs.

Arguments are the bundles of :mod:`spikelm.simulator.bundles`.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from spikelm.plasticity.numba_learn import learn as learn_nb
from spikelm.simulator.rng import ZIG_F, ZIG_X, normal_nb, poisson_nb

#: compile flags (rebound by the generated module)
HAS_NOISE = True
HAS_PIN = True
HAS_STEPS = True
HAS_TIMES = True
HAS_LEARN = True
THREADED = False
#: the kind number of listed spike sources (spike_times), stepped here rather than by a kernel
TIMES_KIND = -1


def update_range(kind, S, lo, hi, first, c, qe, qi, iext, t, key, fired):  # pragma: no cover
    """Placeholder: the generated module dispatches to the models' ``update`` kernels."""
    raise NotImplementedError("run the loop through spikelm.simulator.compile.time_loop()")


def may_fire_range(kind, S, lo, hi, c, t):  # pragma: no cover
    """Placeholder: the generated module dispatches to the models' ``may_fire`` kernels."""
    raise NotImplementedError("run the loop through spikelm.simulator.compile.time_loop()")


@njit(cache=True, inline="always")
def _propagate_block(b, t, n_spk, pops, syn, queue, work):
    """Phase 4 for block b: fan the spikes of step t out into the block's neurons.

    A row is a run of delay groups (one delay each, posts sorted): a group's events go to one
    queue slot, in CSR order (the numpy reference's order). When the block holds only part of
    the post population, its share of a group is one contiguous run (``work.split``).
    """
    lo = work.bounds[b]
    hi = work.bounds[b + 1]
    last = work.seg_n.size - 1
    qbuf = queue.buf
    n_slots = qbuf.shape[0]
    t_slot = t % n_slots
    qc = work.qcount[b]
    post = syn.post
    w = syn.w
    p = 0
    for e in range(n_spk):
        g = work.spk_idx[e]
        fv = np.float64(work.spk_val[e])
        while g >= pops.hi[p]:
            p += 1
        for j in range(syn.pre_proj_ptr[p], syn.pre_proj_ptr[p + 1]):
            k = syn.pre_proj[j]
            plo = syn.post_lo[k]
            phi = plo + syn.n_post[k]
            if hi <= plo or lo >= phi:
                continue
            whole = lo <= plo and hi >= phi  # the block holds every post neuron of projection k
            row = syn.ptr_off[k] + g - syn.pre_lo[k]
            tgt = syn.target[k]
            for q in range(syn.row_grp[row], syn.row_grp[row + 1]):
                a = syn.grp_ptr[q]
                z = syn.grp_ptr[q + 1]
                if not whole:
                    if b < last:
                        z = a + work.split[b, q]
                    if b > 0:
                        a = a + work.split[b - 1, q]
                    if a >= z:
                        continue
                slot = t_slot + syn.grp_delay[q]  # delay < n_slots: one subtraction replaces a modulo
                if slot >= n_slots:
                    slot -= n_slots
                dst = qbuf[slot, tgt]
                for s in range(np.uint64(a), np.uint64(z)):
                    dst[np.uint64(plo + post[s])] += fv * w[s]
                qc[slot] += z - a


@njit(cache=True, inline="always")
def _compact(fired, lo, hi, out_idx, out_val, n):
    """Append the neurons of [lo, hi) that fired (index, value) from position n, in index
    order, clearing their flags; return the new n. Spikes are rare, so the flags are scanned
    eight at a time as 64-bit words (``lo`` is a multiple of 8)."""
    words = fired.view(np.uint64)
    i = lo
    while i + 8 <= hi:
        if words[i // 8] != 0:
            for j in range(i, i + 8):
                if fired[j] != 0:
                    out_idx[n] = j
                    out_val[n] = fired[j]
                    fired[j] = 0
                    n += 1
        i += 8
    while i < hi:
        if fired[i] != 0:
            out_idx[n] = i
            out_val[n] = fired[i]
            fired[i] = 0
            n += 1
        i += 1
    return n


# The bodies of the parallel loops (_block_step, _flush_block) are real calls: inlined into a
# prange body, Numba's parfor passes drop their writes. They and the other helpers that take
# the bundles are compiled without reference counting (_nrt=False: they allocate nothing):
# otherwise every call would count a reference to each array of the bundles, twice, about
# 0.6 us a step (the whole per-step cost of a small network).
@njit(cache=True, _nrt=False)
def _block_step(b, t, t_prev, n_prev, ta, tb, S, pops, syn, queue, stim, work):
    """One block's share of a step: phase 4 of step t - 1, then phases 1 and 2 of step t."""
    lo = work.bounds[b]
    hi = work.bounds[b + 1]
    if n_prev > 0:
        _propagate_block(b, t_prev, n_prev, pops, syn, queue, work)
    # 1. deliver: the models read this step's slot in place and clear what they read
    slot = t % queue.buf.shape[0]
    qe = queue.buf[slot, 0]
    qi = queue.buf[slot, 1]
    iext = stim.i_cur
    if HAS_NOISE:
        i_ext = work.i_ext
        for i in range(lo, hi):
            i_ext[i] = stim.i_cur[i]
        for k in range(stim.nz_key.size):
            first = stim.nz_lohi[k, 0]
            for i in range(max(lo, first), min(hi, stim.nz_lohi[k, 1])):
                i_ext[i] += stim.nz_ms[k, 0] + stim.nz_ms[k, 1] * normal_nb(stim.nz_key[k], t, i - first, ZIG_X, ZIG_F)
        iext = i_ext
    if HAS_PIN:
        for k in range(stim.pin_key.size):
            first = stim.pin_lohi[k, 0]
            dst = qe if stim.pin_target[k] == 0 else qi
            for i in range(max(lo, first), min(hi, stim.pin_lohi[k, 1])):
                n_ev = poisson_nb(stim.pin_key[k], t, i - first, stim.pin_par[k, 0], stim.pin_par[k, 1])
                dst[i] += n_ev * stim.pin_par[k, 2]
    # 2. update: each population's share of the block
    for p in range(pops.lo.size):
        a = max(lo, pops.lo[p])
        z = min(hi, pops.hi[p])
        if a >= z:
            continue
        kind = pops.kind[p]
        if HAS_TIMES and kind == TIMES_KIND:
            for k in range(ta, tb):
                g = stim.src_idx[k]
                if a <= g < z:
                    work.fired[g] = 1
        else:
            update_range(kind, S, a, z, pops.lo[p], pops.consts[p], qe, qi, iext, t, pops.key[p], work.fired)
    work.seg_n[b] = _compact(work.fired, lo, hi, work.seg_idx, work.seg_val, lo) - lo


@njit(cache=True, _nrt=False)
def _flush_block(b, t, n_spk, pops, syn, queue, work):
    """Phase 4 alone, for the last step of a call (a parallel loop's body)."""
    _propagate_block(b, t, n_spk, pops, syn, queue, work)


@njit(cache=True, _nrt=False)
def _gather(work):
    """The step's spikes, block after block: all of them in neuron order."""
    n = 0
    for b in range(work.seg_n.size):
        a = work.bounds[b]
        for e in range(a, a + work.seg_n[b]):
            work.spk_idx[n] = work.seg_idx[e]
            work.spk_val[n] = work.seg_val[e]
            n += 1
    return n


@njit(cache=True, _nrt=False)
def _collect_counts(queue, work):
    """Add the events each block pushed to the queue's per-slot counts."""
    for b in range(work.qcount.shape[0]):
        for k in range(work.qcount.shape[1]):
            if work.qcount[b, k] != 0:
                queue.count[k] += work.qcount[b, k]
                work.qcount[b, k] = 0


@njit(cache=True, _nrt=False)
def _count_synops(n_spk, pops, syn, queue, work):
    """SynOps and pushed events of the step's spikes (whole rows; the blocks push them)."""
    p = 0
    for e in range(n_spk):
        g = work.spk_idx[e]
        while g >= pops.hi[p]:
            p += 1
        for j in range(syn.pre_proj_ptr[p], syn.pre_proj_ptr[p + 1]):
            k = syn.pre_proj[j]
            row = syn.ptr_off[k] + g - syn.pre_lo[k]
            n = syn.indptr[row + 1] - syn.indptr[row]
            syn.synops[k] += n
            queue.totals[0] += n


@njit(cache=True, _nrt=False)
def _record(s, t, n_spk, S, pops, rec, work):
    """Phase 5: per-population counts, recorded spikes, sampled state."""
    p = 0
    for q in range(pops.lo.size):
        rec.counts[s, q] = 0
    for e in range(n_spk):
        g = work.spk_idx[e]
        while g >= pops.hi[p]:
            p += 1
        rec.counts[s, p] += 1
        if rec.mask[g] == 1:
            r = rec.n[0]
            rec.steps[r] = t
            rec.idx[r] = g
            rec.val[r] = work.spk_val[e]
            rec.n[0] = r + 1
    if rec.sample_rows.size > 0 and t % rec.every == 0:
        r = rec.n[2]
        for k in range(rec.sample_rows.size):
            rec.samples[r, k] = S[rec.sample_rows[k], rec.sample_cols[k]]
        rec.sample_steps[r] = t
        rec.n[2] = r + 1


@njit(cache=True, _nrt=False)
def _quiet(t, S, pops, queue, stim):
    """At a step without spikes: nothing pending and no neuron able to fire without input."""
    for k in range(queue.count.size):
        if queue.count[k] != 0:
            return False
    for p in range(pops.lo.size):
        kind = pops.kind[p]
        lo = pops.lo[p]
        hi = pops.hi[p]
        if kind == TIMES_KIND:
            for k in range(stim.src_step.size):
                if stim.src_step[k] > t and lo <= stim.src_idx[k] < hi:
                    return False
        elif pops.driven[p] or may_fire_range(kind, S, lo, hi, pops.consts[p], t):
            return False
    return True


def run_steps(t0, n_steps, until_quiescent, src_ptr, S, pops, syn, queue, stim, rec, work, plast):
    """Advance up to ``n_steps`` steps from ``t0``; return (steps done, quiescent).

    Stops at the end of the chunk, when the record buffer could overflow in the next step,
    or (``until_quiescent``) at quiescence. ``src_ptr``: the first listed spike at or after
    t0. The last step's spikes are propagated before it returns, so the queue is whole
    between calls (checkpoints, other backends).
    """
    N = S.shape[1]
    B = work.seg_n.size
    n_slots = queue.buf.shape[0]
    n_rec = 0
    for i in range(N):
        n_rec += rec.mask[i]
    cap = rec.steps.size
    n_prev = 0
    t_prev = t0 - 1
    done = n_steps
    quiet = False
    for s in range(n_steps):
        t = t0 + s
        if rec.n[0] + n_rec > cap:
            done = s
            break
        if HAS_STEPS:
            for k in range(stim.cs_step.size):
                if stim.cs_step[k] == t:
                    for i in range(stim.cs_lohi[k, 0], stim.cs_lohi[k, 1]):
                        stim.i_cur[i] += stim.cs_delta[k]
        ta = src_ptr
        tb = src_ptr
        if HAS_TIMES:
            while ta < stim.src_step.size and stim.src_step[ta] < t:
                ta += 1
            tb = ta
            while tb < stim.src_step.size and stim.src_step[tb] == t:
                tb += 1
            src_ptr = tb
        # 4. propagate (step t - 1), 1. deliver, 2. update: one region, a block per thread
        if THREADED:
            for b in prange(B):
                _block_step(b, t, t_prev, n_prev, ta, tb, S, pops, syn, queue, stim, work)
        else:
            _block_step(0, t, t_prev, n_prev, ta, tb, S, pops, syn, queue, stim, work)
        _collect_counts(queue, work)
        slot = t % n_slots
        queue.totals[1] += queue.count[slot]  # delivered
        queue.count[slot] = 0
        n_spk = _gather(work)
        # 3. learn
        if HAS_LEARN:
            learn_nb(t, work.spk_idx, work.spk_val, n_spk, S, syn.w, syn.indptr, syn.post, syn.delay, syn.ptr_off,
                     syn.syn_off, syn.pre_lo, syn.post_lo, pops.lo, pops.hi, plast)
        _count_synops(n_spk, pops, syn, queue, work)
        # 5. record
        _record(s, t, n_spk, S, pops, rec, work)
        rec.n[1] = s + 1
        n_prev = n_spk
        t_prev = t
        if until_quiescent and n_spk == 0 and _quiet(t, S, pops, queue, stim):
            done = s + 1
            quiet = True
            break
    # 4. propagate the last step's spikes
    if n_prev > 0:
        if THREADED:
            for b in prange(B):
                _flush_block(b, t_prev, n_prev, pops, syn, queue, work)
        else:
            _flush_block(0, t_prev, n_prev, pops, syn, queue, work)
        _collect_counts(queue, work)
    return done, quiet
