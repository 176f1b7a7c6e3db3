"""Checkpoints of learning runs on converted LMs: stop, resume, and go on identically.

One HDF5 file, group ``/lm_checkpoint``: the model's fingerprint (a hash of everything the
executors read: populations, codings, neurons, integer weights, scales, edges, prefix) and a
summary of it, the plasticity file's content, the current sequence (its tokens, spike counts
of every settled position, readout accumulators, counters, logits and per-token counts),
and the learned state (:meth:`~spikelm.lm.learn.state.LearnState.state_dict`: neuron
parameters, master weights and the plastic integer rows, traces, the last step's spikes,
averages, the clock). Nothing is stochastic, so no generator state is needed.

Reading validates everything: a checkpoint of another model (or coding, or precision) is a
:class:`~spikelm.errors.CheckpointMismatchError` naming what differs; a file that is not a
checkpoint, or lacks a dataset, a :class:`~spikelm.errors.FileFormatError` naming it. Writing
goes to ``<path>.partial``, renamed when complete.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from spikelm.errors import CheckpointMismatchError, ConfigError, FileFormatError
from spikelm.io.checkpoint import json_object, written_atomically
from spikelm.lm.fingerprint import difference, fingerprint, summary
from spikelm.lm.report import Counts

FORMAT = "spikelm-lm-checkpoint"
COUNTER_NAMES = ("spikes_pos", "spikes_neg", "op_evals", "synops", "synops_products", "shift_adds")


def save(learning, path) -> str:
    """Write a :class:`~spikelm.lm.learn.session.Learning` run's state to ``path`` (HDF5)."""
    import spikelm

    path = str(path)
    runner = learning.runner
    g = learning.snn.graph
    with written_atomically(path) as f:
        c = f.create_group("lm_checkpoint")
        c.attrs["format"] = FORMAT
        c.attrs["version"] = spikelm.__version__
        c.attrs["fingerprint"] = fingerprint(g)
        c.attrs["summary"] = json.dumps(summary(g))
        c.attrs["plasticity"] = json.dumps(learning.plasticity.to_dict() if learning.plasticity else None)
        n = 0 if runner is None else runner.n
        c.attrs["n"] = n
        c.attrs["clock"] = 0 if runner is None else runner.clock
        # datasets, not attributes: HDF5 attributes stop at 64 KiB and these grow with the tokens
        c.create_dataset("per_token", data=json.dumps([vars(x) for x in learning.per_token]))
        c.create_dataset("stats", data=json.dumps(learning.stats))
        c.create_dataset("ids", data=np.array(learning.ids, np.int64))
        if runner is not None:
            c.create_dataset("counts", data=runner.counts[:n])
            c.create_dataset("head_acc", data=runner.head_acc[:n])
            for name in COUNTER_NAMES:
                c.create_dataset(f"counters/{name}", data=getattr(runner.counters, name))
            c.create_dataset("logits", data=np.concatenate(learning.logits) if learning.logits
                             else np.zeros((0, g.vocab_size)))
        for k, v in learning.state.state_dict().items():
            c.create_dataset(f"learned/{k}", data=v)
    return path


def _read(c, name, path):
    if name not in c:
        raise FileFormatError(f"{path}: lm_checkpoint/{name}: missing")
    return c[name][...]


@dataclass
class Saved:
    """A checkpoint as read and checked against a model: the plasticity it was learned with
    (None: neurons only), the learned state, and the sequence (``n`` positions settled; no
    runner state when ``counts`` is None)."""

    plasticity: object
    learned: dict
    ids: list
    n: int
    clock: int
    per_token: list
    stats: list
    counts: np.ndarray | None = None
    head_acc: np.ndarray | None = None
    counters: dict | None = None
    logits: np.ndarray | None = None


def read(snn, path, plasticity=None) -> Saved:
    """The checkpoint at ``path``, checked against ``snn`` (and ``plasticity``, if given, must
    be the checkpoint's rules); :meth:`spikelm.lm.learn.session.Learning.resume` restores it."""
    import h5py

    from spikelm.lm.learn.config import Plasticity, as_plasticity

    path = str(path)
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: no such checkpoint file")
    if not h5py.is_hdf5(path):
        raise FileFormatError(f"{path}: not an HDF5 file; an LM checkpoint is written by Learning.save_checkpoint")
    with h5py.File(path, "r") as f:
        c = f.get("lm_checkpoint")
        if c is None or c.attrs.get("format") != FORMAT:
            raise FileFormatError(f"{path}: not a spikelm LM checkpoint (no /lm_checkpoint group with format={FORMAT!r})")
        if c.attrs.get("fingerprint") != fingerprint(snn.graph):
            theirs = json_object(c.attrs.get("summary")) or {}
            raise CheckpointMismatchError(f"{path}: checkpoint of another model: "
                                          f"{difference(theirs, summary(snn.graph))}")
        try:
            stored = json.loads(c.attrs["plasticity"])
            per_token = json.loads(_read(c, "per_token", path)[()])
            stats = json.loads(_read(c, "stats", path)[()])
            n, clock = int(c.attrs["n"]), int(c.attrs["clock"])
        except (KeyError, ValueError, TypeError, UnicodeDecodeError) as e:
            raise FileFormatError(f"{path}: lm_checkpoint attributes are damaged ({e})") from None
        mine = as_plasticity(plasticity)
        pl = None if stored is None else Plasticity.from_dict(stored, f"{path}: plasticity")
        if mine is not None and (pl is None or mine.to_dict() != pl.to_dict()):
            raise CheckpointMismatchError(f"{path}: the checkpoint was learned with other plasticity rules than "
                                          f"{mine.source}; resume without --plasticity to use its own")
        if "learned" not in c:
            raise FileFormatError(f"{path}: lm_checkpoint/learned: missing")
        learned = {k: c["learned"][k][...] for k in c["learned"]}
        ids = [int(x) for x in _read(c, "ids", path)]
        has_runner = "counts" in c
        if n != (snn.graph.n_prefix + len(ids) if has_runner else 0) or n > snn.graph.n_positions \
                or len(per_token) != len(ids):
            raise FileFormatError(f"{path}: lm_checkpoint: position {n} does not match its {len(ids)} tokens")
        saved = Saved(pl, learned, ids, n, clock, [Counts(**d) for d in per_token], stats)
        if has_runner:
            saved.counts, saved.head_acc = _read(c, "counts", path), _read(c, "head_acc", path)
            saved.counters = {name: _read(c, f"counters/{name}", path) for name in COUNTER_NAMES}
            saved.logits = _read(c, "logits", path)
    return saved
