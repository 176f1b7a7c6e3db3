"""Event-driven execution of an :class:`~spikelm.lm.graph.LMGraph`, token by token, to quiescence.

One step, as everywhere in spikelm: **deliver** (a spike's synaptic rows reach the target
accumulators one step after it was fired), **update** (started SignedIF neurons fire at most
one spike each, of the value their coding gives), **propagate** (weight rows and the
telescoping product updates of :mod:`spikelm.lm.edges`; one SynOp per addition), then the
schedule's bookkeeping.

Schedule (every backend): a population starts once every population it reads from is
quiescent for this token; an operator population evaluates its operator then. Inputs
therefore never change under a firing neuron, so each neuron spells exactly its code in
spikes of its coding, and the SynOps have a closed form. Appending token n touches only
position n (causal attention reads settled K and V codes), so settled positions stay silent.

:class:`NumpyRunner` is the reference: short and vectorised per population. The compiled
runner is :class:`spikelm.lm.numba_runner.NumbaRunner`; both share :class:`Runner`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spikelm.errors import CheckpointMismatchError, SpikelmError
from spikelm.lm import edges as E
from spikelm.lm import ops
from spikelm.lm.codings import coding_id
from spikelm.lm.graph import ACCUMULATE, LMGraph
from spikelm.lm.layout import Layout
from spikelm.lm.learn import kernels as learn_kernels
from spikelm.lm.learn import reference as learn_ref
from spikelm.lm.neuron import signed_if_step
from spikelm.lm.reference import logits as read_logits
from spikelm.lm.report import layer_ids


class QuiescenceError(SpikelmError, RuntimeError):
    """A token did not reach quiescence within max_steps."""




#: counter names (shared with the engine's words: SynOps, spikes, events)
COUNTERS = ("spikes_pos", "spikes_neg", "op_evals", "synops_products", "shift_adds")


@dataclass
class Counters:
    """Counts of one run (all tokens so far): per population, and SynOps per projection.

    spikes_pos/spikes_neg: spikes fired (+ and -); op_evals: output elements computed by
    operators; synops: row additions per projection; synops_products: telescoping additions
    per source population; shift_adds: of all those additions, the ones whose spike value
    is not ±1 (a shifted addition), per source population.
    """

    n_pops: int
    n_proj: int
    spikes_pos: np.ndarray = None
    spikes_neg: np.ndarray = None
    op_evals: np.ndarray = None
    synops: np.ndarray = None
    synops_products: np.ndarray = None
    shift_adds: np.ndarray = None

    def __post_init__(self):
        for name in COUNTERS:
            setattr(self, name, np.zeros(self.n_pops, np.int64))
        self.synops = np.zeros(self.n_proj, np.int64)


@dataclass
class SpikeEvents:
    """Spikes of a run: step (global), population index, node id (position-major), value."""

    steps: list = field(default_factory=list)
    pops: list = field(default_factory=list)
    nodes: list = field(default_factory=list)
    values: list = field(default_factory=list)
    sink: object = None  # a callable(steps, pops, nodes, values) that takes them instead

    def add(self, steps, pops, nodes, values):
        arrays = (np.asarray(steps, np.int64), np.asarray(pops, np.int64), np.asarray(nodes, np.int64),
                  np.asarray(values, np.int32))
        if self.sink is not None:
            self.sink(*arrays)
            return
        for store, a in zip((self.steps, self.pops, self.nodes, self.values), arrays):
            store.append(a)

    def arrays(self):
        if not self.steps:
            return (np.zeros(0, np.int64),) * 3 + (np.zeros(0, np.int32),)
        return tuple(np.concatenate(x) for x in (self.steps, self.pops, self.nodes, self.values))


class Runner:
    """State shared by every backend: spike counts of every position, counters, clock.

    ``learn``: a :class:`~spikelm.lm.learn.state.LearnState` (spike units, EI-IF neurons,
    plasticity; its ``graph`` is this runner's), or None for the exact executor.
    ``positions``: the positions (constant prefix included) the run is expected to reach; the
    per-position state (spike counts, readout accumulators) is made for that many and grows,
    doubling, if the run goes further (None: the whole context). A run's results do not
    depend on it.
    """

    #: the readout rule's kernel, run before each token on the last one's error (the reference overrides it)
    readout_kernel = staticmethod(learn_kernels.readout_learn)

    def __init__(self, graph: LMGraph, record=False, learn=None, positions: int | None = None):
        self.graph = graph
        self.learn = learn
        self.layout = Layout.of(graph)
        self.layer_ids = layer_ids(graph)  # for the per-layer counts after every token
        self.post_of = np.array([pr.post for pr in graph.projections], dtype=np.int64)
        # every position's spike counts: the largest state of a run. int16 where every count fits,
        # overshoot included (a signed-digit count may pass its code on the way: 7 = 8 - 1)
        wide = max((max(-p.qmin, p.qmax) for p in graph.pops if p.spiking), default=0) >= 2**14
        rows = graph.n_positions if positions is None else min(graph.n_positions, max(int(positions), graph.n_prefix, 1))
        self.counts = np.zeros((rows, self.layout.n_spiking), np.int32 if wide else np.int16)
        self.head_acc = np.zeros((rows, graph.vocab_size), np.int64)
        self.counters = Counters(len(graph.pops), len(graph.projections))
        self.events = None
        if record:
            self.events = SpikeEvents(sink=record if callable(record) else None)
        self.clock = 0 if learn is None else learn.clock  # steps since the start of the run (of learning)
        self.n = graph.n_prefix  # next position: text starts after the constant prefix
        if graph.prefix is not None:
            for name, c in graph.prefix.codes.items():
                self.counts[: graph.n_prefix, self.layout.seg(graph.index[name])] = c

    def emb_codes(self, token: int, n: int) -> np.ndarray:
        g = self.graph
        p = g.stimulus
        ctx = ops.OpContext(ids=np.array([token]), positions=np.array([n]), n_positions=g.n_positions)
        return ops.get(g.pops[p].op).evaluate(g, g.pops[p], [], ctx)[0]

    def logits(self, n: int) -> np.ndarray:
        learned = None if self.learn is None else self.learn.logits(self.head_acc[n])
        return read_logits(self.graph, self.head_acc[n]) if learned is None else learned

    def step_token(self, token: int, max_steps: int | None) -> int:
        """Append ``token`` at the next position and run to quiescence; returns the steps."""
        n = self.n
        if n >= self.graph.n_positions:
            raise SpikelmError(f"position {n} is past the model's context of {self.graph.n_positions}")
        if n >= self.counts.shape[0]:
            self.reserve(min(self.graph.n_positions, max(n + 1, 2 * self.counts.shape[0])))
        if self.learn is not None:
            prev = n > self.graph.n_prefix  # the last token's readout error, now that its target is known
            self.learn.before_token(self.counts[n - 1] if prev else None, self.head_acc[n - 1] if prev else None,
                                    token, self.readout_kernel)
            self.learn.begin_token()
        steps = self._run(n, int(token), max_steps if max_steps is not None else np.iinfo(np.int64).max)
        self.n += 1
        self.clock += steps
        if self.learn is not None:
            self.learn.end_token(self.clock)
        return steps

    def _run(self, n: int, token: int, max_steps: int) -> int:
        raise NotImplementedError

    def reserve(self, rows: int) -> None:
        """Per-position state for ``rows`` positions at least (prefix included; at most the
        context): the settled positions copied into new arrays, which the next token's run reads."""
        rows = min(int(rows), self.graph.n_positions)
        if rows <= self.counts.shape[0]:
            return
        for name in ("counts", "head_acc"):
            old = getattr(self, name)
            new = np.zeros((rows, old.shape[1]), old.dtype)  # untouched rows take no memory until written
            new[: self.n] = old[: self.n]
            setattr(self, name, new)
        self._resized()

    def _resized(self) -> None:
        """After :meth:`reserve` replaced the per-position arrays (a backend holding them elsewhere updates there)."""

    def restore(self, counts, head_acc, n: int, clock: int, counters: dict, source: str = "checkpoint"):
        """Continue from saved state: positions before ``n`` settled with these spike counts and
        readout accumulators, the clock and the counters as they were (checkpoints)."""
        if np.shape(counts) != (n, self.counts.shape[1]) or np.shape(head_acc) != (n, self.head_acc.shape[1]):
            raise CheckpointMismatchError(f"{source}: spike counts {np.shape(counts)} or readout {np.shape(head_acc)} "
                                          f"do not fit {n} positions of this model")
        for name, arr in counters.items():
            mine = getattr(self.counters, name)
            if np.shape(arr) != mine.shape:
                raise CheckpointMismatchError(f"{source}: counter {name!r} has shape {np.shape(arr)}, expected {mine.shape}")
            mine[...] = arr
        self.reserve(n)
        self.counts[:n] = counts
        self.head_acc[:n] = head_acc
        self.n, self.clock = int(n), int(clock)


class NumpyRunner(Runner):
    """The reference event-driven executor (NumPy, one population at a time)."""

    readout_kernel = staticmethod(learn_ref.readout_learn)

    def __init__(self, graph: LMGraph, record=False, learn=None, positions: int | None = None):
        super().__init__(graph, record, learn, positions)
        self.W = [pr.weights if learn is None else learn.weights(k) for k, pr in enumerate(graph.projections)]
        self.out = {}
        for k, pr in enumerate(graph.projections):
            self.out.setdefault(pr.pre, []).append(k)
        self.factor_of = {}
        for e, ed in enumerate(graph.edges):
            self.factor_of[ed.a] = (e, 0)
            self.factor_of[ed.b] = (e, 1)

    def _run(self, n: int, token: int, max_steps: int) -> int:
        g, lay, C = self.graph, self.layout, self.counters
        P = len(g.pops)
        counts = self.counts
        acc = np.zeros(int(lay.offsets[-1]), np.int64)
        S = {e: np.zeros((ed.heads, n + 1), np.int64) for e, ed in enumerate(g.edges) if ed.kind == "scores"}
        started = np.zeros(P, bool)
        done = np.zeros(P, bool)
        stim = g.stimulus
        acc[lay.seg(stim)] = self.emb_codes(token, n)
        started[stim] = True
        C.op_evals[stim] += g.pops[stim].size
        if self._learns(stim):
            learn_ref.start(self.learn, stim, g.pops[stim], n, counts, acc, 0)
        steps = 0
        while not done.all():
            if steps >= max_steps:
                raise QuiescenceError(f"token at position {n}: no quiescence within max_steps={max_steps}")
            spk = {}
            # update
            for p, pop in enumerate(g.pops):
                if not started[p] or done[p] or not pop.spiking:
                    continue
                seg = lay.seg(p)
                s, new = self._update(p, pop, n, acc, steps)
                idx = np.flatnonzero(s)
                if idx.size:
                    counts[n, seg] = new
                    spk[p] = (idx, s[idx].astype(np.int64))
                    C.spikes_pos[p] += int((s > 0).sum())
                    C.spikes_neg[p] += int((s < 0).sum())
                    if self.events is not None:
                        self.events.add(np.full(idx.size, self.clock + steps), np.full(idx.size, p),
                                        n * pop.size + idx, s[idx])
            if self.learn is not None:
                learn_ref.learn_step(self.learn, self.clock + steps, spk)
            # propagate
            for p, (idx, val) in spk.items():
                shifted = np.abs(val) != 1
                for k in self.out.get(p, ()):
                    pr = g.projections[k]
                    acc[lay.seg(pr.post)] += val @ self.W[k][idx].astype(np.int64)
                    C.synops[k] += idx.size * pr.weights.shape[1]
                    C.shift_adds[p] += int(shifted.sum()) * pr.weights.shape[1]
                if p in self.factor_of:
                    e, side = self.factor_of[p]
                    ops_done = self._telescope(g.edges[e], side, S.get(e), idx, val, spk, acc, n)
                    C.synops_products[p] += int(ops_done.sum())
                    C.shift_adds[p] += int(ops_done[shifted].sum())
            # schedule: quiescent populations are done, ready ones start
            for p, pop in enumerate(g.pops):
                if started[p] and not done[p]:
                    if not pop.spiking or not self._pending(p, pop, n, acc, steps):
                        done[p] = True
            for p, pop in enumerate(g.pops):
                if not started[p] and all(done[i] for i in pop.inputs):
                    started[p] = True
                    if pop.op != ACCUMULATE:
                        self._start(p, pop, acc, S, n)
                    if not pop.spiking:
                        done[p] = True
                    elif self._learns(p):
                        learn_ref.start(self.learn, p, pop, n, counts, acc, steps + 1)
            steps += 1
        self.head_acc[n] = acc[lay.seg(g.readout)]
        return steps

    def _learns(self, p) -> bool:
        """Population p has spike units or EI-IF neurons (the learning reference fires it)."""
        return self.learn is not None and self.learn.a["lkind"][p] != learn_ref.K.PLAIN

    def _update(self, p, pop, n, acc, steps):
        if self._learns(p):
            return learn_ref.fire(self.learn, p, pop, n, self.counts, acc, steps)
        seg = self.layout.seg(p)
        return self._fire(pop, acc[seg], self.counts[n, seg])

    def _pending(self, p, pop, n, acc, steps) -> bool:
        if self._learns(p):
            return learn_ref.pending(self.learn, p, pop, n, self.counts, acc, steps)
        seg = self.layout.seg(p)
        return bool(self._fire(pop, acc[seg], self.counts[n, seg])[0].any())

    @staticmethod
    def _fire(pop, acc, count):
        coding = coding_id(pop.coding)
        if pop.op != ACCUMULATE:  # operator-fed: the accumulator holds the code
            return signed_if_step(acc, count, 1, 0, 0, pop.qmin, pop.qmax, coding)
        return signed_if_step(acc, count, pop.gain, pop.offset, pop.shift, pop.qmin, pop.qmax, coding)

    def _start(self, p, pop, acc, S, n):
        g, lay = self.graph, self.layout
        ins = [self.counts[n : n + 1, lay.seg(i)] for i in pop.inputs]
        e = g.scores_into(p)  # an operator reading Q·K^T accumulators (a softmax)
        scores = None if e is None else S[e][None]
        ctx = ops.OpContext(ids=np.zeros(1, np.int64), positions=np.array([n]), n_positions=g.n_positions,
                            scores=scores)
        acc[lay.seg(p)] = ops.get(pop.op).evaluate(g, pop, ins, ctx)[0]
        self.counters.op_evals[p] += ops.get(pop.op).evaluations(g, p, n)

    def _telescope(self, ed, side, S, idx, val, spk, acc, n):
        """Exact product updates of one population's spikes; returns the additions per spike."""
        g, lay, counts = self.graph, self.layout, self.counts
        H, dh, G = ed.heads, ed.head_dim, ed.group

        def before_step(p, rows):  # codes of population p at rows, minus this step's spikes at row n
            c = counts[rows, lay.seg(p)].astype(np.int64)
            if p in spk:
                c[-1, spk[p][0]] -= spk[p][1]
            return c

        m = idx.size
        if ed.kind == "scores" and side == 0:  # Q spikes: the keys the query sees
            j0 = E.first_key(ed.window, n)
            k_old = before_step(ed.b, slice(j0, n + 1))
            kc = (idx // dh // G) * dh + idx % dh
            np.add.at(S[:, j0:], idx // dh, (k_old[:, kc] * val).T)
            return np.full(m, n + 1 - j0)
        if ed.kind == "scores":  # K spikes
            q_new = counts[n, lay.seg(ed.a)].astype(np.int64)
            hs = (idx // dh)[:, None] * G + np.arange(G)
            np.add.at(S[:, n], hs, val[:, None] * q_new[hs * dh + (idx % dh)[:, None]])
            return np.full(m, G)
        out = acc[lay.seg(ed.out)]
        if ed.kind == "mix" and side == 0:  # attention-probability spikes
            ctx = g.pops[ed.a].size // H
            h, j = idx // ctx, idx % ctx
            v_old = before_step(ed.b, slice(0, n + 1)).reshape(n + 1, H // G, dh)
            o = out.reshape(H, dh)
            np.add.at(o, h, v_old[j, h // G] * val[:, None])
            return np.full(m, dh)
        if ed.kind == "mix":  # V spikes
            ctx = g.pops[ed.a].size // H
            att_new = counts[n, lay.seg(ed.a)].astype(np.int64).reshape(H, ctx)[:, n]
            hs = (idx // dh)[:, None] * G + np.arange(G)
            np.add.at(out, hs * dh + (idx % dh)[:, None], val[:, None] * att_new[hs])
            return np.full(m, G)
        if side == 0:  # mul, left factor
            np.add.at(out, idx, val * before_step(ed.b, slice(n, n + 1))[0, idx])
        else:
            np.add.at(out, idx, val * counts[n, lay.seg(ed.a)].astype(np.int64)[idx])
        return np.ones(m, np.int64)

