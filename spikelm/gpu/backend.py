"""The CuPy backend: the five-phase step (docs/design.md) as CUDA kernels, many steps per Python call.

``run_chunk(plan, buf, t0, n_steps, until_quiescent, learn=None)`` is the same operation as
the numpy and numba backends. Per chunk it uploads the mutable state (state matrix, weights,
ring buffer, counters, constants), runs the steps on the device and copies the state and the
record buffers back once. Static arrays (CSR, delays, stimuli, spike times) stay on the
device for the life of the :class:`Plan`.

One step is a fixed sequence of launches that read ``t`` and the stop flag from the device
control array, so it is captured once as a CUDA graph and replayed (``SPIKELM_CUPY_GRAPHS=0``:
a plain loop of launches instead). The host checks the stop flag (chunk end, record buffer
full, quiescence) after 8, 16, 32, ... steps (at most :data:`BATCH` apart); launches after
a stop return at once.

Propagation (``SPIKELM_CUPY_PROPAGATION`` or :func:`set_propagation`): ``"atomic"`` (default,
warps and atomicAdd: float sums in any order, see docs/gpu.md for the tolerance) or
``"ordered"`` (one thread in numba's order: bit-identical float sums, slow for big networks).

Not on the GPU yet: plasticity rules (``learn``): :func:`run_chunk` refuses them with a
:class:`BackendUnavailableError` rather than running them on the CPU behind the user's back.
"""
from __future__ import annotations

import importlib.util
import os
import warnings
import weakref

import numpy as np

from spikelm.errors import BackendUnavailableError, ConfigError
from spikelm.network.models.sources import POISSON_C
from spikelm.simulator.rng import ZIG_F, ZIG_X

from . import kernels as gk

INSTALL = "pip install -e '.[gpu]'"
BATCH = 256  # at most this many steps enqueued between two looks at the device stop flag
FIRST_BATCH = 8  # the first look comes this early; the batch doubles up to BATCH
PROPAGATION_MODES = ("atomic", "ordered")

_propagation = os.environ.get("SPIKELM_CUPY_PROPAGATION", "atomic")
_graphs = os.environ.get("SPIKELM_CUPY_GRAPHS", "1") not in ("0", "false", "no")
_states = weakref.WeakKeyDictionary()  # Plan -> _Device


# -- availability -------------------------------------------------------------------------------------

def _one_line(err):
    return " ".join(str(err).split()) or type(err).__name__


def _cupy_installed():
    try:
        return importlib.util.find_spec("cupy") is not None
    except (ImportError, ValueError):
        return False


def _import_cupy():
    """Import CuPy or raise the one-line error that says which piece is missing."""
    try:
        import cupy
    except ImportError as e:
        if not _cupy_installed():
            raise BackendUnavailableError(f"backend 'cupy': CuPy is not installed; "
                                          f"install it with: {INSTALL}") from None
        raise BackendUnavailableError(f"backend 'cupy': cupy found but no CUDA GPU: {_one_line(e)}") from None
    return cupy


def check_available():
    """Raise :class:`BackendUnavailableError` (one line) unless CuPy and a CUDA GPU are usable."""
    cp = _import_cupy()
    try:
        n = cp.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError (no driver, no device), or a broken install
        raise BackendUnavailableError(f"backend 'cupy': cupy found but no CUDA GPU: {_one_line(e)}") from None
    if n < 1:
        raise BackendUnavailableError("backend 'cupy': cupy found but no CUDA GPU: no CUDA device is visible "
                                      "(check CUDA_VISIBLE_DEVICES)")


def unavailable_reason():
    """None when the backend can run here, else the reason (the message of :func:`check_available`)."""
    try:
        check_available()
    except BackendUnavailableError as e:
        return str(e)
    return None


def set_propagation(mode):
    """Choose "atomic" (fast, float sums in any order) or "ordered" (numba's order, bit-identical)."""
    global _propagation
    if mode not in PROPAGATION_MODES:
        raise ConfigError(f"cupy propagation must be one of {', '.join(PROPAGATION_MODES)}, got {mode!r}")
    _propagation = mode


def set_graphs(enabled):
    """Replay one captured CUDA graph per step (True) or launch the kernels one by one (False)."""
    global _graphs
    _graphs = bool(enabled)


# -- the operation ----------------------------------------------------------------------------------------

def run_chunk(plan, buf, t0, n_steps, until_quiescent, learn=None):
    """Advance ``plan`` by up to ``n_steps`` steps from ``t0``; return (steps done, quiescent)."""
    if learn is not None:
        raise BackendUnavailableError("backend 'cupy': plasticity rules do not run on the GPU yet; "
                                      "use backend='numba' for networks with plasticity")
    if _propagation not in PROPAGATION_MODES:
        raise ConfigError(f"SPIKELM_CUPY_PROPAGATION must be one of {', '.join(PROPAGATION_MODES)}, "
                          f"got {_propagation!r}")
    if n_steps <= 0:
        return 0, False
    cp = _import_cupy()
    dev = _states.get(plan)
    if dev is None:
        dev = _states[plan] = _Device(cp, plan)
    return dev.run(plan, buf, int(t0), int(n_steps), bool(until_quiescent), _propagation == "ordered", _graphs)


def _grid(n):
    return (max(1, min((int(n) + gk.TILE - 1) // gk.TILE, 65535)),)


class _Device:
    """The device copy of one plan, its kernels, and the captured step graphs."""

    def __init__(self, cp, plan):
        self.cp = cp
        self.stream = cp.cuda.Stream(non_blocking=True)
        up = lambda x, dt: cp.asarray(np.ascontiguousarray(x, dtype=dt))
        i64, f64 = np.int64, np.float64
        with self.stream:
            for name in ("pop_lo", "pop_hi", "indptr", "proj_pre_lo", "proj_post_lo", "proj_target", "proj_ptr_off",
                         "proj_syn_off", "proj_udelay", "pre_proj", "pre_proj_ptr", "cs_step", "cs_lohi", "nz_lohi",
                         "pin_lohi", "pin_target", "src_step", "src_idx"):
                setattr(self, name, up(getattr(plan, name), i64))
            for name in ("cs_delta", "nz_ms", "pin_par"):
                setattr(self, name, up(getattr(plan, name), f64))
            self.nz_key = up(plan.nz_key, np.uint64)
            self.pin_key = up(plan.pin_key, np.uint64)
            self.post = up(plan.post, np.int32)
            self.delay = up(plan.delay, np.int16)
            self.zig_x, self.zig_f = up(ZIG_X, f64), up(ZIG_F, f64)
            self.S = cp.empty(plan.S.shape, f64)
            self.w = cp.empty(plan.w.shape, f64)
            self.consts = cp.empty(plan.consts.shape, f64)
            self.qbuf = cp.empty(plan.queue.buf.shape, f64)
            self.qcount = cp.empty(plan.queue.count.shape, i64)
            self.totals = cp.empty(2, i64)
            self.synops = cp.empty(plan.synops.shape, i64)
            self.i_cur = cp.empty(plan.N, f64)
            self.iext = cp.empty(plan.N, f64)
            self.fired = cp.zeros(plan.N, np.int8)
            self.n_tiles = max(1, (plan.N + gk.TILE - 1) // gk.TILE)
            self.tile_cnt = cp.zeros(self.n_tiles, np.int32)
            self.out_idx = cp.zeros(plan.N, i64)
            self.out_val = cp.zeros(plan.N, np.int8)
            self.ctl = cp.zeros(len(gk.CTL), i64)
        self.models = [p.model.name for p in plan.pops]
        self.k = {}
        for m in sorted(set(self.models)):
            mod = gk.get_module(m)
            for name in gk.model_kernels(m):
                self.k[name] = mod.get_function(name)
        self.common = {}  # ordered -> kernels, compiled on first use of that mode
        self.static_busy = any(
            bool(plan.driven[p]) or gk.MODEL_SOURCES[m]["static_busy"] is True
            or (m == "poisson" and plan.consts[p, POISSON_C.prob] > 0) for p, m in enumerate(self.models))
        self.buffers = weakref.WeakKeyDictionary()  # ChunkBuffers -> dict of device arrays
        self.n_prop_blocks = 8 * cp.cuda.Device().attributes["MultiProcessorCount"]

    def _common(self, ordered):
        c = self.common.get(ordered)
        if c is None:
            mod = gk.get_module("common", flags=("ordered",) if ordered else ())
            c = self.common[ordered] = {name: mod.get_function(name) for name in gk.COMMON_KERNELS}
        return c

    # -- host <-> device ---------------------------------------------------------------------------------
    def _buffers(self, buf):
        d = self.buffers.get(buf)
        if d is None:
            cp = self.cp
            with self.stream:
                d = {"rec_mask": cp.asarray(buf.rec_mask.astype(np.uint8)),
                     "steps": cp.zeros(buf.steps.shape, np.int64), "idx": cp.zeros(buf.idx.shape, np.int64),
                     "val": cp.zeros(buf.val.shape, np.int8), "counts": cp.zeros(buf.counts.shape, np.int64),
                     "rows": cp.asarray(buf.sample_rows), "cols": cp.asarray(buf.sample_cols),
                     "samples": cp.zeros(buf.samples.shape, np.float64),
                     "sample_steps": cp.zeros(buf.sample_steps.shape, np.int64),
                     "n_rec": int(buf.n_rec), "graphs": {}}  # graphs hold these pointers: same lifetime
            self.buffers[buf] = d
        return d

    def _upload(self, plan, t0):
        q = plan.queue
        with self.stream:
            self.S.set(np.ascontiguousarray(plan.S))
            self.w.set(np.ascontiguousarray(plan.w, dtype=np.float64))  # float32 weights: the same values
            self.consts.set(np.ascontiguousarray(plan.consts))
            self.qbuf.set(q.buf)
            self.qcount.set(q.count)
            self.totals.set(q.totals)
            self.synops.set(plan.synops)
            self.i_cur.set(plan.current_at(t0 - 1))

    def _download(self, plan, buf, d, ctl):
        q = plan.queue
        with self.stream:
            plan.S[...] = self.S.get()
            q.buf[...] = self.qbuf.get()
            q.count[...] = self.qcount.get()
            q.totals[...] = self.totals.get()
            plan.synops[...] = self.synops.get()
            n0, n1 = int(buf.n[0]), int(ctl[gk.C["NREC"]])
            if n1 > n0:
                buf.steps[n0:n1] = d["steps"][n0:n1].get()
                buf.idx[n0:n1] = d["idx"][n0:n1].get()
                buf.val[n0:n1] = d["val"][n0:n1].get()
            done = int(ctl[gk.C["S"]])
            if done:
                buf.counts[:done] = d["counts"][:done].get()
            s0, s1 = int(buf.n[2]), int(ctl[gk.C["NSAMP"]])
            if s1 > s0:
                buf.samples[s0:s1] = d["samples"][s0:s1].get()
                buf.sample_steps[s0:s1] = d["sample_steps"][s0:s1].get()
        buf.n[0], buf.n[1], buf.n[2] = n1, done, s1

    # -- the step ---------------------------------------------------------------------------------------------
    def _launch_step(self, plan, d, until_quiescent, ordered):
        """Enqueue one step: every launch reads t and the stop flag from ``ctl`` (graph-capturable)."""
        k, c = self.k, self._common(ordered)
        i64 = np.int64
        N, n_slots, tile = i64(plan.N), i64(plan.queue.n_slots), (gk.TILE,)
        ctl = self.ctl
        c["begin_step"]((1,), (1,), (ctl, self.qcount, self.totals, n_slots))
        has_deliver = plan.cs_step.size or plan.nz_key.size or plan.pin_key.size
        if has_deliver:
            c["deliver"](_grid(plan.N), tile, (
                ctl, N, self.qbuf, n_slots, self.i_cur, self.iext, self.cs_step, self.cs_lohi, self.cs_delta,
                i64(plan.cs_step.size), self.nz_lohi, self.nz_ms, self.nz_key, i64(plan.nz_key.size), self.pin_lohi,
                self.pin_par, self.pin_target, self.pin_key, i64(plan.pin_key.size), self.zig_x, self.zig_f))
        iext = self.iext if has_deliver else self.i_cur
        for p, m in enumerate(self.models):
            lo, hi = int(plan.pop_lo[p]), int(plan.pop_hi[p])
            k[f"update_{m}"](_grid(hi - lo), tile, (ctl, self.S, N, i64(lo), i64(hi), self.consts[p], self.qbuf,
                                                   n_slots, iext, self.fired, np.uint64(plan.pop_key[p])))
        if plan.src_step.size:
            c["spike_times_fire"]((1,), tile, (ctl, self.src_step, self.src_idx, i64(plan.src_step.size), self.fired))
        tiles = (self.n_tiles,)
        c["tile_count"](tiles, tile, (ctl, self.fired, N, self.tile_cnt))
        c["compact"](tiles, tile, (ctl, self.fired, N, self.tile_cnt, self.out_idx, self.out_val))
        if plan.post.size:
            grid, block = ((1,), (1,)) if ordered else ((self.n_prop_blocks,), tile)
            c["propagate"](grid, block, (
                ctl, N, self.out_idx, self.out_val, self.pop_hi, self.indptr, self.post, self.w, self.delay,
                self.proj_pre_lo, self.proj_post_lo, self.proj_target, self.proj_ptr_off, self.proj_syn_off,
                self.proj_udelay, self.pre_proj, self.pre_proj_ptr, self.synops, self.qbuf, self.qcount, self.totals,
                n_slots))
        if d["n_rec"]:
            c["record"]((1,), tile, (ctl, self.out_idx, self.out_val, d["rec_mask"], d["steps"], d["idx"], d["val"]))
        K = int(d["rows"].size)
        if K:
            c["sample"](_grid(K), tile, (ctl, self.S, N, d["rows"], d["cols"], i64(K), d["samples"],
                                         d["sample_steps"]))
        if until_quiescent and not self.static_busy:
            for p, m in enumerate(self.models):
                if m in ("poisson", "spike_times"):
                    continue  # rate 0 (else static_busy) / the spike_times pointer, checked in end_step
                lo, hi = int(plan.pop_lo[p]), int(plan.pop_hi[p])
                k[f"may_fire_{m}"](_grid(hi - lo), tile, (ctl, self.S, N, i64(lo), i64(hi), self.consts[p]))
        c["end_step"]((1,), (1,), (ctl, self.qcount, n_slots, d["counts"], self.out_idx, self.pop_lo, self.pop_hi,
                                   i64(len(self.models)), self.src_step, i64(plan.src_step.size)))

    def _step_fn(self, plan, buf, d, until_quiescent, ordered, graphs):
        """A callable that enqueues one step: a replayed CUDA graph, or the launches themselves."""
        key = (until_quiescent, ordered)
        if graphs:
            g = d["graphs"].get(key)
            if g is None:
                try:
                    self.stream.begin_capture()
                    try:
                        self._launch_step(plan, d, until_quiescent, ordered)
                    finally:
                        g = self.stream.end_capture()
                    d["graphs"][key] = g
                except Exception as e:  # capture unsupported here: launch step by step, and say so
                    warnings.warn(f"cupy backend: CUDA graph capture failed ({_one_line(e)}); "
                                  f"launching kernels step by step", RuntimeWarning, stacklevel=3)
                    set_graphs(False)
                    g = None
            if g is not None:
                return lambda: g.launch(self.stream)
        return lambda: self._launch_step(plan, d, until_quiescent, ordered)

    def run(self, plan, buf, t0, n_steps, until_quiescent, ordered, graphs):
        if self.qbuf.shape != plan.queue.buf.shape or self.S.shape != plan.S.shape or self.w.shape != plan.w.shape:
            raise RuntimeError("backend 'cupy': the network's arrays changed shape after the Simulator was built; "
                               "build a new Simulator")
        d = self._buffers(buf)
        C = gk.C
        ctl = np.zeros(len(gk.CTL), np.int64)
        ctl[C["T"]] = t0
        ctl[C["NREC"]] = buf.n[0]
        ctl[C["NSAMP"]] = buf.n[2]
        ctl[C["SRC"]] = int(np.searchsorted(plan.src_step, t0))
        ctl[C["NSTEPS"]] = n_steps
        ctl[C["CAP"]] = buf.spike_cap
        ctl[C["NRECMASK"]] = buf.n_rec
        ctl[C["EVERY"]] = buf.every
        ctl[C["UNTILQ"]] = int(until_quiescent)
        ctl[C["SAMPLING"]] = int(buf.sample_rows.size > 0)
        ctl[C["STATIC_BUSY"]] = int(self.static_busy)
        self._upload(plan, t0)
        with self.stream:
            self.ctl.set(ctl)
            step = self._step_fn(plan, buf, d, until_quiescent, ordered, graphs)
            done, batch = 0, FIRST_BATCH
            while done < n_steps:
                for _ in range(min(batch, n_steps - done)):
                    step()
                done += batch
                batch = min(2 * batch, BATCH)  # short chunks (record buffer full, quiescence) waste little
                if int(self.ctl[C["STOP"]:C["STOP"] + 1].get()[0]):  # one sync per batch
                    break
            self.stream.synchronize()
            ctl = self.ctl.get()
        self._download(plan, buf, d, ctl)
        return int(ctl[C["S"]]), bool(ctl[C["QUIET"]])
