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
checkpoint, lacks a dataset, or holds a value no run writes, a :class:`~spikelm.errors.FileFormatError`
naming it. Writing goes to a temporary file beside ``path``, moved into place when complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from spikelm.errors import CheckpointMismatchError, FileFormatError
from spikelm.io.checkpoint import json_object
from spikelm.io.outputs import atomic_output
from spikelm.io.stored import MAX_CLOCK, stored_array, stored_int
from spikelm.lm.fingerprint import difference, fingerprint, summary
from spikelm.lm.report import Counts

FORMAT = "spikelm-lm-checkpoint"
COUNTER_NAMES = ("spikes_pos", "spikes_neg", "op_evals", "synops", "synops_products", "shift_adds")


def save(learning, path) -> str:
    """Write a :class:`~spikelm.lm.learn.session.Learning` run's state to ``path`` (HDF5)."""
    import spikelm

    import h5py

    path = str(path)
    runner = learning.runner
    g = learning.snn.graph
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
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


WHAT = "an LM checkpoint (written by spikelm lm generate --checkpoint, or Learning.save_checkpoint)"


def _read(c, name, path):
    import h5py

    if not isinstance(c.get(name), h5py.Dataset):
        raise FileFormatError(f"{path}: lm_checkpoint/{name}: {'missing' if name not in c else 'not a dataset'}")
    return c[name][...]


def _json(text, where, kind):
    """The JSON value of a stored text, of the type ``kind`` (list, or dict or None)."""
    if isinstance(text, (bytes, np.bytes_)):
        text = bytes(text).decode("utf-8", "replace")
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except (ValueError, RecursionError):
        raise FileFormatError(f"{where}: not JSON text") from None
    if not isinstance(value, kind):
        raise FileFormatError(f"{where}: a JSON {type(value).__name__}; expected {' or '.join(t.__name__ for t in kind)}")
    return value


def _counts_of(d, where) -> Counts:
    """One token's counts as :meth:`Counts` stores them: dicts of layer -> count >= 0, and steps."""
    fields = [f for f in Counts.__dataclass_fields__]
    if not isinstance(d, dict) or sorted(d) != sorted(fields):
        raise FileFormatError(f"{where}: expected an object with the fields {', '.join(fields)}")
    for name in fields:
        v = d[name]
        if name == "steps":
            stored_int(v, f"{where}.steps")
        elif not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
            raise FileFormatError(f"{where}.{name}: expected an object of layer -> count")
        else:
            for k, x in v.items():
                stored_int(x, f"{where}.{name}.{k}", 0, 2**62)
    return Counts(**d)


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
    be the checkpoint's rules); :meth:`spikelm.lm.learn.session.Learning.resume` restores it.

    Every stored value is checked before anything uses it (one line naming the file and the
    field): counts inside their populations' code ranges, token ids inside the vocabulary,
    finite logits, a clock at least the steps its tokens took (and at most
    :data:`spikelm.io.stored.MAX_CLOCK`); the learned state by
    :meth:`~spikelm.lm.learn.state.LearnState.load_state_dict`.
    """
    import h5py

    from spikelm.io.hdf5 import open_hdf5, reading
    from spikelm.lm.learn.config import Plasticity, ReadoutError, as_plasticity
    from spikelm.lm.reference import logits as read_logits

    path = str(path)
    g = snn.graph
    with open_hdf5(path, WHAT) as f, reading(path, WHAT):
        c = f.get("lm_checkpoint")
        if not isinstance(c, h5py.Group) or c.attrs.get("format") != FORMAT:
            raise FileFormatError(f"{path}: not a spikelm LM checkpoint (no /lm_checkpoint group with format={FORMAT!r})")
        if c.attrs.get("fingerprint") != fingerprint(g):
            theirs = json_object(c.attrs.get("summary")) or {}
            raise CheckpointMismatchError(f"{path}: checkpoint of another model: "
                                          f"{difference(theirs, summary(g))}")
        at = f"{path}: lm_checkpoint"
        stored = _json(c.attrs.get("plasticity"), f"{at}@plasticity", (dict, type(None)))
        per_token = _json(_read(c, "per_token", path)[()], f"{at}/per_token", (list,))
        stats = _json(_read(c, "stats", path)[()], f"{at}/stats", (list,))
        n = stored_int(c.attrs.get("n"), f"{at}@n", 0, g.n_positions)
        clock = stored_int(c.attrs.get("clock"), f"{at}@clock", 0, MAX_CLOCK)
        mine = as_plasticity(plasticity)
        pl = None if stored is None else Plasticity.from_dict(stored, f"{path}: plasticity")
        if mine is not None and (pl is None or mine.to_dict() != pl.to_dict()):
            raise CheckpointMismatchError(f"{path}: the checkpoint was learned with other plasticity rules than "
                                          f"{mine.source}; resume without --plasticity to use its own")
        if not isinstance(c.get("learned"), h5py.Group):
            raise FileFormatError(f"{at}/learned: missing")
        learned = {k: _read(c["learned"], k, f"{path}: lm_checkpoint/learned") for k in c["learned"]}
        ids = [int(x) for x in stored_array(_read(c, "ids", path), f"{at}/ids", "int", None, 0, g.vocab_size - 1)
               .reshape(-1)]
        has_runner = "counts" in c
        if n != (g.n_prefix + len(ids) if has_runner else 0) or len(per_token) != len(ids) or len(stats) != len(ids):
            raise FileFormatError(f"{at}: position {n} does not match its {len(ids)} tokens")
        counts = [_counts_of(d, f"{at}/per_token[{i}]") for i, d in enumerate(per_token)]
        if sum(x.steps for x in counts) > clock:
            raise FileFormatError(f"{at}@clock: {clock:,} is less than the {sum(x.steps for x in counts):,} steps "
                                  "its tokens took")
        for i, st in enumerate(stats):
            if not isinstance(st, dict) or not all(isinstance(v, (int, float)) for v in st.values()):
                raise FileFormatError(f"{at}/stats[{i}]: expected an object of numbers")
        saved = Saved(pl, learned, ids, n, clock, counts, stats)
        if has_runner:
            saved.counts, saved.head_acc = _sequence(c, g, n, path)
            saved.counters = {name: stored_array(_read(c, f"counters/{name}", path), f"{at}/counters/{name}",
                                                 "int", None, 0) for name in COUNTER_NAMES}
            saved.logits = stored_array(_read(c, "logits", path), f"{at}/logits", "float", (len(ids), g.vocab_size))
            given = read_logits(g, saved.head_acc[g.n_prefix:])
            # a readout rule's learned bias moves each logit by at most eta_bias per token learned
            eta_b = sum(r.eta_bias for r in (pl.projections.values() if pl else ()) if isinstance(r, ReadoutError))
            if eta_b == 0:
                ok = np.array_equal(saved.logits, given)
            else:
                moved = eta_b * np.arange(1, len(ids) + 1, dtype=np.float64)[:, None]
                ok = bool(np.all(np.abs(saved.logits - given) <= moved * (1 + 1e-9) + 1e-9 * np.abs(given)))
            if not ok:
                raise FileFormatError(f"{at}/logits: not the logits its readout accumulators head_acc give")
            learned_clock = np.asarray(learned.get("clock", ())).reshape(-1)
            if learned_clock.size != 1 or learned_clock[0] != clock:
                raise FileFormatError(f"{at}/learned/clock: {learned_clock.tolist()} differs from the clock {clock:,}")
    return saved


def _sequence(c, g, n, path):
    """The settled positions' spike counts (each inside its population's code range; the prefix's
    the model's constants) and readout accumulators."""
    from spikelm.lm.layout import Layout

    at = f"{path}: lm_checkpoint"
    lay = Layout.of(g)
    counts = stored_array(_read(c, "counts", path), f"{at}/counts", "int", (n, lay.n_spiking))
    for p, pop in enumerate(g.pops):
        if pop.spiking and n:
            block = counts[:, lay.seg(p)]
            if block.size and (block.min() < pop.qmin or block.max() > pop.qmax):
                raise FileFormatError(f"{at}/counts: a count of {pop.name} outside its code range "
                                      f"[{pop.qmin}, {pop.qmax}]")
    if g.prefix is not None:
        for name, codes in g.prefix.codes.items():
            if not np.array_equal(counts[: g.n_prefix, lay.seg(g.index[name])], codes):
                raise FileFormatError(f"{at}/counts: the prefix positions of {name} are not the model's constants")
    head = stored_array(_read(c, "head_acc", path), f"{at}/head_acc", "int", (n, g.vocab_size))
    return counts, head
