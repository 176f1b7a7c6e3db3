"""The NumPy reference backend: the five phases of a step, written plainly.

This is the oracle the compiled backends are tested against. It favours clarity over
speed, but keeps the same order of floating-point operations as the kernels (spikes in
population order then neuron order, synapses in CSR order, sequential additions), so float
paths agree bit for bit too.
"""
from __future__ import annotations

import numpy as np

from spikelm.plasticity import learn_numpy

from . import rng


def run_chunk(plan, buf, t0, n_steps, until_quiescent, learn=None):
    """Advance ``plan`` by up to ``n_steps`` steps from step ``t0``; return (steps done, quiescent)."""
    i_cur = plan.current_at(t0 - 1)
    q = plan.queue
    for s in range(n_steps):
        t = t0 + s
        if buf.n[0] + buf.n_rec > buf.spike_cap:
            return s, False
        # 1. deliver
        inp_e, inp_i = q.deliver(t)
        for k in range(plan.cs_step.size):
            if plan.cs_step[k] == t:
                lo, hi = plan.cs_lohi[k]
                i_cur[lo:hi] += plan.cs_delta[k]
        i_ext = i_cur.copy()
        for k in range(plan.nz_key.size):
            lo, hi = plan.nz_lohi[k]
            i_ext[lo:hi] += plan.nz_ms[k, 0] + plan.nz_ms[k, 1] * rng.normal(plan.nz_key[k], t, np.arange(hi - lo))
        for k in range(plan.pin_key.size):
            lo, hi = plan.pin_lohi[k]
            lam, elam, w = plan.pin_par[k]
            n_ev = rng.poisson(plan.pin_key[k], t, np.arange(hi - lo), lam, elam)
            (inp_e if plan.pin_target[k] == 0 else inp_i)[lo:hi] += n_ev * w
        # 2. update
        spk_idx, spk_val = [], []
        for p, pop in enumerate(plan.pops):
            lo, hi = plan.pop_lo[p], plan.pop_hi[p]
            if pop.model.name == "poisson":
                u = rng.uniform(plan.pop_key[p], t, np.arange(hi - lo))
                idx = np.flatnonzero(u < plan.consts[p, 0])
                val = np.ones(idx.size, dtype=np.int8)
            elif pop.model.name == "spike_times":
                a, b = np.searchsorted(plan.src_step, [t, t + 1])
                g = plan.src_idx[a:b]
                idx = np.unique(g[(g >= lo) & (g < hi)]) - lo
                val = np.ones(idx.size, dtype=np.int8)
            else:
                idx, val = pop.model.step(pop.state, plan.consts[p], inp_e[lo:hi], inp_i[lo:hi], i_ext[lo:hi], t)
            spk_idx.append(idx + lo)
            spk_val.append(val)
            buf.counts[s, p] = idx.size
        spk_idx = np.concatenate(spk_idx) if spk_idx else np.zeros(0, np.int64)
        spk_val = np.concatenate(spk_val) if spk_val else np.zeros(0, np.int8)
        # 3. learn
        if learn is not None:
            learn_numpy(plan, t, spk_idx, spk_val, learn)
        # 4. propagate
        _propagate(plan, t, spk_idx, spk_val)
        # 5. record
        rec = spk_idx[buf.rec_mask[spk_idx] == 1]
        m = rec.size
        buf.steps[buf.n[0]:buf.n[0] + m] = t
        buf.idx[buf.n[0]:buf.n[0] + m] = rec
        buf.val[buf.n[0]:buf.n[0] + m] = spk_val[buf.rec_mask[spk_idx] == 1]
        buf.n[0] += m
        if buf.sample_rows.size and t % buf.every == 0:
            buf.samples[buf.n[2]] = plan.S[buf.sample_rows, buf.sample_cols]
            buf.sample_steps[buf.n[2]] = t
            buf.n[2] += 1
        buf.n[1] = s + 1
        if until_quiescent and spk_idx.size == 0 and q.pending == 0 and not may_fire(plan, t):
            return s + 1, True
    return n_steps, False


def _propagate(plan, t, spk_idx, spk_val):
    posts, slots, vals, tgts = [], [], [], []
    for g, v in zip(spk_idx, spk_val):
        p = np.searchsorted(plan.pop_hi, g, side="right")
        for j in range(plan.pre_proj_ptr[p], plan.pre_proj_ptr[p + 1]):
            k = plan.pre_proj[j]
            jj = g - plan.proj_pre_lo[k]
            a = plan.proj_syn_off[k] + plan.indptr[plan.proj_ptr_off[k] + jj]
            b = plan.proj_syn_off[k] + plan.indptr[plan.proj_ptr_off[k] + jj + 1]
            if b == a:
                continue
            posts.append(plan.proj_post_lo[k] + plan.post[a:b])
            slots.append(plan.delay[a:b])
            vals.append(float(v) * plan.w[a:b])
            tgts.append(np.full(b - a, plan.proj_target[k]))
            plan.synops[k] += b - a
    if posts:
        plan.queue.push(t, np.concatenate(slots), np.concatenate(tgts), np.concatenate(posts), np.concatenate(vals))


def may_fire(plan, t):
    """Whether any neuron could still fire after step t without new synaptic input."""
    for p, pop in enumerate(plan.pops):
        if pop.model.name == "poisson":
            if plan.consts[p, 0] > 0:
                return True
        elif pop.model.name == "spike_times":
            mine = (plan.src_idx >= plan.pop_lo[p]) & (plan.src_idx < plan.pop_hi[p])
            if np.any(plan.src_step[mine] > t):
                return True
        elif pop.model.may_fire(pop.state, plan.consts[p], bool(plan.driven[p]), t):
            return True
    return False
