"""A CPU stand-in for CuPy that runs the backend's real CUDA sources: for tests on machines without a GPU.

``fake_cupy(execute=True)`` returns a module object with the few pieces of CuPy the backend
uses (arrays with ``set``/``get``, streams, graph capture, ``memoize``, ``RawModule``). Its
``RawModule`` compiles the CUDA C source with the host C++ compiler under a small shim: each
launch runs every block one after another, and the threads of a block as cooperative fibers
(``ucontext``), so ``__syncthreads``, ``__ballot_sync``, ``__shfl_down_sync`` and
``__match_any_sync`` behave as on a GPU and atomics are trivially atomic. Every launch's
arguments are first checked against the kernel's C signature (count, pointer dtype, scalar type).

What this checks: the kernels' logic and the host driver, end to end, against numpy/numba.
What it cannot: the device memory model, real concurrency, NVRTC itself, CUDA's own
exp/log (the shim uses glibc's, the same as NumPy), timing. ``execute=False``: launches
are checked but not run (only ``begin_step``/``end_step`` are emulated, on the control array).
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import types

import numpy as np

from . import kernels as gk

CTYPES = {"real": np.float64, "double": np.float64, "i64": np.int64, "long long": np.int64, "u64": np.uint64,
          "int": np.int32, "short": np.int16, "signed char": np.int8, "unsigned char": np.uint8}
CXX_FLAGS = ("-O0", "-std=c++17", "-shared", "-fPIC", "-ffp-contract=off", "-w")

SHIM = r"""
#include <ucontext.h>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <vector>
using std::exp; using std::fabs; using std::log;
struct dim3 { unsigned x, y, z; };
static dim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

namespace emu {
static const size_t STACK = 256 * 1024;
static ucontext_t sched;
static std::vector<ucontext_t> ctx;
static std::vector<char*> stacks;
static std::vector<int> state;  /* 0 running, 1 just finished, 2 done */
static unsigned cur;
static std::function<void()>* body;
struct Coll { int arrived = 0; long long gen = 0; long long val[1024]; };
static Coll block_coll;
static std::map<unsigned, Coll> warp_coll[32];  /* per warp, per participation mask */

static void yield_() { swapcontext(&ctx[cur], &sched); }
static void wait(Coll& c, int expected) {
    const long long g = c.gen;
    if (++c.arrived == expected) { c.arrived = 0; c.gen++; return; }
    long long spins = 0;
    while (c.gen == g) {
        yield_();
        if (++spins > 200000000LL) { fprintf(stderr, "emulator: threads never met at a barrier\n"); abort(); }
    }
}
static void trampoline() { (*body)(); state[cur] = 1; swapcontext(&ctx[cur], &sched); }
static void launch(unsigned grid, unsigned block, std::function<void()> f) {
    body = &f;
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    while (ctx.size() < block) { ctx.emplace_back(); stacks.push_back((char*)malloc(STACK)); }
    state.assign(block, 0);
    for (unsigned b = 0; b < grid; ++b) {
        blockIdx = {b, 0, 0};
        block_coll.arrived = 0;
        for (int w = 0; w < 32; ++w) warp_coll[w].clear();
        for (unsigned t = 0; t < block; ++t) {
            getcontext(&ctx[t]);
            ctx[t].uc_stack.ss_sp = stacks[t];
            ctx[t].uc_stack.ss_size = STACK;
            ctx[t].uc_link = &sched;
            makecontext(&ctx[t], trampoline, 0);
            state[t] = 0;
        }
        unsigned left = block;
        while (left) {
            for (unsigned t = 0; t < block; ++t) {
                if (state[t]) continue;
                cur = t;
                threadIdx = {t, 0, 0};
                swapcontext(&sched, &ctx[t]);
                if (state[t] == 1) { state[t] = 2; --left; }
            }
        }
    }
}
/* kernels without barriers or warp collectives: run each thread to completion, no fibers */
static void launch_direct(unsigned grid, unsigned block, std::function<void()> f) {
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    for (unsigned b = 0; b < grid; ++b) {
        blockIdx = {b, 0, 0};
        for (unsigned t = 0; t < block; ++t) {
            threadIdx = {t, 0, 0};
            f();
        }
    }
}
static unsigned lanes_of(unsigned w) {
    const unsigned n = blockDim.x - w * 32;
    return n >= 32 ? 0xffffffffu : ((1u << n) - 1u);
}
/* every participating lane deposits v; returns after all have, with the values in c.val */
static Coll& gather(unsigned mask, long long v, int& expected) {
    const unsigned w = threadIdx.x >> 5;
    mask &= lanes_of(w);
    Coll& c = warp_coll[w][mask];
    expected = __builtin_popcount(mask);
    c.val[threadIdx.x & 31] = v;
    wait(c, expected);
    return c;
}
}  // namespace emu

static inline void __syncthreads() { emu::wait(emu::block_coll, blockDim.x); }
static inline int __syncthreads_count(int pred) {
    emu::block_coll.val[threadIdx.x] = pred != 0;
    emu::wait(emu::block_coll, blockDim.x);
    int n = 0;
    for (unsigned t = 0; t < blockDim.x; ++t) n += (int)emu::block_coll.val[t];
    emu::wait(emu::block_coll, blockDim.x);
    return n;
}
static inline unsigned __ballot_sync(unsigned mask, int pred) {
    int e;
    emu::Coll& c = emu::gather(mask, pred != 0, e);
    const unsigned m = mask & emu::lanes_of(threadIdx.x >> 5);
    unsigned r = 0;
    for (int j = 0; j < 32; ++j) if (((m >> j) & 1u) && c.val[j]) r |= 1u << j;
    emu::wait(c, e);
    return r;
}
template <class T> static inline T __shfl_down_sync(unsigned mask, T v, unsigned delta) {
    int e;
    emu::Coll& c = emu::gather(mask, (long long)v, e);
    const unsigned m = mask & emu::lanes_of(threadIdx.x >> 5);
    const unsigned src = (threadIdx.x & 31) + delta;
    T r = (src < 32 && ((m >> src) & 1u)) ? (T)c.val[src] : v;
    emu::wait(c, e);
    return r;
}
template <class T> static inline unsigned __match_any_sync(unsigned mask, T v) {
    int e;
    emu::Coll& c = emu::gather(mask, (long long)v, e);
    const unsigned m = mask & emu::lanes_of(threadIdx.x >> 5);
    unsigned r = 0;
    for (int j = 0; j < 32; ++j) if (((m >> j) & 1u) && c.val[j] == (long long)v) r |= 1u << j;
    emu::wait(c, e);
    return r;
}
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __ffs(unsigned x) { return __builtin_ffs((int)x); }
static inline double atomicAdd(double* p, double v) { const double o = *p; *p = o + v; return o; }
static inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
    const unsigned long long o = *p; *p = o + v; return o;
}
"""


def signatures(code):
    """{kernel: [(type text, base type, is pointer, name)]} of every ``extern "C" __global__`` kernel."""
    sigs = {}
    for name, params in re.findall(r'extern "C" __global__ void (\w+)\(([^)]*)\)', code):
        sig = []
        for prm in params.split(","):
            words = prm.replace("*", " * ").split()
            ptr = "*" in words
            base = " ".join(w for w in words[:-1] if w not in ("*", "const"))
            sig.append((" ".join(words[:-1]).replace(" *", "*"), base, ptr, words[-1]))
        sigs[name] = sig
    return sigs


COLLECTIVES = re.compile(r"__syncthreads|__ballot_sync|__shfl_down_sync|__match_any_sync")


def _bodies(code):
    """{kernel: its source text up to the next kernel} (to see which use barriers or warp collectives)."""
    starts = [(m.group(1), m.start()) for m in re.finditer(r'extern "C" __global__ void (\w+)\(', code)]
    return {name: code[a:(starts[i + 1][1] if i + 1 < len(starts) else len(code))]
            for i, (name, a) in enumerate(starts)}


def _wrappers(code, sigs):
    out = []
    bodies = _bodies(code)
    for name, sig in sigs.items():
        args = ", ".join(f"*({t}*)a[{i}]" for i, (t, _, _, _) in enumerate(sig))
        how = "launch" if COLLECTIVES.search(bodies[name]) else "launch_direct"
        out.append(f'extern "C" void launch_{name}(unsigned grid, unsigned block, void** a) '
                   f"{{ emu::{how}(grid, block, [=] {{ {name}({args}); }}); }}")
    return "\n".join(out)


def compiler():
    return shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")


def _paths(code):
    src = SHIM + code + "\n" + _wrappers(code, signatures(code))
    digest = hashlib.sha256((src + " ".join(CXX_FLAGS)).encode()).hexdigest()[:16]
    folder = os.path.join(tempfile.gettempdir(), "spikelm-gpu-emulator")
    os.makedirs(folder, exist_ok=True)
    return src, os.path.join(folder, f"{digest}.cpp"), os.path.join(folder, f"{digest}.so")


def _start(code):
    """Start compiling ``code`` under the shim unless its library is cached; (process, tmp, lib)."""
    cxx = compiler()
    if cxx is None:
        raise RuntimeError("no host C++ compiler (g++): the GPU emulator cannot build kernels")
    src, path, lib = _paths(code)
    if os.path.exists(lib):
        return None, None, lib
    with open(path, "w") as f:
        f.write(src)
    tmp = f"{lib}.{os.getpid()}.{id(code)}"
    return subprocess.Popen([cxx, *CXX_FLAGS, "-o", tmp, path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True), tmp, lib


def _finish(proc, tmp, lib):
    if proc is not None:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"emulator: the kernels do not compile as C++:\n{out[-4000:]}")
        os.replace(tmp, lib)


def prebuild(codes):
    """Compile several sources at once (one compiler process each); later builds load from the cache."""
    for job in [_start(c) for c in codes]:
        _finish(*job)


def all_sources(tile=None):
    """Every source the backend may compile: common (both modes) and each model's module."""
    codes = [gk.kernel_source("common"), gk.kernel_source("common", flags="ordered")] + \
        [gk.kernel_source(m) for m in gk.MODEL_SOURCES]
    if tile is not None:
        codes = [c.replace(f"#define TILE {gk.SOURCE_TILE}\n", f"#define TILE {tile}\n") for c in codes]
    return codes


@functools.cache
def build_library(code):
    """Compile ``code`` (CUDA C) under the shim into a shared library (cached by content) and load it."""
    proc, tmp, lib = _start(code)
    _finish(proc, tmp, lib)
    return ctypes.CDLL(lib), signatures(code)


class _Array(np.ndarray):
    """A NumPy array with CuPy's ``set`` / ``get``."""

    def set(self, a, stream=None):
        if np.shape(a) != self.shape:
            raise ValueError(f"set: shape {np.shape(a)} into {self.shape}")
        self[...] = a

    def get(self, stream=None):
        return np.array(self)


def _emulate_ctl(name, args):
    ctl, C = args[0], gk.C
    if name == "begin_step" and not ctl[C["STOP"]] and ctl[C["S"]] >= ctl[C["NSTEPS"]]:
        ctl[C["STOP"]] = 1
    if name == "end_step" and not ctl[C["STOP"]]:
        ctl[C["S"]] += 1
        ctl[C["T"]] += 1
        if ctl[C["S"]] >= ctl[C["NSTEPS"]]:
            ctl[C["STOP"]] = 1


def fake_cupy(execute=True, launches=None, builds=None, tile=None):
    """The CPU stand-in (see module docstring). ``launches``/``builds``: lists that record kernel
    names launched and (code, options) compiled. ``tile``: compile with this many threads per
    block instead of ``kernels.SOURCE_TILE`` (fewer fibers, faster; set ``kernels.TILE`` to match)."""
    launches = [] if launches is None else launches
    builds = [] if builds is None else builds
    cp = types.ModuleType("cupy")
    cp.ndarray = _Array
    cp.asarray = lambda a, dtype=None: np.array(a, dtype=dtype).view(_Array)
    cp.empty = lambda shape, dtype=float: np.zeros(shape, dtype).view(_Array)
    cp.zeros = cp.empty
    cp.int64, cp.float64 = np.int64, np.float64
    capture = {"calls": None}

    class Kernel:
        def __init__(self, name, sig, fn):
            self.name, self.sig, self.fn = name, sig, fn

        def check(self, grid, block, args):
            if len(args) != len(self.sig):
                raise TypeError(f"{self.name}: {len(args)} args for {len(self.sig)} parameters")
            for a, (_, base, ptr, pname) in zip(args, self.sig):
                want = np.dtype(CTYPES[base])
                ok = isinstance(a, _Array) if ptr else isinstance(a, np.generic)
                if not ok or a.dtype != want:
                    raise TypeError(f"{self.name}({pname}): wants {base}{'*' if ptr else ''}, got "
                                    f"{type(a).__name__} {getattr(a, 'dtype', '')}")
            if not all(isinstance(x, int) and x >= 1 for x in tuple(grid) + tuple(block)):
                raise ValueError(f"{self.name}: bad launch shape {grid} x {block}")

        def __call__(self, grid, block, args, **kw):
            self.check(grid, block, args)
            if capture["calls"] is not None:
                capture["calls"].append((self, grid, block, args))
            else:
                self.run(grid, block, args)

        def run(self, grid, block, args):
            launches.append(self.name)
            if self.fn is None:
                _emulate_ctl(self.name, args)
                return
            vals = [ctypes.c_void_p(a.ctypes.data if a.size else 0) if ptr else _scalar(a, base)
                    for a, (_, base, ptr, _) in zip(args, self.sig)]
            ptrs = (ctypes.c_void_p * max(1, len(vals)))(*[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p)
                                                            for v in vals])
            self.fn(ctypes.c_uint(grid[0]), ctypes.c_uint(block[0]), ptrs)

    class RawModule:
        def __init__(self, code, options=()):
            builds.append((code, tuple(options)))
            if tile is not None:
                code = code.replace(f"#define TILE {gk.SOURCE_TILE}\n", f"#define TILE {tile}\n")
            if execute:
                self.lib, self.sigs = build_library(code)
            else:
                self.lib, self.sigs = None, {k: v for k, v in signatures(code).items()}

        def get_function(self, name):
            fn = getattr(self.lib, f"launch_{name}") if self.lib is not None else None
            return Kernel(name, self.sigs[name], fn)

    class Graph:
        def __init__(self, calls):
            self.calls = calls

        def launch(self, stream=None):
            for k, grid, block, args in self.calls:
                k.run(grid, block, args)

    class Stream:
        def __init__(self, non_blocking=False):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def begin_capture(self):
            capture["calls"] = []

        def end_capture(self):
            calls, capture["calls"] = capture["calls"], None
            return Graph(calls)

        def synchronize(self):
            pass

    cp.memoize = lambda for_each_device=False: functools.lru_cache(maxsize=None)
    cp.RawModule = RawModule
    cp.cuda = types.SimpleNamespace(
        Stream=Stream, runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
        Device=lambda *a: types.SimpleNamespace(attributes={"MultiProcessorCount": 1}))
    return cp


_SCALARS = {np.dtype(np.int64): ctypes.c_int64, np.dtype(np.uint64): ctypes.c_uint64,
            np.dtype(np.float64): ctypes.c_double, np.dtype(np.int32): ctypes.c_int32}


def _scalar(a, base):
    return _SCALARS[np.dtype(CTYPES[base])](a.item())


def main(argv=None):
    """``python -m spikelm.gpu.emulate [pytest args]``: run pytest with CuPy replaced by the emulator,
    so the ``gpu``-marked tests run on the CPU (slow; checks the tests and the kernels' logic, not a GPU)."""
    import sys

    import pytest

    sys.modules["cupy"] = fake_cupy(execute=True, tile=64)
    gk.TILE = 64
    args = list(sys.argv[1:] if argv is None else argv) or ["tests/test_gpu.py", "-m", "gpu"]
    return pytest.main(["-p", "no:cacheprovider", *args])


if __name__ == "__main__":
    raise SystemExit(main())
