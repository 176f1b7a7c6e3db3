"""The spike file of an ``lm generate --out`` run, with or without learning: one layout for both.

A converted LM's steps are rounds of spike propagation, not milliseconds (``time_unit="step"``);
every population's value dataset is as wide as its coding needs from the start (widening it
later would close and reopen the file under a live reader).
"""

from __future__ import annotations

import contextlib

import numpy as np


@contextlib.contextmanager
def spike_file(out, snn, graph, folder, args, **metadata):
    """Yield ``(writer, sink)`` for a run of ``snn`` (populations of ``graph``) written to ``out``.

    ``sink(steps, pops, nodes, values)`` is the ``record=`` callback of the executors; ``args``
    gives ``backend``, ``prompt`` and ``compression``; ``metadata`` adds to the file's own
    (model, bits, precision, coding, prompt, version). The caller finishes the writer
    (``writer.finish``) or leaves it ``.partial``.
    """
    from spikelm import __version__
    from spikelm.io.sonata import SpikeWriter

    names = [p.name for p in graph.pops]
    meta = {"backend": args.backend, "model": str(folder), "bits": str(snn.bits), "precision": snn.bits.to_dict(),
            "coding": snn.coding, "prompt": args.prompt, "converted_lm": True, "spikelm_version": __version__,
            **metadata}
    with SpikeWriter(out, snn.population_sizes(), dt=1.0, metadata=meta, signed=snn.spike_value_tops(),
                     compress=args.compression, time_unit="step") as writer:
        def sink(steps, pops, nodes, values):
            for p in np.unique(pops):
                m = pops == p
                writer.append(names[p], steps[m], nodes[m], values[m])

        yield writer, sink
