"""CUDA sources of the cupy backend and the memoised factory that compiles them.

Nothing here imports CuPy at module level: the sources, the per-model table and the key
logic are plain Python, so CI (no GPU) tests them. :func:`get_module` imports CuPy on first
use and compiles through ``@cupy.memoize(for_each_device=True)`` (the pattern of cuCIM).

Modules (the first element of a key):

- ``"common"``: every phase that is the same for all models: ``begin_step``, ``deliver``
  (current steps, noise, Poisson input), ``spike_times_fire``, ``tile_count`` + ``compact``
  (ordered spike compaction), ``propagate`` (CSR fan-out), ``record``, ``sample``,
  ``end_step`` (counts, quiescence, step counter). Flag ``"ordered"``: propagation by one
  thread in the numba order (bit-identical float sums) instead of warps with atomicAdd.
- one module per neuron model (:data:`MODEL_SOURCES`): the skeleton ``update_<model>`` owns
  the neuron loop and the fire flag; the model supplies only its update code, written
  expression by expression as in ``spikelm/simulator/kernels/<model>.py``; and
  ``may_fire_<model>`` for runs until quiescence.

All kernels read the step ``t`` and the stop flag from the device control array ``ctl``
(layout: :data:`CTL`), never from launch arguments, so one step's launches can be captured
once as a CUDA graph and replayed (see docs/gpu.md). Compiled with ``--fmad=false``: no
fused multiply-adds, so every float expression rounds as NumPy's does.
"""
from __future__ import annotations

import functools

import numpy as np

from spikelm.errors import ConfigError
from spikelm.simulator.rng import ATTEMPT, ZIG_R

#: Slots of the int64 control array every kernel reads (the device-side loop state).
CTL = ("T", "S", "STOP", "QUIET", "NOUT", "NREC", "NSAMP", "SRC", "BUSY", "NSTEPS", "CAP", "NRECMASK", "EVERY",
       "UNTILQ", "SAMPLING", "STATIC_BUSY")
C = {name: i for i, name in enumerate(CTL)}

DTYPES = {"float64": "double"}  # the state matrix is float64 on every backend
FLAGS = {"common": ("ordered",)}  # flags a module accepts (models: none yet)
SOURCE_TILE = 256  # threads per block written into the sources (#define TILE)
TILE = SOURCE_TILE  # threads per block the backend launches (the emulator lowers both together)
NVRTC_OPTIONS = ("--fmad=false", "--std=c++14")

from .model_sources import MIRRORS, MODEL_SOURCES, consts_prologue  # noqa: E402,F401  (re-exported)

# -- shared device code -------------------------------------------------------------------------

_HEADER = """
typedef {real} real;
typedef long long i64;
typedef unsigned long long u64;
#define TILE {tile}
#define FULL 0xffffffffu
#define ST(r, i) S[(i64)(r) * N + (i)]
{ctl}
#define TWO53 (1.0 / 9007199254740992.0)
#define ZIG_R {zig_r}

/* counter-based RNG: the same integer operations as spikelm/simulator/rng.py */
__device__ __forceinline__ u64 mix64(u64 z) {{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}}

__device__ __forceinline__ real uniform01(u64 key, i64 step, i64 idx) {{
    const u64 z = key ^ mix64((u64)step * 0x9E3779B97F4A7C15ULL + (u64)idx);
    return (real)(mix64(z) >> 11) * TWO53;
}}

__device__ __forceinline__ u64 zbits(u64 key, i64 step, i64 idx, i64 attempt) {{
    const u64 z = key ^ mix64((u64)step * 0x9E3779B97F4A7C15ULL + (u64)idx);
    return mix64(z ^ ((u64)attempt * {attempt}ULL));
}}

/* ziggurat normal (Marsaglia & Tsang), the twin of rng.normal_nb; zx, zf: rng.ZIG_X, ZIG_F */
__device__ real normal01(u64 key, i64 step, i64 idx, const real* zx, const real* zf) {{
    i64 attempt = 0;
    while (true) {{
        const u64 h = zbits(key, step, idx, attempt);
        const int i = (int)(h & 0xFFULL);
        const u64 neg = (h >> 8) & 1ULL;
        const real u = (real)(h >> 11) * TWO53;
        const real x = u * zx[i];
        if (x < zx[i + 1]) return neg ? -x : x;
        const u64 h2 = zbits(key, step, idx, attempt + 1);
        if (i == 0) {{
            const u64 h3 = zbits(key, step, idx, attempt + 2);
            const real a = -log(1.0 - (real)(h2 >> 11) * TWO53) / ZIG_R;
            const real b = -log(1.0 - (real)(h3 >> 11) * TWO53);
            if (b + b > a * a) return neg ? -(ZIG_R + a) : ZIG_R + a;
        }} else if (zf[i + 1] + ((real)(h2 >> 11) * TWO53) * (zf[i] - zf[i + 1]) < exp(-0.5 * x * x)) {{
            return neg ? -x : x;
        }}
        attempt += 3;
    }}
}}

/* Poisson count by inverse transform with +, *, / only (rng.poisson_nb) */
__device__ i64 poisson_count(u64 key, i64 step, i64 idx, real lam, real exp_neg_lam) {{
    const real u = uniform01(key, step, idx);
    i64 k = 0;
    real p = exp_neg_lam;
    real f = p;
    while (u > f && k < 1000) {{
        k += 1;
        p = p * lam / (real)k;
        f = f + p;
    }}
    return k;
}}

#define GRID_LOOP(i, lo, hi) for (i64 i = (lo) + (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (hi); \\
                                  i += (i64)gridDim.x * blockDim.x)
"""

_MODEL_KERNELS = """
/* one step of model {model} for neurons [lo, hi): the skeleton owns the loop and the fire flag */
extern "C" __global__ void update_{model}(const i64* ctl, real* S, const i64 N, const i64 lo, const i64 hi,
                                          const real* c, real* qbuf, const i64 n_slots, const real* iext,
                                          signed char* fired, const u64 key) {{
    if (ctl[C_STOP]) return;
    const i64 t = ctl[C_T];
    real* qe = qbuf + (t % n_slots) * 2 * N;
    real* qi = qe + N;
    (void)t;
    (void)qi;
{consts}    GRID_LOOP(i, lo, hi) {{
        signed char out = 0;
{update}
        fired[i] = out;
    }}
}}

/* whether a neuron of [lo, hi) may still fire without input (runs until quiescence only) */
extern "C" __global__ void may_fire_{model}(i64* ctl, const real* S, const i64 N, const i64 lo, const i64 hi,
                                            const real* c) {{
    if (ctl[C_STOP] || ctl[C_NOUT] != 0) return;
    const i64 t = ctl[C_T];
    (void)t;
{consts}    GRID_LOOP(i, lo, hi) {{
        bool may = false;
{may_fire}
        if (may) ctl[C_BUSY] = 1;
    }}
}}
"""

_COMMON_KERNELS = r"""
#define ORDERED {ordered}

/* 1 thread: stop at the end of the chunk or when the record buffer could overflow; open the slot */
extern "C" __global__ void begin_step(i64* ctl, i64* qcount, i64* totals, const i64 n_slots) {
    if (ctl[C_STOP]) return;
    if (ctl[C_S] >= ctl[C_NSTEPS] || ctl[C_NREC] + ctl[C_NRECMASK] > ctl[C_CAP]) {
        ctl[C_STOP] = 1;
        return;
    }
    ctl[C_NOUT] = 0;
    ctl[C_BUSY] = 0;
    const i64 slot = ctl[C_T] % n_slots;
    totals[1] += qcount[slot];
    qcount[slot] = 0;
}

/* per neuron: current steps into i_cur, then iext = i_cur + noise; Poisson input into the slot */
extern "C" __global__ void deliver(const i64* ctl, const i64 N, real* qbuf, const i64 n_slots, real* i_cur,
                                   real* iext, const i64* cs_step, const i64* cs_lohi, const real* cs_delta,
                                   const i64 n_cs, const i64* nz_lohi, const real* nz_ms, const u64* nz_key,
                                   const i64 n_nz, const i64* pin_lohi, const real* pin_par, const i64* pin_target,
                                   const u64* pin_key, const i64 n_pin, const real* zig_x, const real* zig_f) {
    if (ctl[C_STOP]) return;
    const i64 t = ctl[C_T];
    real* qe = qbuf + (t % n_slots) * 2 * N;
    real* qi = qe + N;
    GRID_LOOP(i, 0, N) {
        for (i64 k = 0; k < n_cs; ++k)
            if (cs_step[k] == t && cs_lohi[2 * k] <= i && i < cs_lohi[2 * k + 1]) i_cur[i] += cs_delta[k];
        iext[i] = i_cur[i];
        for (i64 k = 0; k < n_nz; ++k) {
            const i64 lo = nz_lohi[2 * k];
            if (lo <= i && i < nz_lohi[2 * k + 1])
                iext[i] += nz_ms[2 * k] + nz_ms[2 * k + 1] * normal01(nz_key[k], t, i - lo, zig_x, zig_f);
        }
        for (i64 k = 0; k < n_pin; ++k) {
            const i64 lo = pin_lohi[2 * k];
            if (lo <= i && i < pin_lohi[2 * k + 1]) {
                const i64 n_ev = poisson_count(pin_key[k], t, i - lo, pin_par[3 * k], pin_par[3 * k + 1]);
                if (pin_target[k] == 0) qe[i] += (real)n_ev * pin_par[3 * k + 2];
                else qi[i] += (real)n_ev * pin_par[3 * k + 2];
            }
        }
    }
}

/* 1 block: this step's spike_times entries (sorted by step) set their neurons' flags */
extern "C" __global__ void spike_times_fire(const i64* ctl, const i64* src_step, const i64* src_idx, const i64 n_src,
                                            signed char* fired) {
    if (ctl[C_STOP]) return;
    const i64 t = ctl[C_T];
    for (i64 k = ctl[C_SRC] + threadIdx.x; k < n_src && src_step[k] == t; k += blockDim.x) fired[src_idx[k]] = 1;
}

/* compaction, pass 1: spikes per tile of TILE neurons */
extern "C" __global__ void tile_count(const i64* ctl, const signed char* fired, const i64 N, int* tile_cnt) {
    if (ctl[C_STOP]) return;
    const i64 i = (i64)blockIdx.x * TILE + threadIdx.x;
    const int n = __syncthreads_count(i < N && fired[i] != 0);
    if (threadIdx.x == 0) tile_cnt[blockIdx.x] = n;
}

/* compaction, pass 2: spikes in index order (= population order, then neuron order, as numba) */
extern "C" __global__ void compact(i64* ctl, const signed char* fired, const i64 N, const int* tile_cnt,
                                   i64* out_idx, signed char* out_val) {
    if (ctl[C_STOP]) return;
    __shared__ i64 s_part[TILE / 32];
    __shared__ int s_warp[TILE / 32];
    __shared__ i64 s_off;
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    i64 part = 0;
    for (i64 k = threadIdx.x; k < blockIdx.x; k += TILE) part += tile_cnt[k];
    for (int o = 16; o > 0; o >>= 1) part += __shfl_down_sync(FULL, part, o);
    if (lane == 0) s_part[warp] = part;
    __syncthreads();
    if (threadIdx.x == 0) {
        i64 s = 0;
        for (int w = 0; w < TILE / 32; ++w) s += s_part[w];
        s_off = s;
    }
    const i64 i = (i64)blockIdx.x * TILE + threadIdx.x;
    const signed char v = i < N ? fired[i] : 0;
    const unsigned m = __ballot_sync(FULL, v != 0);
    if (lane == 0) s_warp[warp] = __popc(m);
    __syncthreads();
    int before = 0;
    for (int w = 0; w < warp; ++w) before += s_warp[w];
    const int pos = before + __popc(m & ((1u << lane) - 1u));
    if (v != 0) {
        out_idx[s_off + pos] = i;
        out_val[s_off + pos] = v;
    }
    if (blockIdx.x == gridDim.x - 1 && threadIdx.x == TILE - 1) ctl[C_NOUT] = s_off + before + __popc(m);
}

/* fan each spike out through its population's projections (CSR) into the ring buffer.
   ORDERED: one thread, spikes, projections and synapses in numba's order (bit-identical sums).
   Otherwise: one warp per spike, lanes over the synapses, atomicAdd (sums in any order). */
extern "C" __global__ void propagate(const i64* ctl, const i64 N, const i64* out_idx, const signed char* out_val,
                                     const i64* pop_hi, const i64* indptr, const int* post, const real* w,
                                     const short* delay, const i64* proj_pre_lo, const i64* proj_post_lo,
                                     const i64* proj_target, const i64* proj_ptr_off, const i64* proj_syn_off,
                                     const i64* proj_udelay, const i64* pre_proj, const i64* pre_proj_ptr,
                                     i64* synops, real* qbuf, i64* qcount, i64* totals, const i64 n_slots) {
    if (ctl[C_STOP]) return;
    const i64 t_slot = ctl[C_T] % n_slots;
    const i64 nout = ctl[C_NOUT];
#if ORDERED
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    const int lane = 0;
    const i64 first = 0, stride = 1, width = 1;
#else
    const int lane = threadIdx.x & 31;
    const i64 first = ((i64)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const i64 stride = ((i64)gridDim.x * blockDim.x) >> 5;
    const i64 width = 32;
#endif
    i64 p = 0;
    for (i64 e = first; e < nout; e += stride) {
        const i64 g = out_idx[e];
        const real fv = (real)out_val[e];
        while (g >= pop_hi[p]) ++p;  /* spikes come in index order */
        for (i64 j = pre_proj_ptr[p]; j < pre_proj_ptr[p + 1]; ++j) {
            const i64 k = pre_proj[j];
            const i64 jj = g - proj_pre_lo[k];
            const i64 base = proj_syn_off[k];
            const i64 a = base + indptr[proj_ptr_off[k] + jj];
            const i64 b = base + indptr[proj_ptr_off[k] + jj + 1];
            if (b == a) continue;
            const i64 tgt = proj_target[k];
            const i64 plo = proj_post_lo[k];
            const i64 ud = proj_udelay[k];
#if ORDERED
            synops[k] += b - a;
            totals[0] += b - a;
#else
            if (lane == 0) {
                atomicAdd((u64*)&synops[k], (u64)(b - a));
                atomicAdd((u64*)&totals[0], (u64)(b - a));
            }
#endif
            if (ud > 0) {  /* one delay: one slot, a scatter-add into one row */
                i64 slot = t_slot + ud;
                if (slot >= n_slots) slot -= n_slots;
                real* row = qbuf + (slot * 2 + tgt) * N + plo;
#if ORDERED
                for (i64 s = a; s < b; ++s) row[post[s]] += fv * w[s];
                qcount[slot] += b - a;
#else
                for (i64 s = a + lane; s < b; s += width) atomicAdd(&row[post[s]], fv * w[s]);
                if (lane == 0) atomicAdd((u64*)&qcount[slot], (u64)(b - a));
#endif
                continue;
            }
            for (i64 s0 = a; s0 < b; s0 += width) {
                const i64 s = s0 + lane;
                const bool ok = s < b;
                i64 slot = 0;
                if (ok) {
                    slot = t_slot + delay[s];
                    if (slot >= n_slots) slot -= n_slots;
#if ORDERED
                    qbuf[(slot * 2 + tgt) * N + plo + post[s]] += fv * w[s];
                    qcount[slot] += 1;
#else
                    atomicAdd(&qbuf[(slot * 2 + tgt) * N + plo + post[s]], fv * w[s]);
#endif
                }
#if !ORDERED
                const unsigned act = __ballot_sync(FULL, ok);
                if (ok) {  /* one atomic per distinct slot in the warp */
                    const unsigned grp = __match_any_sync(act, slot);
                    if (lane == __ffs(grp) - 1) atomicAdd((u64*)&qcount[slot], (u64)__popc(grp));
                }
#endif
            }
        }
    }
}

/* 1 block: append the recorded spikes of this step (in spike order) to the record buffer */
extern "C" __global__ void record(i64* ctl, const i64* out_idx, const signed char* out_val,
                                  const unsigned char* rec_mask, i64* rec_steps, i64* rec_idx, signed char* rec_val) {
    if (ctl[C_STOP]) return;
    __shared__ int s_warp[TILE / 32];
    const i64 t = ctl[C_T];
    const i64 nout = ctl[C_NOUT];
    i64 base = ctl[C_NREC];
    const int lane = threadIdx.x & 31;
    const int warp = threadIdx.x >> 5;
    for (i64 e0 = 0; e0 < nout; e0 += TILE) {
        const i64 e = e0 + threadIdx.x;
        const bool r = e < nout && rec_mask[out_idx[e]] == 1;
        const unsigned m = __ballot_sync(FULL, r);
        if (lane == 0) s_warp[warp] = __popc(m);
        __syncthreads();
        int before = 0, total = 0;
        for (int w = 0; w < TILE / 32; ++w) {
            if (w < warp) before += s_warp[w];
            total += s_warp[w];
        }
        if (r) {
            const i64 q = base + before + __popc(m & ((1u << lane) - 1u));
            rec_steps[q] = t;
            rec_idx[q] = out_idx[e];
            rec_val[q] = out_val[e];
        }
        base += total;
        __syncthreads();
    }
    if (threadIdx.x == 0) ctl[C_NREC] = base;
}

/* sampled state variables, every EVERY steps */
extern "C" __global__ void sample(const i64* ctl, const real* S, const i64 N, const i64* rows, const i64* cols,
                                  const i64 K, real* samples, i64* sample_steps) {
    if (ctl[C_STOP]) return;
    const i64 t = ctl[C_T];
    if (t % ctl[C_EVERY] != 0) return;
    const i64 r = ctl[C_NSAMP];
    GRID_LOOP(k, 0, K) samples[r * K + k] = ST(rows[k], cols[k]);
    if (blockIdx.x == 0 && threadIdx.x == 0) sample_steps[r] = t;
}

__device__ __forceinline__ i64 lower_bound(const i64* a, i64 n, i64 x) {
    i64 lo = 0, hi = n;
    while (lo < hi) {
        const i64 mid = (lo + hi) >> 1;
        if (a[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* 1 thread: spike counts per population, spike_times pointer, sample counter, quiescence, t += 1 */
extern "C" __global__ void end_step(i64* ctl, const i64* qcount, const i64 n_slots, i64* counts, const i64* out_idx,
                                    const i64* pop_lo, const i64* pop_hi, const i64 P, const i64* src_step,
                                    const i64 n_src) {
    if (ctl[C_STOP]) return;
    const i64 t = ctl[C_T];
    const i64 s = ctl[C_S];
    const i64 nout = ctl[C_NOUT];
    for (i64 p = 0; p < P; ++p)
        counts[s * P + p] = lower_bound(out_idx, nout, pop_hi[p]) - lower_bound(out_idx, nout, pop_lo[p]);
    i64 ptr = ctl[C_SRC];
    while (ptr < n_src && src_step[ptr] <= t) ++ptr;
    ctl[C_SRC] = ptr;
    if (ctl[C_SAMPLING] && t % ctl[C_EVERY] == 0) ctl[C_NSAMP] += 1;
    ctl[C_S] = s + 1;
    ctl[C_T] = t + 1;
    if (ctl[C_UNTILQ] && nout == 0 && !ctl[C_STATIC_BUSY] && !ctl[C_BUSY] && ptr >= n_src) {
        i64 pending = 0;
        for (i64 k = 0; k < n_slots; ++k) pending += qcount[k];
        if (pending == 0) {
            ctl[C_QUIET] = 1;
            ctl[C_STOP] = 1;
            return;
        }
    }
    if (s + 1 >= ctl[C_NSTEPS]) ctl[C_STOP] = 1;
}
"""

#: Kernel names of each module (what the backend looks up).
COMMON_KERNELS = ("begin_step", "deliver", "spike_times_fire", "tile_count", "compact", "propagate", "record",
                  "sample", "end_step")


def model_kernels(model):
    return (f"update_{model}", f"may_fire_{model}")


# -- the factory ------------------------------------------------------------------------------------

def kernel_key(module, dtype="float64", flags=()):
    """The normalised cache key (module, dtype name, sorted flags); errors name what is allowed."""
    if module != "common" and module not in MODEL_SOURCES:
        raise ConfigError(f"gpu kernels: unknown module {module!r}; known: common, {', '.join(MODEL_SOURCES)}")
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = str(dtype)
    if name not in DTYPES:
        raise ConfigError(f"gpu kernels: dtype {dtype!r} is not supported; supported: {', '.join(DTYPES)}")
    if isinstance(flags, str):
        flags = (flags,)
    flags = tuple(sorted(set(flags)))
    allowed = FLAGS.get(module, ())
    bad = [f for f in flags if f not in allowed]
    if bad:
        raise ConfigError(f"gpu kernels: module {module!r} takes flags {allowed or '()'}, got {bad}")
    return module, name, flags


def kernel_source(module, dtype="float64", flags=()):
    """The CUDA C source of ``module`` for (dtype, flags) (memoised per normalised key)."""
    return _source(*kernel_key(module, dtype, flags))


@functools.cache
def _source(module, dtype, flags):
    ctl = "\n".join(f"#define C_{name} {i}" for i, name in enumerate(CTL))
    head = _HEADER.format(real=DTYPES[dtype], tile=SOURCE_TILE, ctl=ctl, zig_r=repr(float(ZIG_R)), attempt=hex(ATTEMPT))
    if module == "common":
        return head + _COMMON_KERNELS.replace("{ordered}", "1" if "ordered" in flags else "0")
    src = MODEL_SOURCES[module]
    return head + _MODEL_KERNELS.format(model=module, update=src["update"], may_fire=src["may_fire"],
                                        consts=consts_prologue(module))


_build = None


def get_module(module, dtype="float64", flags=()):
    """The compiled ``cupy.RawModule`` for (module, dtype, flags), built once per device."""
    global _build
    key = kernel_key(module, dtype, flags)
    if _build is None:
        import cupy

        @cupy.memoize(for_each_device=True)
        def build(module, dtype, flags):
            return cupy.RawModule(code=_source(module, dtype, flags), options=NVRTC_OPTIONS)

        _build = build
    return _build(*key)


# -- the GPU's own limit for dense-row accumulation (benchmarks/gpu.py) -------------------------------

ROW_ACCUMULATE = r"""
/* acc[:] += v[e] * W[j_e, :] for the n spikes (j_e, v_e): one block per column tile, rows in order
   (deterministic), one coalesced read of each spiking row: the bandwidth limit of the LM's synaptic phase */
extern "C" __global__ void row_accumulate(const double* W, const long long n_cols, const long long* rows,
                                          const double* vals, const long long n, double* acc) {
    const long long col = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (col >= n_cols) return;
    double a = acc[col];
    for (long long e = 0; e < n; ++e) a += vals[e] * W[rows[e] * n_cols + col];
    acc[col] = a;
}
"""


def rng_probe_source(dtype="float64"):
    """A test kernel drawing uniform, normal and Poisson variates for counters 0..n-1 at one step
    (tests/test_gpu.py compares them with spikelm.simulator.rng)."""
    return _source("spike_times", kernel_key("spike_times", dtype)[1], ()) + r"""
extern "C" __global__ void rng_probe(const u64 key, const i64 step, const i64 n, const real lam, const real elam,
                                     const real* zx, const real* zf, real* uni, real* nrm, i64* poi) {
    GRID_LOOP(i, 0, n) {
        uni[i] = uniform01(key, step, i);
        nrm[i] = normal01(key, step, i, zx, zf);
        poi[i] = poisson_count(key, step, i, lam, elam);
    }
}
"""
