"""The bundles the compiled time loop takes: named tuples of typed arrays, packed from a Plan.

The loop (:mod:`spikelm.simulator.loop`) reads every array by name (``syn.indptr``,
``queue.buf``), never by position in a long argument list. Each bundle holds arrays only, so
Numba types it once per dtype combination and caches the compiled loop on disk.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Pops(NamedTuple):
    """Populations: neuron ranges, kernel kinds, constants."""

    lo: np.ndarray       #: int64 [P]: first neuron (global index)
    hi: np.ndarray       #: int64 [P]: one past the last neuron
    kind: np.ndarray     #: int64 [P]: the population's model, as a kind number of the compiled loop
    consts: np.ndarray   #: float64 [P, n]: each model's constants, by the model's index C
    driven: np.ndarray   #: bool [P]: a stimulus feeds it (it may fire at any step)
    key: np.ndarray      #: uint64 [P]: random stream of a source population


class Synapses(NamedTuple):
    """Projections: concatenated CSR arrays and per-projection offsets."""

    indptr: np.ndarray   #: int64: row pointers of every projection, one after the other
    post: np.ndarray     #: uint16 or int32 [synapses]: post index within the post population
    w: np.ndarray        #: float32 or float64 [synapses]
    delay: np.ndarray    #: uint8 or int16 [synapses]: steps, >= 1
    pre_lo: np.ndarray   #: int64 [K]: first neuron of the pre population
    post_lo: np.ndarray  #: int64 [K]: first neuron of the post population
    n_post: np.ndarray   #: int64 [K]: size of the post population
    target: np.ndarray   #: int64 [K]: 0 exc, 1 inh
    ptr_off: np.ndarray  #: int64 [K + 1]: each projection's first row pointer in ``indptr``
    syn_off: np.ndarray  #: int64 [K + 1]: each projection's first synapse
    row_grp: np.ndarray  #: int64, laid out as indptr: row r's delay groups are row_grp[r]:row_grp[r + 1]
    grp_ptr: np.ndarray  #: int64 [groups + 1]: a group's synapses (one row, one delay; global positions)
    grp_delay: np.ndarray  #: the delay of each group (the dtype of ``delay``)
    pre_proj: np.ndarray      #: int64: projections ordered by pre population
    pre_proj_ptr: np.ndarray  #: int64 [P + 1]: each population's outgoing projections in ``pre_proj``
    synops: np.ndarray   #: int64 [K]: SynOps so far


class Queue(NamedTuple):
    """The event queue (:class:`spikelm.simulator.queue.EventQueue`)."""

    buf: np.ndarray      #: float64 [slots, 2, N]
    count: np.ndarray    #: int64 [slots]: events pending per slot
    totals: np.ndarray   #: int64 [2]: pushed, delivered


class Stimuli(NamedTuple):
    """External input: current steps, noise, Poisson input, listed spike times."""

    i_cur: np.ndarray     #: float64 [N]: constant current plus current steps, now
    cs_step: np.ndarray
    cs_lohi: np.ndarray
    cs_delta: np.ndarray
    nz_lohi: np.ndarray
    nz_ms: np.ndarray
    nz_key: np.ndarray
    pin_lohi: np.ndarray
    pin_par: np.ndarray   #: float64 [k, 3]: lambda, exp(-lambda), weight
    pin_target: np.ndarray
    pin_key: np.ndarray
    src_step: np.ndarray  #: int64: steps of listed spikes (spike_times), sorted
    src_idx: np.ndarray   #: int64: their neurons


class Record(NamedTuple):
    """The chunk's record buffers (:class:`spikelm.simulator.recording.ChunkBuffers`)."""

    mask: np.ndarray
    steps: np.ndarray
    idx: np.ndarray
    val: np.ndarray
    counts: np.ndarray
    sample_rows: np.ndarray
    sample_cols: np.ndarray
    every: int
    samples: np.ndarray
    sample_steps: np.ndarray
    n: np.ndarray         #: int64 [3]: spikes recorded, steps done, samples taken


class Work(NamedTuple):
    """Scratch of the step, split into thread blocks of post-synaptic neurons.

    Block b owns neurons [bounds[b], bounds[b + 1]): their state, their input slots and the
    synapses that end on them. ``fired`` holds each neuron's spike value of the step
    (cleared when compacted); block b compacts its spikes into ``seg_idx/seg_val`` from
    position bounds[b] and counts them in ``seg_n[b]``; the step's spikes, in neuron order,
    are then ``spk_idx/spk_val[:n]``. ``qcount[b]``: events block b pushed per slot.
    ``split[i, q]``: synapses of delay group q that end before the block edge bounds[i + 1]
    (posts are sorted within a group), so block b's share of a group is one contiguous run.
    """

    bounds: np.ndarray   #: int64 [B + 1], multiples of 8 (whole words of ``fired``) but the last
    fired: np.ndarray    #: int8 [N rounded up to 8]
    seg_idx: np.ndarray  #: int64 [N]
    seg_val: np.ndarray  #: int8 [N]
    seg_n: np.ndarray    #: int64 [B]
    spk_idx: np.ndarray  #: int64 [N]
    spk_val: np.ndarray  #: int8 [N]
    i_ext: np.ndarray    #: float64 [N]: i_cur plus this step's noise
    qcount: np.ndarray   #: int64 [B, slots]
    split: np.ndarray    #: uint16 or int32 [B - 1, groups]
