"""What identifies a converted model: a summary a person reads and a hash of everything the
executors run. Checkpoints (:mod:`spikelm.lm.learn.checkpoint`) and learned model folders
(:mod:`spikelm.lm.learn.export`) are refused by another model, naming what differs."""

from __future__ import annotations

import hashlib
import json

import numpy as np


def summary(graph, coding: bool = True) -> dict:
    """What a person reads to tell two converted models apart (the fingerprint hashes more)."""
    s = {"positions": graph.n_positions, "vocab": graph.vocab_size, "bits": str(graph.meta.get("precision")),
         "populations": [[p.name, p.size] for p in graph.pops]}
    if coding:
        s["codings"] = sorted({p.coding for p in graph.pops})
        s["neurons"] = [[p.name, p.neuron] for p in graph.pops if not p.plain]
    return s


def fingerprint(graph, coding: bool = True) -> str:
    """sha256 of the integer model the executors run (``coding=False``: any coding and neurons)."""
    h = hashlib.sha256(json.dumps(summary(graph, coding), sort_keys=True).encode())

    def arr(x):
        if x is not None:
            a = np.ascontiguousarray(np.asarray(x))
            h.update(str(a.dtype).encode() + str(a.shape).encode())
            h.update(a.tobytes())

    for p in graph.pops:
        h.update(repr((p.name, p.op, p.size, p.qmin, p.qmax, p.shift, p.inputs, p.spiking)).encode())
        for x in (p.gain, p.offset, np.asarray(p.scale, dtype=np.float64)):
            arr(x)
        if coding:
            h.update(p.coding.encode())
            arr(p.unit)
            for x in p.eiif or ():
                arr(x)
    for pr in graph.projections:
        h.update(repr((pr.pre, pr.post)).encode())
        arr(pr.weights)
    for ed in graph.edges:
        window = (ed.window,) if ed.window else ()  # older graphs' fingerprints unchanged
        h.update(repr((ed.kind, ed.a, ed.b, ed.out, ed.heads, ed.kv_heads, ed.head_dim) + window).encode())
    if graph.prefix is not None:
        arr(graph.prefix.ids)
        for name in sorted(graph.prefix.codes):
            arr(graph.prefix.codes[name])
    return h.hexdigest()


def difference(theirs: dict, mine: dict) -> str:
    """The first field in which two :func:`summary` dicts differ, as words."""
    for key in ("bits", "codings", "positions", "vocab", "neurons", "populations"):
        if theirs.get(key) != mine.get(key):
            return f"{key} {theirs.get(key)} there, {mine.get(key)} here"
    return "the integer weights, scales or operators differ"
