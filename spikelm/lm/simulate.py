"""Event-driven execution of the population graph, token by token, to quiescence.

One step, as everywhere in spikelm: **deliver** (a spike's synaptic rows reach the target
accumulators one step after it was fired), **update** (started SignedIF neurons fire at most
one spike each), **propagate** (int8 rows, telescoping Q·K^T and A·V updates; one SynOp per
addition), then the schedule's bookkeeping.

Schedule (both backends): a population starts once every population it reads from is
quiescent for this token; an operator-fed population evaluates its operator then. Inputs
therefore never change after a neuron starts firing, so each neuron fires exactly |code|
spikes, all of one sign, and the SynOps equal sum |code| x fan-out. Appending token n touches
only position n (causal attention reads settled K and V codes), so settled positions stay silent.

``NumpyRunner`` is the reference: short and vectorised per population. ``NumbaRunner`` runs
the whole step loop of a token in one compiled call (:mod:`spikelm.lm.kernels`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spikelm.errors import SpikelmError
from spikelm.lm import ops
from spikelm.lm.graph import (
    GELU,
    LAYERNORM,
    READOUT,
    RESIDUAL,
    SOFTMAX,
    TELE_ATT,
    TELE_K,
    TELE_Q,
    TELE_V,
    QuantizedGPT,
)
from spikelm.lm.neuron import signed_if_step


class QuiescenceError(SpikelmError, RuntimeError):
    """A token did not reach quiescence within max_steps."""


@dataclass
class Layout:
    """Where each population's neurons of one position lie in the flat per-position arrays."""

    offsets: np.ndarray  # [P + 1]; the head's segment follows the spiking neurons
    n_spiking: int  # neurons per position that spike (all but the head readout)

    @classmethod
    def of(cls, qm: QuantizedGPT) -> "Layout":
        sizes = np.array([p.size for p in qm.pops], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        return cls(offsets, int(offsets[qm.index["head"]]))

    def seg(self, p: int) -> slice:
        return slice(int(self.offsets[p]), int(self.offsets[p + 1]))


@dataclass
class Counters:
    """Counts of one run (all tokens so far), per population or edge."""

    n_pops: int
    n_proj: int
    spikes_pos: np.ndarray = None
    spikes_neg: np.ndarray = None
    op_evals: np.ndarray = None
    synops_proj: np.ndarray = None  # per projection
    synops_tele: np.ndarray = None  # per source population (Q, K, V, att)

    def __post_init__(self):
        for name in ("spikes_pos", "spikes_neg", "op_evals", "synops_tele"):
            setattr(self, name, np.zeros(self.n_pops, np.int64))
        self.synops_proj = np.zeros(self.n_proj, np.int64)


@dataclass
class SpikeEvents:
    """Spikes of a run: step (global), population index, node id (position-major), value."""

    steps: list = field(default_factory=list)
    pops: list = field(default_factory=list)
    nodes: list = field(default_factory=list)
    values: list = field(default_factory=list)
    sink: object = None  # a callable(steps, pops, nodes, values) that takes them instead

    def add(self, steps, pops, nodes, values):
        if self.sink is not None:
            self.sink(np.asarray(steps, np.int64), np.asarray(pops, np.int64),
                      np.asarray(nodes, np.int64), np.asarray(values, np.int8))
            return
        self.steps.append(np.asarray(steps, np.int64))
        self.pops.append(np.asarray(pops, np.int64))
        self.nodes.append(np.asarray(nodes, np.int64))
        self.values.append(np.asarray(values, np.int8))

    def arrays(self):
        if not self.steps:
            return (np.zeros(0, np.int64),) * 3 + (np.zeros(0, np.int8),)
        return tuple(np.concatenate(x) for x in (self.steps, self.pops, self.nodes, self.values))


class Runner:
    """State shared by both backends: spike counts of every position, counters, clock."""

    def __init__(self, qm: QuantizedGPT, record=False):
        self.qm = qm
        self.layout = Layout.of(qm)
        cfg = qm.config
        self.counts = np.zeros((cfg.n_positions, self.layout.n_spiking), np.int32)
        self.head_acc = np.zeros((cfg.n_positions, cfg.vocab_size), np.int64)
        self.counters = Counters(len(qm.pops), len(qm.projections))
        self.events = None
        if record:
            self.events = SpikeEvents(sink=record if callable(record) else None)
        self.clock = 0  # steps since the start of the run
        self.n = 0  # next position

    def emb_codes(self, token: int, n: int) -> np.ndarray:
        p = self.qm.pops[0]
        return ops.embed(self.qm.wte[token], self.qm.wpe[n], self.qm.emb_scale, p.qmin, p.qmax)

    def logits(self, n: int) -> np.ndarray:
        return ops.logits(self.head_acc[n], self.qm.head_scale, self.qm.head_bias)

    def step_token(self, token: int, max_steps: int | None) -> int:
        """Append ``token`` at the next position and run to quiescence; returns the steps."""
        n = self.n
        if n >= self.qm.config.n_positions:
            raise SpikelmError(f"position {n} is past the model's context of {self.qm.config.n_positions}")
        steps = self._run(n, int(token), max_steps if max_steps is not None else np.iinfo(np.int64).max)
        self.n += 1
        self.clock += steps
        return steps


class NumpyRunner(Runner):
    """The reference event-driven executor (NumPy, one population at a time)."""

    def _run(self, n: int, token: int, max_steps: int) -> int:
        qm, lay, C = self.qm, self.layout, self.counters
        cfg = qm.config
        P, H = len(qm.pops), cfg.n_head
        counts = self.counts
        acc = np.zeros(lay.n_spiking + cfg.vocab_size, np.int64)
        S = np.zeros((cfg.n_layer, H, n + 1), np.int64)
        out = {}
        for k, pr in enumerate(qm.projections):
            out.setdefault(pr.pre, []).append(k)
        started = np.zeros(P, bool)
        done = np.zeros(P, bool)
        acc[lay.seg(0)] = self.emb_codes(token, n)
        started[0] = True
        C.op_evals[0] += qm.pops[0].size
        steps = 0
        while not done.all():
            if steps >= max_steps:
                raise QuiescenceError(f"token at position {n}: no quiescence within max_steps={max_steps}")
            spk = {}
            # update
            for p, pop in enumerate(qm.pops):
                if not started[p] or done[p] or pop.feed == READOUT:
                    continue
                seg = lay.seg(p)
                s, new = self._fire(pop, acc[seg], counts[n, seg])
                idx = np.flatnonzero(s)
                if idx.size:
                    counts[n, seg] = new
                    spk[p] = (idx, s[idx].astype(np.int64))
                    C.spikes_pos[p] += int((s > 0).sum())
                    C.spikes_neg[p] += int((s < 0).sum())
                    if self.events is not None:
                        self.events.add(np.full(idx.size, self.clock + steps), np.full(idx.size, p),
                                        n * pop.size + idx, s[idx])
            # propagate
            for p, (idx, val) in spk.items():
                pop = qm.pops[p]
                for k in out.get(p, ()):
                    pr = qm.projections[k]
                    acc[lay.seg(pr.post)] += val @ pr.weights[idx].astype(np.int64)
                    C.synops_proj[k] += idx.size * pr.weights.shape[1]
                if pop.tele:
                    self._telescope(p, pop, idx, val, spk, acc, S, n)
            # schedule: quiescent populations are done, ready ones start
            for p, pop in enumerate(qm.pops):
                if started[p] and not done[p]:
                    seg = lay.seg(p)
                    if pop.feed == READOUT or not self._fire(pop, acc[seg], counts[n, seg])[0].any():
                        done[p] = True
            for p, pop in enumerate(qm.pops):
                if not started[p] and all(done[i] for i in pop.inputs):
                    started[p] = True
                    self._start(p, pop, acc, S, n)
                    if pop.feed == READOUT:
                        done[p] = True
            steps += 1
        self.head_acc[n] = acc[lay.n_spiking :]
        return steps

    @staticmethod
    def _fire(pop, acc, count):
        if pop.gain is None:  # operator-fed: the accumulator holds the code
            return signed_if_step(acc, count, 1, 0, 0, pop.qmin, pop.qmax)
        return signed_if_step(acc, count, pop.gain, pop.offset, pop.shift, pop.qmin, pop.qmax)

    def _start(self, p, pop, acc, S, n):
        qm, lay, counts = self.qm, self.layout, self.counts
        ins = [counts[n, lay.seg(i)] for i in pop.inputs]
        seg = lay.seg(p)
        if pop.feed == LAYERNORM:
            a = pop.arg
            acc[seg] = ops.layernorm(ins[0], qm.ln_gain[a], qm.ln_bias[a], qm.ln_eps[a], pop.qmin, pop.qmax)
        elif pop.feed == RESIDUAL:
            a = pop.arg
            acc[seg] = ops.residual(ins[0], ins[1], qm.res_gain[a], int(qm.res_shift[a]), pop.qmin, pop.qmax)
        elif pop.feed == GELU:
            acc[seg] = ops.gelu(ins[0], qm.gelu_lut[pop.arg], qm.pops[pop.inputs[0]].qmin)
        elif pop.feed == SOFTMAX:
            ctx, H = qm.config.n_positions, qm.config.n_head
            l = pop.arg
            codes = ops.softmax(S[l], np.ones(n + 1, bool), qm.sm_hi[l], qm.sm_lo[l], int(qm.sm_shift[l]), pop.qmax)
            a = np.zeros((H, ctx), np.int64)
            a[:, : n + 1] = codes
            acc[seg] = a.reshape(-1)
            self.counters.op_evals[p] += H * (n + 1)
            return
        else:
            return
        self.counters.op_evals[p] += pop.size

    def _telescope(self, p, pop, idx, val, spk, acc, S, n):
        """Exact product updates: d(q k) = dq k_old + q_new dk; d(a v) = da v_old + a_new dv."""
        qm, lay, counts, C = self.qm, self.layout, self.counts, self.counters
        cfg = qm.config
        H, dh, ctx = cfg.n_head, cfg.head_dim, cfg.n_positions
        base = p - {TELE_Q: 1, TELE_K: 2, TELE_V: 3, TELE_ATT: 4}[pop.tele]  # the layer's q is base + 1
        l = qm.pops[base + 5].arg  # the ctx population knows its layer
        iq, ik, iv, ia, io = base + 1, base + 2, base + 3, base + 4, base + 5

        def step_values(i, size):
            d = np.zeros(size, np.int64)
            if i in spk:
                d[spk[i][0]] = spk[i][1]
            return d

        if pop.tele == TELE_Q:
            k_old = counts[: n + 1, lay.seg(ik)].astype(np.int64)
            k_old[n] -= step_values(ik, cfg.n_embd)
            contrib = k_old[:, idx] * val  # [n + 1, spikes]
            heads = idx // dh
            for h in np.unique(heads):
                S[l, h] += contrib[:, heads == h].sum(1)
            C.synops_tele[p] += idx.size * (n + 1)
        elif pop.tele == TELE_K:
            q_new = counts[n, lay.seg(iq)].astype(np.int64)
            np.add.at(S[l, :, n], idx // dh, q_new[idx] * val)
            C.synops_tele[p] += idx.size
        elif pop.tele == TELE_ATT:
            h, j = idx // ctx, idx % ctx
            v_old = counts[: n + 1, lay.seg(iv)].astype(np.int64)
            v_old[n] -= step_values(iv, cfg.n_embd)
            rows = v_old[j].reshape(-1, H, dh)[np.arange(idx.size), h] * val[:, None]
            o = acc[lay.seg(io)].reshape(H, dh)
            np.add.at(o, h, rows)
            acc[lay.seg(io)] = o.reshape(-1)
            C.synops_tele[p] += idx.size * dh
        elif pop.tele == TELE_V:
            a_new = counts[n, lay.seg(ia)].astype(np.int64).reshape(H, ctx)[:, n]
            acc[lay.seg(io)][idx] += a_new[idx // dh] * val
            C.synops_tele[p] += idx.size


class NumbaRunner(Runner):
    """The compiled executor: one call of :func:`spikelm.lm.kernels.run_token` per token."""

    EVENT_CHUNK = 1 << 20

    def __init__(self, qm: QuantizedGPT, record=False):
        super().__init__(qm, record)
        cfg, lay = qm.config, self.layout
        P = len(qm.pops)
        i64 = lambda x: np.ascontiguousarray(x, dtype=np.int64)  # noqa: E731
        self.feed = i64([p.feed for p in qm.pops])
        self.tele = i64([p.tele for p in qm.pops])
        self.arg = i64([p.arg for p in qm.pops])
        lbase = np.zeros(P, np.int64)
        for i, p in enumerate(qm.pops):
            if p.tele:
                lbase[i] = qm.index[p.name.split(".")[0] + ".ln1"]
        self.lbase = lbase
        self.off = i64(lay.offsets)
        self.in_ptr = i64(np.concatenate([[0], np.cumsum([len(p.inputs) for p in qm.pops])]))
        self.in_idx = i64([i for p in qm.pops for i in p.inputs])
        self.qmin = i64([p.qmin for p in qm.pops])
        self.qmax = i64([p.qmax for p in qm.pops])
        self.unit = i64([1 << p.shift for p in qm.pops])
        R = int(lay.offsets[-1])
        self.gain = np.ones(R, np.int64)
        self.offset = np.zeros(R, np.int64)
        for i, p in enumerate(qm.pops):
            if p.gain is not None:
                self.gain[lay.seg(i)] = p.gain
                self.offset[lay.seg(i)] = p.offset
        order = sorted(range(len(qm.projections)), key=lambda k: qm.projections[k].pre)
        self.out_idx = i64(order)
        self.out_ptr = i64(np.searchsorted([qm.projections[k].pre for k in order], np.arange(P + 1)))
        self.pj_post = i64([pr.post for pr in qm.projections])
        self.pj_npost = i64([pr.weights.shape[1] for pr in qm.projections])
        sizes = [pr.weights.size for pr in qm.projections]
        self.pj_woff = i64(np.concatenate([[0], np.cumsum(sizes)[:-1]]))
        self.W = np.concatenate([pr.weights.reshape(-1) for pr in qm.projections]).astype(np.int8)
        self.acc = np.zeros(R, np.int32)
        self.S = np.zeros((cfg.n_layer, cfg.n_head, cfg.n_positions), np.int64)
        self.kcache = np.zeros((cfg.n_layer, cfg.n_embd, cfg.n_positions), np.int32)
        self.started = np.zeros(P, np.uint8)
        self.done = np.zeros(P, np.uint8)
        self.alist = np.zeros(lay.n_spiking, np.int32)
        self.alen = np.zeros(P, np.int64)
        self.stepval = np.zeros(lay.n_spiking, np.int8)
        self.sp = np.zeros(lay.n_spiking, np.int64)
        self.pstart = np.zeros(P, np.int64)
        self.pend = np.zeros(P, np.int64)
        self.scratch = np.zeros(max(cfg.n_embd, cfg.inner, cfg.n_positions), np.int64)
        self.st = np.zeros(1, np.int64)
        n_ev = max(self.EVENT_CHUNK, 2 * lay.n_spiking) if record else 1
        self.ev = (np.zeros(n_ev, np.int64), np.zeros(n_ev, np.int64), np.zeros(n_ev, np.int64),
                   np.zeros(n_ev, np.int8))
        self.ev_n = np.zeros(1, np.int64)

    def _flush(self):
        k = int(self.ev_n[0])
        if self.events is not None and k:
            self.events.add(*(a[:k].copy() for a in self.ev))
        self.ev_n[0] = 0

    def _run(self, n: int, token: int, max_steps: int) -> int:
        from spikelm.lm.kernels import run_token

        qm, C = self.qm, self.counters
        cfg = qm.config
        emb = self.emb_codes(token, n)
        fresh = True
        while True:
            status = run_token(
                fresh, n, emb, max_steps, self.st,
                self.feed, self.tele, self.arg, self.lbase, self.off, self.in_ptr, self.in_idx,
                self.qmin, self.qmax, self.unit, self.gain, self.offset,
                self.out_ptr, self.out_idx, self.pj_post, self.pj_woff, self.pj_npost, self.W,
                self.counts, self.acc, self.S, self.kcache,
                qm.ln_gain, qm.ln_bias, qm.ln_eps, qm.res_gain, qm.res_shift, qm.gelu_lut,
                qm.sm_hi, qm.sm_lo, qm.sm_shift,
                cfg.n_head, cfg.head_dim, cfg.n_positions,
                C.spikes_pos, C.spikes_neg, C.op_evals, C.synops_proj, C.synops_tele,
                self.started, self.done, self.alist, self.alen, self.stepval, self.sp, self.pstart, self.pend,
                self.scratch, self.events is not None, self.clock, *self.ev, self.ev_n,
            )
            fresh = False
            if status == 2:
                self._flush()
                continue
            self._flush()
            if status == 1:
                raise QuiescenceError(f"token at position {n}: no quiescence within max_steps={max_steps}")
            break
        self.head_acc[n] = self.acc[self.layout.n_spiking :]
        return int(self.st[0])


BACKENDS = {"numpy": NumpyRunner, "numba": NumbaRunner}
