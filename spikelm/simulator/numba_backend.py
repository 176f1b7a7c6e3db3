"""The Numba backend: the whole time loop compiled, on one thread or many; one call per chunk.

:func:`run_chunk` packs the :class:`Plan` into the bundles of :mod:`bundles`, picks the loop
compiled for the network's models and features (:func:`loop_for`, built by
:mod:`compile` from :mod:`loop`), and runs a chunk of steps in one call. With ``threads > 1``
the neurons are split into one block per thread (:func:`blocks`); the spikes are those of
one thread, bit for bit (see :mod:`loop`).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import njit

from spikelm.errors import ConfigError
from spikelm.plasticity.interface import empty_arrays

from . import bundles as bn
from .compile import Flags, time_loop
from .kernels import BUILT_IN


#: Neurons per thread below which another thread does not pay: a parallel step costs a few
#: microseconds of synchronisation, what a serial step of about 10,000 neurons takes.
NEURONS_PER_THREAD = 10_000


def max_threads() -> int:
    """Threads Numba can run (its pool size: the machine's cores unless NUMBA_NUM_THREADS says less)."""
    return int(numba.config.NUMBA_NUM_THREADS)


def default_threads(n_neurons: int) -> int:
    """Every core, but one thread per :data:`NEURONS_PER_THREAD` neurons at most."""
    return max(1, min(max_threads(), n_neurons // NEURONS_PER_THREAD))


def check_threads(threads) -> int:
    """``threads`` as an int in [1, max_threads()], or a ConfigError naming what is allowed."""
    top = max_threads()
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or not 1 <= threads <= top:
        raise ConfigError(f"threads: must be an integer in [1, {top}] (this machine's Numba threads), got {threads!r}")
    return int(threads)


def run_chunk(plan, buf, t0, n_steps, until_quiescent, learn=None):
    """Advance ``plan`` by up to ``n_steps`` steps from ``t0``; return (steps done, quiescent)."""
    plast = learn.arrays if learn is not None else empty_arrays()
    run, kinds = loop_for(plan, learn is not None)
    if n_blocks(plan) > 1:  # (Numba's thread count is per calling thread; one block launches no pool)
        numba.set_num_threads(plan.threads)
    src_ptr = int(np.searchsorted(plan.src_step, t0))
    done, quiet = run(t0, n_steps, until_quiescent, src_ptr, plan.S, _pops(plan, kinds), _synapses(plan),
                      bn.Queue(plan.queue.buf, plan.queue.count, plan.queue.totals), _stimuli(plan, t0),
                      _record(buf), work_for(plan), plast)
    return int(done), bool(quiet)


def loop_for(plan, plastic):
    """The compiled loop specialised to what ``plan`` uses, and its model kinds (memoised;
    cached on disk by Numba)."""
    names = {p.model.name for p in plan.pops}
    kinds = tuple(sorted(names - set(BUILT_IN)))
    flags = Flags(noise=plan.nz_key.size > 0, poisson_input=plan.pin_key.size > 0,
                  current_steps=plan.cs_step.size > 0, spike_times="spike_times" in names, learn=bool(plastic),
                  threaded=n_blocks(plan) > 1)
    return time_loop(kinds, flags), kinds


def blocks(plan, n):
    """Split the neurons into ``n`` blocks of about equal work: bounds [n + 1].

    A neuron's work is its update plus the synapses that end on it, so the split balances
    ``1 + in-degree / 64`` per neuron. Bounds are multiples of 8 (whole 64-bit words of the
    fired flags), but the last, N. The split changes no result, only the balance.
    """
    N = plan.N
    cost = np.ones(N)
    for i, k in enumerate(plan.projs):
        a, b = plan.proj_syn_off[i], plan.proj_syn_off[i + 1]
        lo = plan.proj_post_lo[i]
        cost[lo:lo + k.post.n] += np.bincount(plan.post[a:b], minlength=k.post.n) / 64.0
    cum = np.cumsum(cost)
    bounds = np.searchsorted(cum, cum[-1] * np.arange(1, n) / n) // 8 * 8
    return np.concatenate([[0], np.maximum.accumulate(np.clip(bounds, 0, N)), [N]]).astype(np.int64)


def n_blocks(plan):
    """Blocks of neurons: one per thread (``plan.n_blocks``, when set, overrides it: tests split
    the neurons more finely than the threads, to show that the split changes nothing)."""
    return getattr(plan, "n_blocks", None) or plan.threads


def work_for(plan):
    """The step's scratch for ``n_blocks(plan)`` blocks (allocated once per block count)."""
    w = getattr(plan, "_numba_work", None)
    B = n_blocks(plan)
    if w is None or w.seg_n.size != B:
        N = plan.N
        bounds = blocks(plan, B)
        w = bn.Work(bounds=bounds, fired=np.zeros((N + 7) // 8 * 8, dtype=np.int8),
                    seg_idx=np.zeros(N, np.int64), seg_val=np.zeros(N, np.int8), seg_n=np.zeros(B, np.int64),
                    spk_idx=np.zeros(N, np.int64), spk_val=np.zeros(N, np.int8), i_ext=np.zeros(N),
                    qcount=np.zeros((B, plan.queue.n_slots), np.int64), split=group_splits(plan, bounds))
        plan._numba_work = w
    return w


def group_splits(plan, bounds):
    """split[i, q]: synapses of delay group q whose post neuron lies before bounds[i + 1]."""
    G = plan.grp_ptr.size - 1
    sizes = np.diff(plan.grp_ptr)
    dtype = np.uint16 if sizes.size == 0 or sizes.max() < 1 << 16 else np.int32
    split = np.zeros((bounds.size - 2, G if bounds.size > 2 else 0), dtype=dtype)
    if split.size:
        q_lo = plan.row_grp[plan.proj_ptr_off[:-1]]
        q_hi = plan.row_grp[plan.proj_ptr_off[:-1] + np.array([k.pre.n for k in plan.projs], dtype=np.int64)]
        _fill_splits(split, bounds, plan.grp_ptr, plan.post, plan.proj_post_lo, q_lo, q_hi)
    return split


@njit(cache=True)
def _fill_splits(split, bounds, grp_ptr, post, post_lo, q_lo, q_hi):
    for k in range(post_lo.size):
        for q in range(q_lo[k], q_hi[k]):
            a0 = grp_ptr[q]
            for i in range(split.shape[0]):
                x = bounds[i + 1] - post_lo[k]   # the edge as a post index of projection k
                a = a0
                z = grp_ptr[q + 1]
                while a < z:                     # first synapse whose post is >= x
                    mid = (a + z) >> 1
                    if post[mid] < x:
                        a = mid + 1
                    else:
                        z = mid
                split[i, q] = a - a0


def _pops(plan, kinds):
    kind_of = {name: k for k, name in enumerate(kinds)}
    kind_of["spike_times"] = len(kinds)  # TIMES_KIND of the generated loop
    return bn.Pops(plan.pop_lo, plan.pop_hi, np.array([kind_of[p.model.name] for p in plan.pops], dtype=np.int64),
                   plan.consts, plan.driven, plan.pop_key)


def _synapses(plan):
    return bn.Synapses(plan.indptr, plan.post, plan.w, plan.delay, plan.proj_pre_lo, plan.proj_post_lo,
                       plan.proj_n_post, plan.proj_target, plan.proj_ptr_off, plan.proj_syn_off, plan.row_grp,
                       plan.grp_ptr, plan.grp_delay, plan.pre_proj, plan.pre_proj_ptr, plan.synops)


def _stimuli(plan, t0):
    return bn.Stimuli(plan.current_at(t0 - 1), plan.cs_step, plan.cs_lohi, plan.cs_delta, plan.nz_lohi, plan.nz_ms,
                      plan.nz_key, plan.pin_lohi, plan.pin_par, plan.pin_target, plan.pin_key, plan.src_step,
                      plan.src_idx)


def _record(buf):
    return bn.Record(buf.rec_mask, buf.steps, buf.idx, buf.val, buf.counts, buf.sample_rows, buf.sample_cols,
                     int(buf.every), buf.samples, buf.sample_steps, buf.n)
