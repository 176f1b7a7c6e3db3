"""Spike-file layouts for the main job's output: size, and whether libsonata reads them.

    python -m benchmarks.sonata_layouts [--tokens 32] [--keep DIR]

Runs the main job (``spikelm lm generate --prompt "Return the " --tokens 32``: the demo model,
6.9 M spikes), then writes its spikes in each layout below and prints the file size and
what libsonata's ``SpikeReader`` (the SONATA reference reader, from PyPI) makes of it: it
must read back every timestamp and node id exactly. libsonata's wheel carries an HDF5 with
the shuffle, fletcher32, nbit and scaleoffset filters but not deflate or szip.

The first three rows are what ``SpikeWriter(compress=...)`` writes; the others are raw h5py
variants measured for the decision (docs/files.md#compression).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

SORTING = h5py.enum_dtype({"none": 0, "by_id": 1, "by_time": 2}, basetype=np.uint8)


def main_job_spikes(tokens):
    """{population: (steps, node ids, values)} of the main job, in time order."""
    from spikelm.lm import load_demo

    snn, tok = load_demo(bits=8)
    names = [p.name for p in snn.graph.pops]
    parts = {}

    def sink(steps, pops, nodes, values):
        for p in np.unique(pops):
            m = pops == p
            parts.setdefault(names[p], []).append((steps[m], nodes[m], values[m]))

    snn.generate(tok.encode("Return the "), tokens, record=sink)
    return snn.population_sizes(), {k: tuple(np.concatenate([c[i] for c in v]) for i in range(3))
                                    for k, v in parts.items()}


def write_spikewriter(path, sizes, spikes, compress):
    from spikelm.io.sonata import SpikeWriter

    with SpikeWriter(path, sizes, 1.0, signed=True, compress=compress, time_unit="step") as w:
        for name in sizes:
            if name in spikes:
                w.append(name, *spikes[name])
        w.finish({"steps": 0})


def write_raw(path, spikes, chunk, ts_dtype=np.float64, id_dtype=np.uint64, merge=False, **filters):
    """A bare SONATA spike file; ``merge`` puts every population into one (global node ids)."""
    if merge:
        offset, merged = 0, []
        for steps, ids, vals in spikes.values():
            merged.append((steps, ids + offset, vals))
            offset += int(ids.max()) + 1
        s, i, v = (np.concatenate([m[k] for m in merged]) for k in range(3))
        order = np.argsort(s, kind="stable")
        spikes = {"all": (s[order], i[order], v[order])}
    with h5py.File(path, "w") as f:
        f.attrs["magic"] = np.uint32(0x0A7A)
        f.attrs["version"] = np.array([0, 1], dtype=np.uint32)
        for name, (steps, ids, vals) in spikes.items():
            g = f.create_group(f"spikes/{name}")
            g.attrs.create("sorting", 2, dtype=SORTING)
            c = (min(chunk, max(steps.size, 1)),)
            t = g.create_dataset("timestamps", data=steps.astype(ts_dtype), chunks=c, maxshape=(None,), **filters)
            t.attrs["units"] = "step"
            g.create_dataset("node_ids", data=ids.astype(id_dtype), chunks=c, maxshape=(None,), **filters)
            g.create_dataset("values", data=vals, chunks=c, maxshape=(None,), **filters)
    return spikes


def libsonata_verdict(path, spikes):
    try:
        import libsonata
    except ImportError:
        return "libsonata not installed"
    try:
        reader = libsonata.SpikeReader(str(path))
        for name, (steps, ids, _) in spikes.items():
            got = reader[name].get_dict()
            if not (np.array_equal(np.asarray(got["node_ids"]), ids)
                    and np.array_equal(np.asarray(got["timestamps"]), steps.astype(np.float64))):
                return "reads WRONG values"
    except Exception as exc:
        return "fails: " + " ".join(str(exc).split())[:60]
    return "reads it, exact"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--keep", default=None, help="keep the files in this folder")
    args = ap.parse_args(argv)
    sizes, spikes = main_job_spikes(args.tokens)
    total = sum(s[0].size for s in spikes.values())
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="spikelm-layouts-"))
    folder.mkdir(parents=True, exist_ok=True)
    so, gz = {"scaleoffset": 0}, {"compression": "gzip", "compression_opts": 1, "shuffle": True}
    rows = [
        ("SpikeWriter compress='none': float64 / uint64 / int8", lambda p: write_spikewriter(p, sizes, spikes, "none")),
        ("SpikeWriter compress='scaleoffset' (chunks of 1,024)",
         lambda p: write_spikewriter(p, sizes, spikes, "scaleoffset")),
        ("SpikeWriter compress='deflate' (level 1 + shuffle)", lambda p: write_spikewriter(p, sizes, spikes, "deflate")),
        ("scaleoffset, chunks of 65,536", lambda p: write_raw(p, spikes, 65536, **so)),
        ("scaleoffset, chunks of 4,096", lambda p: write_raw(p, spikes, 4096, **so)),
        ("scaleoffset, chunks of 256", lambda p: write_raw(p, spikes, 256, **so)),
        ("scaleoffset, one merged population", lambda p: write_raw(p, spikes, 1024, merge=True, **so)),
        ("shuffle only", lambda p: write_raw(p, spikes, 65536, shuffle=True)),
        ("plain, float32 timestamps / uint32 ids (off-spec)",
         lambda p: write_raw(p, spikes, 65536, ts_dtype=np.float32, id_dtype=np.uint32)),
        ("deflate, chunks of 4,096", lambda p: write_raw(p, spikes, 4096, **gz)),
    ]
    print(f"main job: {args.tokens} tokens, {total:,} spikes in {len(spikes)} populations; files in {folder}")
    print(f"  {'layout':<54}{'MB':>9}{'write s':>9}   libsonata")
    for k, (label, write) in enumerate(rows):
        path = folder / f"layout{k}.h5"
        t0 = time.perf_counter()
        written = write(path)
        seconds = time.perf_counter() - t0
        verdict = libsonata_verdict(path, written if isinstance(written, dict) else spikes)
        print(f"  {label:<54}{os.path.getsize(path) / 1e6:>9.2f}{seconds:>9.2f}   {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
