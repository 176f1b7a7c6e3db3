"""The Numba backend: the whole time loop compiled; one Python call runs a chunk of steps.

``_run`` is the five-phase step of docs/design.md inside a compiled loop over steps. It stops at
the end of the chunk, when the spike record buffer could overflow in the next step, or at
quiescence when asked. Models dispatch on their integer code to the kernels of
:mod:`numba_kernels`. Everything it touches is a typed array of the :class:`Plan`.
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit

from . import numba_kernels as nk
import spikelm.plasticity.interface as _plast_interface
import spikelm.plasticity.numba_learn as _learn_module
from spikelm.plasticity.interface import empty_arrays
from spikelm.plasticity.numba_learn import learn as learn_nb

from . import rng as _rng_module
from ._numba_cache import invalidate_if_changed
from .rng import ZIG_F, ZIG_X, normal_nb, poisson_nb, uniform_nb

# the cached time loop inlines these modules' kernels: rebuild it when any of them changes
_deps = [nk.__file__, _rng_module.__file__, _learn_module.__file__, _plast_interface.__file__]
invalidate_if_changed(__file__, _deps)
invalidate_if_changed(_learn_module.__file__, [_plast_interface.__file__])

LIF, EIIF, IZH, SIF, POISSON, TIMES = 1, 2, 3, 4, 5, 6


def run_chunk(plan, buf, t0, n_steps, until_quiescent, learn=None):
    """Advance ``plan`` by up to ``n_steps`` steps from ``t0``; return (steps done, quiescent)."""
    plast = learn.arrays if learn is not None else empty_arrays()
    _run = loop_for(plan, learn is not None)
    q = plan.queue
    i_cur = plan.current_at(t0 - 1)
    src_ptr = int(np.searchsorted(plan.src_step, t0))
    done, quiet = _run(
        t0, n_steps, until_quiescent,
        plan.S, plan.pop_lo, plan.pop_hi, plan.pop_model, plan.consts, plan.driven, plan.pop_key,
        plan.indptr, plan.post, plan.w, plan.delay, plan.proj_pre_lo, plan.proj_post_lo, plan.proj_target,
        plan.proj_ptr_off, plan.proj_syn_off, plan.proj_udelay, plan.pre_proj, plan.pre_proj_ptr, plan.synops,
        q.buf, q.count, q.totals,
        i_cur, plan.cs_step, plan.cs_lohi, plan.cs_delta, plan.nz_lohi, plan.nz_ms, plan.nz_key,
        plan.pin_lohi, plan.pin_par, plan.pin_target, plan.pin_key, plan.src_step, plan.src_idx, src_ptr,
        buf.rec_mask, buf.steps, buf.idx, buf.val, buf.counts, buf.sample_rows, buf.sample_cols, buf.every,
        buf.samples, buf.sample_steps, buf.n, plast)
    return int(done), bool(quiet)


@njit(cache=True)
def _may_fire(model, S, lo, hi, c, driven, src_step, src_idx, t):
    if model == POISSON:
        return c[0] > 0.0
    if model == TIMES:
        for k in range(src_step.size):
            if src_step[k] > t and lo <= src_idx[k] < hi:
                return True
        return False
    if driven:
        return True
    if model == LIF:
        return nk.lif_may_fire(S, lo, hi, c, t)
    if model == EIIF:
        return nk.eiif_may_fire(S, lo, hi, c, t)
    if model == SIF:
        return nk.signed_if_may_fire(S, lo, hi, c, t)
    return True


@njit(cache=True)
def propagate(t, g, v, p, indptr, post, w, delay, proj_pre_lo, proj_post_lo, proj_target, proj_ptr_off,
              proj_syn_off, proj_udelay, pre_proj, pre_proj_ptr, synops, qbuf, qcount, totals):
    """Fan the spike (neuron g of population p, value v) out through every outgoing projection."""
    n_slots = qbuf.shape[0]
    t_slot = t % n_slots
    fv = np.float64(v)
    for j in range(pre_proj_ptr[p], pre_proj_ptr[p + 1]):
        k = pre_proj[j]
        jj = g - proj_pre_lo[k]
        base = proj_syn_off[k]
        a = base + indptr[proj_ptr_off[k] + jj]
        b = base + indptr[proj_ptr_off[k] + jj + 1]
        tgt = proj_target[k]
        plo = proj_post_lo[k]
        ud = proj_udelay[k]
        if ud > 0:  # one delay: one slot, a plain scatter-add in CSR order (same sums, same order)
            slot = t_slot + ud
            if slot >= n_slots:
                slot -= n_slots
            row = qbuf[slot, tgt]
            for s in range(np.uint64(a), np.uint64(b)):
                row[np.uint64(plo + post[s])] += fv * w[s]
            qcount[slot] += b - a
            synops[k] += b - a
            totals[0] += b - a
            continue
        for s in range(np.uint64(a), np.uint64(b)):
            slot = t_slot + delay[s]  # delay < n_slots, so one subtraction replaces a modulo
            if slot >= n_slots:
                slot -= n_slots
            qbuf[slot, tgt, np.uint64(plo + post[s])] += fv * w[s]
            qcount[slot] += 1
        synops[k] += b - a
        totals[0] += b - a


FLAGS = ("lif", "eiif", "izhikevich", "signed_if", "poisson", "spike_times", "noise", "poisson_input",
         "current_steps", "learn")


def loop_for(plan, plastic):
    """The compiled loop specialised to what ``plan`` uses (memoised, and cached on disk by Numba)."""
    models = {p.model.name for p in plan.pops}
    flags = tuple(name in models for name in FLAGS[:6]) + (
        plan.nz_key.size > 0, plan.pin_key.size > 0, plan.cs_step.size > 0, bool(plastic))
    return _make_run(*flags)


@functools.cache
def _make_run(HAS_LIF, HAS_EIIF, HAS_IZH, HAS_SIF, HAS_POISSON, HAS_TIMES, HAS_NOISE, HAS_PIN, HAS_STEPS,
              HAS_LEARN):
    """Build the time loop with only the code a network needs.

    The flags are closure constants: Numba prunes the branches they switch off before
    typing, so a LIF-only network never compiles the Izhikevich kernel, the random streams
    or the learn phase (cold start drops from tens of seconds to a few). Numba's cache key
    includes the closure's values, so each variant is cached on disk separately.
    """

    @njit(cache=True)
    def _run(t0, n_steps, until_quiescent,
             S, pop_lo, pop_hi, pop_model, consts, driven, pop_key,
             indptr, post, w, delay, proj_pre_lo, proj_post_lo, proj_target, proj_ptr_off, proj_syn_off,
             proj_udelay, pre_proj, pre_proj_ptr, synops,
             qbuf, qcount, totals,
             i_cur, cs_step, cs_lohi, cs_delta, nz_lohi, nz_ms, nz_key, pin_lohi, pin_par, pin_target, pin_key,
             src_step, src_idx, src_ptr,
             rec_mask, rec_steps, rec_idx, rec_val, counts, sample_rows, sample_cols, every, samples, sample_steps,
             nrec, plast):
        N = S.shape[1]
        P = pop_lo.size
        zig_x = ZIG_X
        zig_f = ZIG_F
        n_slots = qbuf.shape[0]
        i_ext = np.zeros(N)
        flag = np.zeros((N + 7) // 8 * 8, dtype=np.bool_)  # whole 8-byte words for the compaction
        out_idx = np.zeros(N, dtype=np.int64)
        out_val = np.zeros(N, dtype=np.int8)
        n_rec = 0
        for i in range(N):
            n_rec += rec_mask[i]
        cap = rec_steps.size
        for s in range(n_steps):
            t = t0 + s
            if nrec[0] + n_rec > cap:
                return s, False
            # 1. deliver: the models read this step's slot in place; it is cleared after the update
            slot = t % n_slots
            qe = qbuf[slot, 0]
            qi = qbuf[slot, 1]
            totals[1] += qcount[slot]
            qcount[slot] = 0
            if HAS_STEPS:
                for k in range(cs_step.size):
                    if cs_step[k] == t:
                        for i in range(cs_lohi[k, 0], cs_lohi[k, 1]):
                            i_cur[i] += cs_delta[k]
            iext = i_cur
            if HAS_NOISE:
                for i in range(N):
                    i_ext[i] = i_cur[i]
                for k in range(nz_key.size):
                    lo = nz_lohi[k, 0]
                    for i in range(lo, nz_lohi[k, 1]):
                        i_ext[i] += nz_ms[k, 0] + nz_ms[k, 1] * normal_nb(nz_key[k], t, i - lo, zig_x, zig_f)
                iext = i_ext
            if HAS_PIN:
                for k in range(pin_key.size):
                    lo = pin_lohi[k, 0]
                    for i in range(lo, pin_lohi[k, 1]):
                        n_ev = poisson_nb(pin_key[k], t, i - lo, pin_par[k, 0], pin_par[k, 1])
                        if pin_target[k] == 0:
                            qe[i] += n_ev * pin_par[k, 2]
                        else:
                            qi[i] += n_ev * pin_par[k, 2]
            # 2. update (dispatch inline: a dispatch function blocks vectorisation, 5x slower)
            nout = 0
            for p in range(P):
                lo = pop_lo[p]
                hi = pop_hi[p]
                m = pop_model[p]
                before = nout
                if HAS_LIF:
                    if m == LIF:
                        nout = nk.lif_update(S, lo, hi, consts[p], qe, qi, iext, t, flag, out_idx, out_val, nout)
                if HAS_EIIF:
                    if m == EIIF:
                        nout = nk.eiif_update(S, lo, hi, consts[p], qe, qi, iext, t, flag, out_idx, out_val, nout)
                if HAS_IZH:
                    if m == IZH:
                        nout = nk.izhikevich_update(S, lo, hi, consts[p], qe, qi, iext, t, flag, out_idx, out_val,
                                                    nout)
                if HAS_SIF:
                    if m == SIF:
                        nout = nk.signed_if_update(S, lo, hi, consts[p], qe, qi, iext, t, flag, out_idx, out_val,
                                                   nout)
                if HAS_POISSON:
                    if m == POISSON:
                        prob = consts[p, 0]
                        for i in range(lo, hi):
                            if uniform_nb(pop_key[p], t, i - lo) < prob:
                                out_idx[nout] = i
                                out_val[nout] = 1
                                nout += 1
                if HAS_TIMES:
                    if m == TIMES:
                        last = -1
                        k = src_ptr
                        while k < src_step.size and src_step[k] == t:
                            g = src_idx[k]
                            if lo <= g < hi and g != last:
                                out_idx[nout] = g
                                out_val[nout] = 1
                                nout += 1
                                last = g
                            k += 1
                counts[s, p] = nout - before
            if HAS_TIMES:
                while src_ptr < src_step.size and src_step[src_ptr] <= t:
                    src_ptr += 1
            # 3. learn
            if HAS_LEARN:
                learn_nb(t, out_idx, out_val, nout, S, w, indptr, post, delay, proj_ptr_off, proj_syn_off,
                         proj_pre_lo, proj_post_lo, pop_lo, pop_hi, plast)
            # 4. propagate
            p = 0
            for e in range(nout):
                g = out_idx[e]
                while g >= pop_hi[p]:
                    p += 1
                propagate(t, g, out_val[e], p, indptr, post, w, delay, proj_pre_lo, proj_post_lo, proj_target,
                          proj_ptr_off, proj_syn_off, proj_udelay, pre_proj, pre_proj_ptr, synops, qbuf, qcount,
                          totals)
            # 5. record
            for e in range(nout):
                g = out_idx[e]
                if rec_mask[g] == 1:
                    r = nrec[0]
                    rec_steps[r] = t
                    rec_idx[r] = g
                    rec_val[r] = out_val[e]
                    nrec[0] = r + 1
            if sample_rows.size > 0 and t % every == 0:
                r = nrec[2]
                for k in range(sample_rows.size):
                    samples[r, k] = S[sample_rows[k], sample_cols[k]]
                sample_steps[r] = t
                nrec[2] = r + 1
            nrec[1] = s + 1
            if until_quiescent and nout == 0:
                pending = 0
                for k in range(n_slots):
                    pending += qcount[k]
                if pending == 0:
                    busy = False
                    for p2 in range(P):
                        if _may_fire(pop_model[p2], S, pop_lo[p2], pop_hi[p2], consts[p2], driven[p2], src_step,
                                     src_idx, t):
                            busy = True
                            break
                    if not busy:
                        return s + 1, True
        return n_steps, False

    return _run
