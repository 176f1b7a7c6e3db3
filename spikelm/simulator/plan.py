"""The packed form of a network that every backend runs: flat typed arrays, no objects.

State: one float64 matrix ``S[n_vars, N]``; population p owns columns [lo_p, hi_p) and its
variables are rows 0..k-1 in the order its model declares. ``Population.state`` is
re-bound to views of ``S``, so the Python objects and the kernels share one copy.
Projections are concatenated CSR arrays with per-projection offsets, each kept as narrow as
its values allow (post indices uint16 when every post population has at most 65,536
neurons, delays uint8 up to 255 steps, weights float32 when every projection holds float32
weights): the values are the same, so no spike changes, and a synapse of the cortical
microcircuit takes 7 bytes. The projections' own arrays become views of these. Stimuli are
packed per kind. Everything here is built once, at ``Simulator`` construction.
"""
from __future__ import annotations

import math

import numpy as np

from spikelm.network.models import eiif, lif
from spikelm.network.models.sources import spike_steps
from spikelm.network.stimulus import ConstantCurrent, CurrentSteps, NoiseCurrent, PoissonInput

from . import rng
from .queue import EventQueue

TARGET = {"exc": 0, "inh": 1}


class Plan:
    """Flat arrays for one network (see module docstring)."""

    def __init__(self, net):
        self.net = net
        self.dt = net.dt
        pops = list(net.populations.values())
        projs = list(net.projections.values())
        self.pops, self.projs = pops, projs
        self.pop_index = {p.name: i for i, p in enumerate(pops)}
        P = len(pops)
        sizes = np.array([p.n for p in pops], dtype=np.int64)
        self.pop_lo = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.pop_hi = self.pop_lo + sizes
        self.N = int(sizes.sum())
        self.consts = np.zeros((P, max(max(len(p.model.consts) for p in pops), 1)))
        for i, p in enumerate(pops):
            c = p.model.derive(p.params, net.dt)
            self.consts[i, :c.size] = c
            if p.model.name == "lif" and p.plasticity is not None:
                # a rule (homeostasis) may move the threshold offset row `a`: the kernel must read it
                self.consts[i, lif.C.uses_a] = 1.0
        self.threads = 1  # the numba backend's thread count (set by the Simulator)
        self.n_vars = max(len(p.model.state_vars) for p in pops)
        self.S = np.zeros((self.n_vars, self.N))
        for i, p in enumerate(pops):
            lo, hi = self.pop_lo[i], self.pop_hi[i]
            for r, var in enumerate(p.model.state_vars):
                self.S[r, lo:hi] = p.state[var]
                p.state[var] = self.S[r, lo:hi]
        self.set_windows()

        # projections, grouped by pre population (spikes fan out in projection order)
        K = len(projs)
        self.proj_pre_lo = np.array([self.pop_lo[self.pop_index[k.pre.name]] for k in projs], dtype=np.int64)
        self.proj_post_lo = np.array([self.pop_lo[self.pop_index[k.post.name]] for k in projs], dtype=np.int64)
        self.proj_target = np.array([TARGET[k.target] for k in projs], dtype=np.int64)
        self.proj_ptr_off = np.zeros(K + 1, dtype=np.int64)
        self.proj_syn_off = np.zeros(K + 1, dtype=np.int64)
        for i, k in enumerate(projs):
            self.proj_ptr_off[i + 1] = self.proj_ptr_off[i] + k.pre.n + 1
            self.proj_syn_off[i + 1] = self.proj_syn_off[i] + k.n_syn
        self.proj_n_post = np.array([k.post.n for k in projs], dtype=np.int64)
        self.indptr = _cat([k.indptr for k in projs], np.int64)
        narrow_post = all(k.post.n <= 1 << 16 for k in projs)
        narrow_w = bool(projs) and all(k.w.dtype == np.float32 for k in projs)
        # the projections' arrays become views of these, one by one: one copy of each synapse
        self.post = _cat_views(projs, "post_idx", self.proj_syn_off, np.uint16 if narrow_post else np.int32)
        self.w = _cat_views(projs, "w", self.proj_syn_off, np.float32 if narrow_w else np.float64)
        self.delay = _cat_views(projs, "delay", self.proj_syn_off,
                                np.uint8 if all(k.max_delay < 256 for k in projs) else np.int16)
        # delay groups: the synapses of a row with one delay are contiguous (projections keep
        # (pre, delay, post) order), so a spike adds each group into one queue slot
        self.row_grp, self.grp_ptr, self.grp_delay = _delay_groups(self)
        order = sorted(range(K), key=lambda i: self.pop_index[projs[i].pre.name])
        self.pre_proj = np.array(order, dtype=np.int64)
        self.pre_proj_ptr = np.zeros(P + 1, dtype=np.int64)
        for i in order:
            self.pre_proj_ptr[self.pop_index[projs[i].pre.name] + 1] += 1
        np.cumsum(self.pre_proj_ptr, out=self.pre_proj_ptr)
        # one delay for the whole projection (or -1): lets the fan-out skip per-synapse slots
        self.proj_udelay = np.array([int(k.delay[0]) if k.n_syn and np.all(k.delay == k.delay[0]) else -1
                                     for k in projs], dtype=np.int64)
        self.synops = np.zeros(K, dtype=np.int64)
        self.queue = EventQueue(self.N, max([k.max_delay for k in projs], default=1))

        self._pack_stimuli(net)
        self._pack_sources(pops)

    def set_windows(self):
        for i, p in enumerate(self.pops):
            if p.model.name == "eiif":
                self.consts[i, eiif.C.window_start] = float(p.window_start)

    def _pack_stimuli(self, net):
        lohi = lambda s: (self.pop_lo[self.pop_index[s.population]], self.pop_hi[self.pop_index[s.population]])
        self.i_const = np.zeros(self.N)
        steps = []
        nz, pin = [], []
        self.driven = np.zeros(len(self.pops), dtype=np.bool_)
        for s in net.stimuli:
            lo, hi = lohi(s)
            self.driven[self.pop_index[s.population]] = True
            if isinstance(s, ConstantCurrent):
                self.i_const[lo:hi] += np.asarray(s.amplitude, dtype=np.float64)
            elif isinstance(s, CurrentSteps):
                prev = 0.0
                for t_ms, a in zip(s.times, s.amplitudes):
                    step = int(round(t_ms / self.dt))
                    if isinstance(a, tuple) or isinstance(prev, np.ndarray):
                        # per-neuron amplitudes become one-neuron entries, so every backend's kernel
                        # (which adds one number to a range of neurons) runs them unchanged
                        a = np.broadcast_to(np.asarray(a, dtype=np.float64), (hi - lo,))
                        delta = a - prev
                        steps.extend((step, lo + j, lo + j + 1, float(delta[j])) for j in np.flatnonzero(delta))
                        prev = a
                    else:
                        steps.append((step, lo, hi, a - prev))
                        prev = a
            elif isinstance(s, NoiseCurrent):
                nz.append((lo, hi, s.mean, s.std, rng.stream_key(net.seed, rng.STREAM_NOISE + len(nz))))
            elif isinstance(s, PoissonInput):
                lam = s.rate * self.dt * 1e-3
                pin.append((lo, hi, lam, math.exp(-lam), s.weight, TARGET[s.target],
                            rng.stream_key(net.seed, rng.STREAM_POISSON_INPUT + len(pin))))
        steps.sort(key=lambda x: x[0])
        self.cs_step = np.array([x[0] for x in steps], dtype=np.int64)
        self.cs_lohi = np.array([[x[1], x[2]] for x in steps], dtype=np.int64).reshape(-1, 2)
        self.cs_delta = np.array([x[3] for x in steps], dtype=np.float64)
        self.nz_lohi = np.array([[x[0], x[1]] for x in nz], dtype=np.int64).reshape(-1, 2)
        self.nz_ms = np.array([[x[2], x[3]] for x in nz], dtype=np.float64).reshape(-1, 2)
        self.nz_key = np.array([x[4] for x in nz], dtype=np.uint64)
        self.pin_lohi = np.array([[x[0], x[1]] for x in pin], dtype=np.int64).reshape(-1, 2)
        self.pin_par = np.array([[x[2], x[3], x[4]] for x in pin], dtype=np.float64).reshape(-1, 3)
        self.pin_target = np.array([x[5] for x in pin], dtype=np.int64)
        self.pin_key = np.array([x[6] for x in pin], dtype=np.uint64)

    def _pack_sources(self, pops):
        self.pop_key = np.array([rng.stream_key(self.net.seed, rng.STREAM_POISSON_POP + i) for i in range(len(pops))],
                                dtype=np.uint64)
        st, si = [], []
        for i, p in enumerate(pops):
            if p.model.name == "spike_times":
                for j, ts in enumerate(p.params.times):
                    for step in spike_steps(ts, self.dt, f"population '{p.name}': times[{j}]"):
                        st.append(step)
                        si.append(self.pop_lo[i] + j)
        order = np.lexsort((np.array(si, dtype=np.int64), np.array(st, dtype=np.int64))) if st else []
        self.src_step = np.array(st, dtype=np.int64)[order] if st else np.zeros(0, np.int64)
        self.src_idx = np.array(si, dtype=np.int64)[order] if st else np.zeros(0, np.int64)

    def current_at(self, t):
        """The piecewise-constant current (constant + steps) in force at step t."""
        i_ext = self.i_const.copy()
        for k in range(self.cs_step.size):
            if self.cs_step[k] <= t:
                lo, hi = self.cs_lohi[k]
                i_ext[lo:hi] += self.cs_delta[k]
        return i_ext


def _cat_views(projs, name, offsets, dtype):
    """Concatenate each projection's array ``name`` into one of ``dtype`` and rebind it to its
    view there (so each original is freed as soon as it is copied)."""
    out = np.empty(int(offsets[-1]), dtype=dtype)
    for i, k in enumerate(projs):
        a, b = offsets[i], offsets[i + 1]
        out[a:b] = getattr(k, name)
        setattr(k, name, out[a:b])
    return out


def _delay_groups(plan):
    """(row_grp, grp_ptr, grp_delay): row r's groups are row_grp[r]:row_grp[r + 1] (rows laid
    out as ``indptr``), group q's synapses grp_ptr[q]:grp_ptr[q + 1] (global), its delay grp_delay[q]."""
    row_grp = np.zeros(plan.indptr.size, dtype=np.int64)
    starts, delays = [], []
    n_grp = 0
    for k, proj in enumerate(plan.projs):
        a, b = int(plan.proj_syn_off[k]), int(plan.proj_syn_off[k + 1])
        p0 = int(plan.proj_ptr_off[k])
        ptr = plan.indptr[p0:p0 + proj.pre.n + 1]
        d = plan.delay[a:b]
        first = np.zeros(b - a, dtype=bool)
        first[ptr[:-1][ptr[:-1] < ptr[1:]]] = True          # a row's first synapse
        if b - a > 1:
            first[1:] |= d[1:] != d[:-1]                    # a new delay within the row
        s = np.flatnonzero(first)
        row_grp[p0:p0 + proj.pre.n + 1] = n_grp + np.searchsorted(s, ptr)
        starts.append(s + a)
        delays.append(d[s])
        n_grp += s.size
    grp_ptr = np.concatenate(starts + [np.array([plan.proj_syn_off[-1]])]).astype(np.int64)
    grp_delay = np.concatenate(delays).astype(plan.delay.dtype) if delays else np.zeros(0, plan.delay.dtype)
    return row_grp, grp_ptr, grp_delay


def _cat(arrays, dtype):
    return np.concatenate([np.asarray(a, dtype=dtype) for a in arrays]) if arrays else np.zeros(0, dtype)
