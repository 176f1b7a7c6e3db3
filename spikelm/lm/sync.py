"""What the threads of the compiled token loop synchronise with: atomic loads and stores on an
int64 array, and a spinning barrier built on them (Numba has no CPU atomics of its own).

The threads are plain OS threads running the loop without the GIL
(:mod:`spikelm.lm.numba_runner`), never tasks of a work-stealing pool: a barrier needs every
thread of the team running at once, which a pool that may run two tasks one after the other on
one thread (TBB) does not promise.

:func:`barrier` is a flag barrier: each thread counts the barriers it has reached in a slot of
its own (a cache line apart from the others'), published with release semantics, and waits
until every other thread's count, read with acquire semantics, has reached its own. So every
write made before the barrier by any thread is visible after it to all (LLVM moves no memory
access across these instructions), and no thread writes a line another thread writes: on two
cores a barrier is one line sent each way, where a central counter's atomic additions send it
back and forth. A thread cannot pass the next barrier before every other has reached it, so it
never runs more than one barrier ahead, and the counts need no reset. A waiter spins with the
CPU's pause hint, then yields its core (``sched_yield``) to whatever else is runnable: on a
machine where other work holds the cores, the thread it waits for may not be running at all.
"""

from __future__ import annotations

import platform
import sys

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

#: int64 slots between two threads' counts in a barrier array (two cache lines: no false sharing,
#: adjacent-line prefetch included)
BAR_STRIDE = 16
#: spins (each a pause hint, ~40 ns) before a waiter starts yielding its core
SPINS = 4000

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")
_POSIX = not sys.platform.startswith("win")


def _int64_vector(arr) -> bool:
    return isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1


def _element(context, builder, arrty, arr, idx):
    ary = context.make_array(arrty)(context, builder, arr)
    return cgutils.get_item_pointer(context, builder, arrty, ary, [idx], wraparound=False)


@intrinsic
def atomic_load(typingctx, arr, idx):
    """``arr[idx]``, read atomically with acquire semantics."""
    if not _int64_vector(arr):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element(context, builder, sig.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "acquire", 8)

    return types.int64(arr, idx), codegen


@intrinsic
def atomic_store(typingctx, arr, idx, val):
    """``arr[idx] = val``, written atomically with release semantics."""
    if not _int64_vector(arr):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element(context, builder, sig.args[0], args[0], args[1])
        builder.store_atomic(context.cast(builder, args[2], sig.args[2], types.int64), ptr, "release", 8)
        return context.get_dummy_value()

    return types.void(arr, idx, val), codegen


@intrinsic
def cpu_relax(typingctx):
    """The CPU's spin-wait hint (x86 ``pause``; nothing elsewhere)."""
    def codegen(context, builder, sig, args):
        if _X86:
            _pause(builder)
        return context.get_dummy_value()

    return types.void(), codegen


def _pause(builder):
    # the LLVM intrinsic, not inline assembly (Numba's JIT has no assembler for it)
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
    builder.call(fn, [])


@intrinsic
def yield_cpu(typingctx):
    """Give the core to another runnable thread (``sched_yield``; a pause hint on Windows)."""
    def codegen(context, builder, sig, args):
        if _POSIX:
            fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
            builder.call(fn, [])
        elif _X86:
            _pause(builder)
        return context.get_dummy_value()

    return types.void(), codegen


@njit(cache=True, nogil=True)
def barrier(bar, tid, n_threads):
    """Wait, as thread ``tid``, until all ``n_threads`` threads have called this with ``bar``
    (:func:`new_barrier`, shared by the team; reusable at once)."""
    mine = bar[tid * BAR_STRIDE] + 1  # only this thread writes its slot
    atomic_store(bar, tid * BAR_STRIDE, mine)
    for t in range(n_threads):
        if t == tid:
            continue
        spins = 0
        while atomic_load(bar, t * BAR_STRIDE) < mine:
            if spins < SPINS:
                spins += 1
                cpu_relax()
            else:
                yield_cpu()


def new_barrier(n_threads: int) -> np.ndarray:
    """A barrier array for :func:`barrier` and a team of ``n_threads``."""
    return np.zeros(max(n_threads, 1) * BAR_STRIDE, np.int64)


@intrinsic
def prefetch(typingctx, arr, idx):
    """Ask the cache for the line holding ``arr[idx]`` (``llvm.prefetch``: a read, kept close);
    no effect on any value, so the loop may touch memory it reads next. Not a synchronisation:
    kept here beside the other intrinsics of the loop."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1):
        return None

    def codegen(context, builder, sig, args):
        ptr = _element(context, builder, sig.args[0], args[0], args[1])
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(arr, idx), codegen
