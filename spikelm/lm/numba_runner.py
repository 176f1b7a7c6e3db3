"""The compiled executor: the graph packed into named bundles (:mod:`spikelm.lm.bundles`) once, then
one call of the generated token loop (:mod:`spikelm.lm.loop`) per token, by each thread of a team.

With ``threads`` > 1 the calling thread and ``threads - 1`` pool threads each run the loop
(compiled without the GIL) on their share of the neurons (:func:`split`), meeting at the
loop's barriers; they are OS threads, so all of them run at once, as the barriers need.
"""

from __future__ import annotations

import weakref
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from spikelm.lm import ops, progress
from spikelm.lm.bundles import CounterArrays, EventBuffer, LoopGraph, OpGraph, ThreadSplit, TokenState
from spikelm.lm.codings import coding_id
from spikelm.lm.compile import kinds, token_loop
from spikelm.lm.edges import KIND_IDS, reaches
from spikelm.lm.graph import ACCUMULATE, LMGraph
from spikelm.lm.layout import acc_dtype, flat_weights
from spikelm.lm.loop import BUFFER_FULL, MAX_STEPS
from spikelm.lm.runner import QuiescenceError, Runner
from spikelm.lm.sync import new_barrier

#: a thread's share of a population starts at a multiple of this many neurons (whole vectors
#: of int16 weights in a row), except for attention populations, which split by heads
ALIGN = 32


def no_learning():
    """The (unused) learning bundle of a loop compiled without LEARN: types only."""
    from spikelm.lm.learn.state import empty_bundle

    return empty_bundle()


def _i64(x):
    return np.ascontiguousarray(x, dtype=np.int64)


#: steps of spikes a row source holds before it adds them (at the latest when it settles)
HELD_STEPS = 8
def held_rows(graph: LMGraph, acc_type, hold: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """How the row additions run (docs/lm.md, "Held rows"): each projection's largest |weight|
    where its rows go through int32 partial sums (the loop adds as many spike rows into one as
    2^31 - 1 allows for the largest spike value held) before an int64 accumulator, 0 where the
    accumulators are int32 already and rows go straight in; for each population, where its
    spikes are held until its rows are added (-1: not held: learning runs, and populations
    without rows); and how many neurons are held."""
    wmax = np.zeros(len(graph.projections), np.int64)
    if acc_type == np.int64:
        for k, pr in enumerate(graph.projections):
            wmax[k] = max(-int(pr.weights.min(initial=0)), int(pr.weights.max(initial=0)), 1)
    dslot = np.full(len(graph.pops), -1, np.int64)
    n = 0
    if hold:
        for pre in sorted({pr.pre for pr in graph.projections}):
            dslot[pre] = n
            n += graph.pops[pre].size
    return wmax, dslot, n


def split(graph: LMGraph, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """Each thread's neurons of each population: ``lo``, ``hi`` int64 [threads x populations]
    (flat, thread-major), contiguous, in thread order, sizes as equal as whole units allow: a
    unit is a head of an attention population (the scores a softmax reads, heads x context;
    the queries of those scores; the output of the mix edge), else :data:`ALIGN` neurons.

    The attention populations split alike, by whole query heads at the same cuts, so a thread's
    query spikes reach only its own heads of the scores, and its attention probabilities only
    its own channels of the mix's output: the loop skips the other threads' spikes there
    (:func:`spikelm.lm.loop.reaches`), as it does for a product of two equal splits."""
    P = len(graph.pops)
    lo = np.zeros((threads, P), np.int64)
    hi = np.zeros((threads, P), np.int64)
    heads = {}
    for ed in graph.edges:
        if ed.kind == "scores":
            heads[ed.out] = heads[ed.a] = ed.heads
        elif ed.kind == "mix":
            heads[ed.out] = ed.heads
    for p, pop in enumerate(graph.pops):
        unit = pop.size // heads[p] if p in heads else ALIGN
        units = -(-pop.size // unit)
        cuts = [min(pop.size, unit * round(units * t / threads)) for t in range(threads + 1)]
        cuts[-1] = pop.size
        lo[:, p], hi[:, p] = cuts[:-1], cuts[1:]
    return lo.reshape(-1), hi.reshape(-1)


def local_factors(graph: LMGraph, lo: np.ndarray, hi: np.ndarray, threads: int) -> np.ndarray:
    """For each population that is a product edge's factor, whether a team's threads can skip the
    barrier after a step in which it spikes (:mod:`spikelm.lm.loop`, "quiet steps"): 1 when each
    thread's spikes add only into its own part of the output (:func:`~spikelm.lm.edges.reaches`)
    and read only its own neurons of the other factor (an elementwise product of equal splits);
    2 when they add only into its own part but read the other factor (``b``: K, V) wherever it
    lies, which is safe once that factor is done; 0 otherwise (and for non-factors)."""
    P = len(graph.pops)
    lo, hi = lo.reshape(threads, P), hi.reshape(threads, P)
    local = np.zeros(P, np.int64)
    for ed in graph.edges:
        for side, p in enumerate((ed.a, ed.b)):
            dh, ctx = ed.head_dim, graph.pops[ed.a].size // ed.heads
            unit = graph.pops[ed.out].size // ed.heads if ed.kind == "scores" else 1  # scores: owned heads
            stays = all(not reaches(KIND_IDS[ed.kind], side, lo[t, p], hi[t, p], lo[u, ed.out] // unit,
                                    hi[u, ed.out] // unit, dh, ed.group, ctx)
                        for t in range(threads) for u in range(threads) if u != t)
            other = ed.b if side == 0 else ed.a
            if not stays:
                continue
            if ed.kind == "mul":
                local[p] = int(np.array_equal(lo[:, p], lo[:, other]) and np.array_equal(hi[:, p], hi[:, other]))
            elif side == 0:
                local[p] = 2
    return local


#: (loop, argument layout) -> the entry point of the loop's overload for those argument types
_ENTRIES: dict = {}


def _layout(x):
    """What Numba's type of an argument depends on: an array's dtype, ndim, contiguity and
    writeability, a scalar's type, a bundle's class and fields."""
    if isinstance(x, tuple):
        return type(x), tuple(_layout(y) for y in x)
    if isinstance(x, np.ndarray):
        return x.dtype.str, x.ndim, x.flags.c_contiguous, x.flags.f_contiguous, x.flags.writeable, x.flags.aligned
    return type(x)


def entry_point(runner, args):
    """The entry point of ``runner``'s compiled loop for arguments like ``args``.

    Numba's dispatcher types every argument on every call, and typing the seven bundles (about
    80 arrays) costs as much as a short token: measured on the demo, ~20 us a call through the
    dispatcher, ~2 ms to look an overload up by its types, against ~1 ms a signed-digit
    token. So the first runner with a new argument layout has the dispatcher compile (or load)
    the loop for its types, and the overload's entry point is kept for every later runner whose
    arguments have that layout, hence the same Numba types. (Compiled before any thread calls
    it: the threads of a team must not compile it each.)"""
    if runner._entry is None:
        key = (runner.run_token, _layout(args))
        runner._entry = _ENTRIES.get(key)
        if runner._entry is None:
            sig = tuple(runner.run_token.typeof_pyval(a) for a in args)
            with progress.phase("compile the token loop (once per operator set; cached on disk)"):
                runner.run_token.compile(sig)
            runner._entry = _ENTRIES[key] = runner.run_token.overloads[sig].entry_point
    return runner._entry


class NumbaRunner(Runner):
    """Packs the graph into typed arrays once; :meth:`_run` calls the compiled loop per token.

    ``threads``: the threads that run each token (an int >= 1; learning runs take one). Any
    number gives the same logits, codes, spikes, steps and SynOps (see :mod:`spikelm.lm.loop`).
    """

    EVENT_CHUNK = 1 << 20

    def __init__(self, graph: LMGraph, record=False, timed: bool = False, learn=None, threads: int = 1,
                 positions: int | None = None):
        super().__init__(graph, record, learn, positions)
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise ValueError(f"threads={threads!r}; allowed: an integer >= 1")
        if learn is not None and threads != 1:
            raise ValueError("a learning runner runs on one thread")
        g, lay = graph, self.layout
        P = len(g.pops)
        R = int(lay.offsets[-1])
        T = self.threads = int(threads)
        self.kinds = kinds(p.op for p in g.pops if p.op != ACCUMULATE)
        # the LEARN variant carries spike units, EI-IF neurons and the learn phase; without
        # them the loop is generated with none of that code; THREADED adds the barriers
        self.run_token = token_loop(self.kinds, timed, learn is not None, T > 1)
        self._entry = None  # the compiled overload's entry point (entry_point)
        self.lrn = learn.bundle() if learn is not None else no_learning()
        by_kind = {name: [p for p, pop in enumerate(g.pops) if pop.op == name] for name in self.kinds}
        op_kind = np.full(P, -1, np.int64)
        op_arg = np.zeros(P, np.int64)
        for k, name in enumerate(self.kinds):
            for a, p in enumerate(by_kind[name]):
                op_kind[p], op_arg[p] = k, a
        self.op_params = tuple(ops.get(name).pack(g, by_kind[name]) for name in self.kinds)
        gain = np.ones(R, np.int64)
        offset = np.zeros(R, np.int64)
        for i, p in enumerate(g.pops):
            if p.gain is not None:
                gain[lay.seg(i)] = p.gain
                offset[lay.seg(i)] = p.offset
        order = sorted(range(len(g.projections)), key=lambda k: g.projections[k].pre)
        out_ptr = np.searchsorted([g.projections[k].pre for k in order], np.arange(P + 1))
        W, woff = (learn.W, learn.woff) if learn is not None else flat_weights(g, shared=True)
        scores = [e for e, ed in enumerate(g.edges) if ed.kind == "scores"]
        slot = np.full(max(len(g.edges), 1), -1, np.int64)
        for s, e in enumerate(scores):
            slot[e] = s
        fac_edge = np.full(P, -1, np.int64)
        fac_side = np.zeros(P, np.int64)
        kslot = np.full(P, -1, np.int64)
        for e, ed in enumerate(g.edges):
            fac_edge[ed.a], fac_side[ed.a] = e, 0
            fac_edge[ed.b], fac_side[ed.b] = e, 1
            if ed.kind == "scores":
                kslot[ed.b] = slot[e]
        E = g.edges
        # attention probabilities: only keys 0 .. n of a position can hold a code (activate looks at no other)
        pos_ctx = np.zeros(P, np.int64)
        for ed in E:
            a = g.pops[ed.a]
            if ed.kind == "mix" and a.op != ACCUMULATE and a.qmin <= 0 <= a.qmax:
                pos_ctx[ed.a] = a.size // ed.heads
        qmin, qmax = _i64([p.qmin for p in g.pops]), _i64([p.qmax for p in g.pops])
        acc_type = acc_dtype(g, learn.bounds if learn is not None else None)
        wmax, dslot, n_held = held_rows(g, acc_type, learn is None)
        # a team adds each thread's held rows, at their whole width, into its own columns of priv
        held = [dslot[pr.pre] >= 0 and T > 1 for pr in g.projections]
        widths = [pr.weights.shape[1] if h else 0 for pr, h in zip(g.projections, held)]
        poff = _i64(np.concatenate([[0], np.cumsum(widths)[:-1]]) if widths else [0])
        in_ptr = _i64(np.concatenate([[0], np.cumsum([len(p.inputs) for p in g.pops])]))
        in_idx = _i64([i for p in g.pops for i in p.inputs] or [0])
        offsets = _i64(lay.offsets)
        self.struct = LoopGraph(
            off=offsets, in_ptr=in_ptr, in_idx=in_idx, qmin=qmin, qmax=qmax,
            shift=_i64([p.shift for p in g.pops]), gain=gain, offset=offset, op_kind=op_kind, op_arg=op_arg,
            spiking=_i64([p.spiking for p in g.pops]), coding=_i64([coding_id(p.coding) for p in g.pops]),
            stim=np.int64(g.stimulus),
            out_ptr=_i64(out_ptr), out_idx=_i64(order), pj_post=_i64([pr.post for pr in g.projections]),
            pj_woff=woff, pj_npost=_i64([pr.weights.shape[1] for pr in g.projections]), W=W,
            pj_wmax=wmax, pj_poff=poff, dslot=dslot,
            fac_edge=fac_edge, fac_side=fac_side,
            ed_kind=_i64([KIND_IDS[ed.kind] for ed in E] or [0]), ed_a=_i64([ed.a for ed in E] or [0]),
            ed_b=_i64([ed.b for ed in E] or [0]), ed_out=_i64([ed.out for ed in E] or [0]),
            ed_heads=_i64([ed.heads for ed in E] or [1]), ed_group=_i64([ed.group for ed in E] or [1]),
            ed_dh=_i64([ed.head_dim for ed in E] or [1]), ed_slot=slot, ed_window=_i64([ed.window for ed in E] or [0]),
            kslot=kslot, pos_ctx=pos_ctx,
            op_graph=OpGraph(off=offsets, in_ptr=in_ptr, in_idx=in_idx, qmin=qmin, qmax=qmax),
        )
        n_heads = max([E[e].heads for e in scores] or [1])
        k_size = max([g.pops[E[e].b].size for e in scores] or [1])
        ctx = g.n_positions
        self.acc = np.zeros(R, acc_type)
        self.S = np.zeros((max(len(scores), 1), n_heads, ctx), np.int64)
        self.kcache = np.zeros((max(len(scores), 1), k_size, ctx), np.int32)
        self._scores = scores
        self._fill_kcache(g.n_prefix)  # K codes of the constant prefix
        n_sp = lay.n_spiking
        self.st = np.zeros(1, np.int64)
        self.state = TokenState(
            counts=self.counts, acc=self.acc, S=self.S, kcache=self.kcache, started=np.zeros(T * P, np.uint8),
            done=np.zeros(T * P, np.uint8), alist=np.zeros(n_sp, np.int32), alen=np.zeros(T * P, np.int64),
            rest=np.zeros(n_sp, np.int32 if int((qmax - qmin).max(initial=0)) < 2**31 else np.int64),
            aleft=np.zeros(2 * T * P, np.int64), stepval=np.zeros(n_sp, np.int32), sp=np.zeros(n_sp, np.int64),
            pstart=np.zeros(2 * T * P, np.int64), pend=np.zeros(2 * T * P, np.int64), scratch=np.zeros((T, max(max(p.size for p in g.pops), ctx)), np.int64),
            dbuf=np.zeros((HELD_STEPS, max(n_held, 1)), np.int32), dk=np.zeros(T * P, np.int64),
            part=np.zeros((T, max([pr.weights.shape[1] for pr, w in zip(g.projections, wmax) if w] or [1])),
                          np.int32),
            priv=np.zeros((T, max(sum(widths), 1)), acc_type), st=self.st)
        lo, hi = split(g, T)
        spiking = np.array([p.spiking for p in g.pops] * T, bool)
        owned = np.where(spiking, hi - lo, 0).reshape(T, P).sum(1)
        self.split = ThreadSplit(n_threads=np.int64(T), lo=lo, hi=hi,
                                 sp_base=_i64(np.concatenate([[0], np.cumsum(owned)[:-1]])), bar=new_barrier(T),
                                 local=local_factors(g, lo, hi, T))
        self.timing = np.zeros(2, np.int64)
        C = self.counters
        self.counter_arrays = CounterArrays(C.spikes_pos, C.spikes_neg, C.op_evals, C.synops, C.synops_products,
                                            C.shift_adds, self.timing)
        # the other threads count into their own arrays, added to these after every call
        self.team_counters = [CounterArrays(*(np.zeros_like(a) for a in self.counter_arrays)) for _ in range(T - 1)]
        self._pool = None
        if T > 1:
            self._pool = ThreadPoolExecutor(max_workers=T - 1, thread_name_prefix="spikelm-lm")
            weakref.finalize(self, self._pool.shutdown, wait=False)
        n_ev = max(self.EVENT_CHUNK, 2 * n_sp) if record else 1
        self.ev = (np.zeros(n_ev, np.int64), np.zeros(n_ev, np.int64), np.zeros(n_ev, np.int64),
                   np.zeros(n_ev, np.int32))  # step, population, node, value
        self.ev_n = np.zeros(1, np.int64)

    def _fill_kcache(self, upto: int):
        """The K cache (channel-major) of positions before ``upto`` from their spike counts."""
        g = self.graph
        for s, e in enumerate(self._scores):
            seg = self.layout.seg(g.edges[e].b)
            self.kcache[s, : seg.stop - seg.start, :upto] = self.counts[:upto, seg].T

    def _resized(self):
        self.state = self.state._replace(counts=self.counts)  # the loop reads the arrays it is given

    def restore(self, counts, head_acc, n, clock, counters, source="checkpoint"):
        super().restore(counts, head_acc, n, clock, counters, source)
        self._fill_kcache(n)

    def _flush(self):
        k = int(self.ev_n[0])
        if self.events is not None and k:
            self.events.add(*(a[:k].copy() for a in self.ev))
        self.ev_n[0] = 0

    def _call(self, fresh, n, emb, max_steps, rec) -> int:
        """One call of the loop by every thread of the team; the threads' counts added up."""
        def args(t, counters):
            return (np.int64(t), fresh, n, emb, max_steps, self.struct, self.state, counters, rec, self.op_params,
                    self.lrn, self.split)

        run = entry_point(self, args(0, self.counter_arrays))
        if self.threads == 1:
            return run(*args(0, self.counter_arrays))
        team = [self._pool.submit(run, *args(t, c)) for t, c in enumerate(self.team_counters, 1)]
        status = run(*args(0, self.counter_arrays))
        statuses = [f.result() for f in team]
        for c in self.team_counters:
            for mine, theirs in zip(self.counter_arrays, c):
                mine += theirs
                theirs[...] = 0
        assert all(s == status for s in statuses), "the threads of a team ended differently"
        return status

    def _run(self, n: int, token: int, max_steps: int) -> int:
        emb = self.emb_codes(token, n)
        fresh = True
        while True:
            rec = EventBuffer(self.events is not None, np.int64(self.clock), *self.ev, self.ev_n)
            status = self._call(fresh, n, emb, max_steps, rec)
            fresh = False
            self._flush()
            if status == BUFFER_FULL:
                continue
            if status == MAX_STEPS:
                raise QuiescenceError(f"token at position {n}: no quiescence within max_steps={max_steps}")
            break
        self.head_acc[n] = self.acc[self.layout.seg(self.graph.readout)]
        return int(self.st[0])
