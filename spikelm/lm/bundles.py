"""The compiled token loop's arguments, as named bundles.

Each bundle is a NamedTuple of typed arrays (Numba types every field, and a kernel reads
``struct.kslot``, never an element by its position): inserting a field moves no index, and two
arrays of one type cannot swap unnoticed. :class:`spikelm.lm.numba_runner.NumbaRunner` packs them once
per graph (``rec`` once per call, for its clock); :mod:`spikelm.lm.loop`, the operators'
Numba twins and :mod:`spikelm.lm.learn.kernels` read them by name.

Sizes: P populations, R neurons per position (spiking ones first, the readout last), N the
spiking ones, E product edges, K projections, T threads.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class OpGraph(NamedTuple):
    """What an operator's Numba twin reads of the graph (the fixed signature of :mod:`spikelm.lm.ops`)."""

    off: np.ndarray  # [P + 1] each population's first neuron in a position's flat arrays
    in_ptr: np.ndarray  # [P + 1] into in_idx: the inputs of each population
    in_idx: np.ndarray
    qmin: np.ndarray  # [P] code range
    qmax: np.ndarray


class LoopGraph(NamedTuple):
    """The graph (``struct``), packed once."""

    off: np.ndarray  # [P + 1]
    in_ptr: np.ndarray  # [P + 1] into in_idx: the inputs of each population
    in_idx: np.ndarray
    qmin: np.ndarray  # [P]
    qmax: np.ndarray  # [P]
    shift: np.ndarray  # [P] k of V = (acc M + B) / 2^k
    gain: np.ndarray  # [R] M (1 for operator-fed neurons)
    offset: np.ndarray  # [R] B
    op_kind: np.ndarray  # [P] operator kind number (-1: accumulating population)
    op_arg: np.ndarray  # [P] its row in the kind's packed parameters
    spiking: np.ndarray  # [P] 0 for the readout
    coding: np.ndarray  # [P] spike coding id
    stim: np.int64  # the stimulus population
    out_ptr: np.ndarray  # [P + 1] into out_idx: the projections out of each population
    out_idx: np.ndarray
    pj_post: np.ndarray  # [K] target population
    pj_woff: np.ndarray  # [K] offset of its rows in W
    pj_npost: np.ndarray  # [K] row length
    W: np.ndarray  # every projection's integer rows, flat
    pj_wmax: np.ndarray  # [K] largest |weight|: rows through int32 partial sums (0: straight into acc)
    pj_poff: np.ndarray  # [K] a held projection's first column in TokenState.priv (a team of threads)
    dslot: np.ndarray  # [P] a row source's first column in TokenState.dbuf (-1: its spikes are not held)
    fac_edge: np.ndarray  # [P] the product edge a population is a factor of (-1: none)
    fac_side: np.ndarray  # [P] 0: factor a, 1: factor b
    ed_kind: np.ndarray  # [E] edges.SCORES / MIX / MUL
    ed_a: np.ndarray  # [E] factor populations and target
    ed_b: np.ndarray
    ed_out: np.ndarray
    ed_heads: np.ndarray  # [E]
    ed_group: np.ndarray  # [E] query heads per key/value head
    ed_dh: np.ndarray  # [E] head dimension
    ed_slot: np.ndarray  # [E] slot of a scores edge's accumulators in S (-1: other kinds)
    ed_window: np.ndarray  # [E] sliding window: keys a query sees (0: all)
    kslot: np.ndarray  # [P] K-cache slot of a population that is a scores edge's keys (-1: none)
    pos_ctx: np.ndarray  # [P] context of an operator-fed population laid out [heads, context] (0: other)
    op_graph: OpGraph  # the operators' view of the same arrays


class TokenState(NamedTuple):
    """What a token's run reads and writes (``state``); resumable between calls."""

    counts: np.ndarray  # [context, N] net spike counts of every position
    acc: np.ndarray  # [R] accumulators of this position
    S: np.ndarray  # [slots, heads, context] Q·K^T accumulators
    kcache: np.ndarray  # [slots, key size, context] K codes, channel-major
    started: np.ndarray  # [T P] uint8 schedule flags, each thread's own (thread t, population p at t P + p)
    done: np.ndarray  # [T P]
    alist: np.ndarray  # [N] each population's neurons with a remainder (in each thread's share of its slice of off)
    alen: np.ndarray  # [T P] how many (thread t, population p at t P + p)
    aleft: np.ndarray  # [2 T P] alen as each update left it, by step parity: what the other threads read
    rest: np.ndarray  # [N] int32 what each listed neuron has left to fire (set when its population starts)
    stepval: np.ndarray  # [N] this step's spike values (0: none)
    sp: np.ndarray  # [N] this step's spiking neurons, thread by thread, population by population
    pstart: np.ndarray  # [2 T P] each population's range in sp, per thread, by step parity
    pend: np.ndarray
    scratch: np.ndarray  # [T, width] int64 work rows for operators, one per thread
    dbuf: np.ndarray  # [slots, row-source neurons] int32 spike values held for their rows, a step a slot
    dk: np.ndarray  # [T P] slots filled (negative: applied this step, cleared after the barrier)
    part: np.ndarray  # [T, widest row] int32 partial sums of the row additions, one row per thread
    priv: np.ndarray  # [T, held projections' columns] (acc type) a team's held rows, thread by thread, until merged
    st: np.ndarray  # [1] the token's steps so far


class CounterArrays(NamedTuple):
    """The run's counters (``counters``; :class:`spikelm.lm.runner.Counters` holds the same arrays)."""

    spikes_pos: np.ndarray  # [P]
    spikes_neg: np.ndarray  # [P]
    op_evals: np.ndarray  # [P]
    synops: np.ndarray  # [K] row additions per projection
    synops_products: np.ndarray  # [P] telescoping additions per source population
    shift_adds: np.ndarray  # [P]
    timing: np.ndarray  # [2] ns and calls of the row additions (the TIMED variant)


class EventBuffer(NamedTuple):
    """The spike event buffer (``rec``): spike i was fired at step ``step[i]`` by node
    ``node[i]`` of population ``pop[i]`` with value ``val[i]``; ``n[0]`` are filled."""

    record: bool
    clock: np.int64  # the global step at the token's step 0
    step: np.ndarray
    pop: np.ndarray
    node: np.ndarray
    val: np.ndarray
    n: np.ndarray


class ThreadSplit(NamedTuple):
    """Who does what in a team of threads (``split``; one thread: the whole of everything).

    Thread t owns neurons ``lo[t P + p] .. hi[t P + p] - 1`` of population p (counted from the
    population's first): it updates them, and adds every spike into them; its spikes go to
    ``sp[sp_base[t]:]``. Arrays indexed ``t P + p`` (``alen``, ``pstart``, ``pend``, ``started``,
    ``done``) are laid out the same way, so one thread's layout is the single-threaded one.
    """

    n_threads: np.int64
    lo: np.ndarray  # [T P]
    hi: np.ndarray  # [T P]
    sp_base: np.ndarray  # [T] each thread's first slot in sp
    bar: np.ndarray  # the team's barrier (spikelm.lm.sync)
    local: np.ndarray  # [P] a product factor's spikes stay on their thread: 0 no, 1 yes, 2 once the edge's b is done


class LearnNeurons(NamedTuple):
    """Spike units and EI-IF neurons, per neuron of a position (``neur``; :mod:`spikelm.lm.learn.state`)."""

    lkind: np.ndarray  # [P] PLAIN, UNITS or EIIF (spikelm.lm.learn.kernels)
    unit: np.ndarray  # [N] spike unit of a signed_if neuron
    theta_base: np.ndarray  # [N] EI-IF parameters
    alpha: np.ndarray
    r: np.ndarray
    vmem: np.ndarray  # [N] EI-IF membrane
    xin: np.ndarray  # [N] its input (the settled potential)
    tstart: np.ndarray  # [P] the step a population's window opened
    nspk: np.ndarray  # [N] spikes this token
    active: np.ndarray  # [P] fired this step
    psp: np.ndarray  # [N] last step's spikes, which arrive now
    ppst: np.ndarray  # [P] each population's range in psp
    ppen: np.ndarray


class LearnRules(NamedTuple):
    """Plasticity rules and their state (``plast``; column layouts: :mod:`spikelm.plasticity.columns`)."""

    pr_i: np.ndarray  # [rules, columns] projection rules, int columns
    pr_f: np.ndarray  # float columns
    wm: np.ndarray  # float master weights of every plastic projection, flat
    xpre: np.ndarray  # pre traces and the step of their last spike (-1: none)
    tpre: np.ndarray
    xpost: np.ndarray  # post traces, likewise
    tpost: np.ndarray
    crow: np.ndarray  # target row sums C_i (eq. 16)
    mark: np.ndarray  # rows touched this step
    etab: np.ndarray  # trace decay tables
    hr_i: np.ndarray  # homeostasis rules, int and float columns
    hr_f: np.ndarray
    sbar: np.ndarray  # [N] average spikes per step
    vbar: np.ndarray  # [N] average membrane
    lcnt: np.ndarray  # [2] learn ops, integer weights that changed


class LearnBundle(NamedTuple):
    """The learning bundle (``lrn``): used only by the loop compiled with ``LEARN``."""

    neur: LearnNeurons
    plast: LearnRules
