"""Learned model folders: what learning changed, saved beside the model, read back by ``convert``.

:func:`save` writes a new folder: the source model's files (config, weights, tokenizer,
calibration and held-out texts) and ``learned.h5``, which holds the plastic projections'
integer rows and float master weights (the readout rule's too, with its learned bias) and
every population's neurons (spike units, EI-IF
parameters), with the fingerprint of the conversion they were learned on. ``convert`` (and
every ``spikelm lm`` command) reads such a folder as usual and then applies ``learned.h5``
(:func:`apply`); a conversion that differs from the one learned on (other bits or
calibration) is refused, naming the file. The float weights stay the source's: learning
happened on the integer network, and the integer network is what comes back.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np

from spikelm.errors import ConfigError, FileFormatError
from spikelm.lm.fingerprint import difference, fingerprint, summary
from spikelm.lm.graph import LMGraph, LMProjection

FORMAT = "spikelm-learned-model"
#: the file of a model folder holding what learning changed
LEARNED_FILE = "learned.h5"


def save(learning, folder, source=None) -> str:
    """Write ``learning``'s learned state as a model folder (see the module docstring)."""
    import h5py

    snn = learning.snn
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigError(f"{folder}: exists and is not an empty folder; a learned model goes into a new one")
    src = Path(source) if source else (Path(snn.source) if snn.source and Path(snn.source).exists() else None)
    tmp = _new_folder_beside(folder)
    try:
        _model_files(snn, src, tmp)
        st, g = learning.state, learning.graph
        with h5py.File(tmp / LEARNED_FILE, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["fingerprint"] = fingerprint(snn.graph, coding=False)
            f.attrs["summary"] = json.dumps(summary(snn.graph, coding=False))
            f.attrs["plasticity"] = json.dumps(learning.plasticity.to_dict() if learning.plasticity else None)
            for r, (k, _, _) in enumerate(st.attached.projections):
                pr = g.projections[k]
                h = f.create_group(f"projections/{k}")
                h.attrs["pre"], h.attrs["post"] = g.pops[pr.pre].name, g.pops[pr.post].name
                h.create_dataset("weights", data=st.weights(k))
                h.create_dataset("masters", data=st.masters(r))
            if st.readout_rule is not None:  # the readout rule's rows, masters and bias
                k = st.readout_k
                pr = g.projections[k]
                h = f.create_group(f"projections/{k}")
                h.attrs["pre"], h.attrs["post"] = g.pops[pr.pre].name, g.pops[pr.post].name
                h.create_dataset("weights", data=st.weights(k))
                h.create_dataset("masters", data=st.a["rwm"].reshape(pr.weights.shape))
                f.create_dataset("readout/bias", data=st.a["rb"])
            lay = st.layout
            for p, pop in enumerate(g.pops):
                if not pop.spiking or st.a["lkind"][p] == -1:
                    continue
                seg = lay.seg(p)
                h = f.create_group(f"populations/{pop.name}")
                h.attrs["neuron"] = pop.neuron
                names = ("unit",) if pop.neuron == "signed_if" else ("theta_base", "alpha", "r")
                for name in names:
                    h.create_dataset(name, data=st.a[name][seg])
        if folder.exists():
            folder.rmdir()
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return str(folder)


def _new_folder_beside(folder: Path) -> Path:
    """A new private folder beside ``folder`` to write into (never one a user may own, such as
    ``<folder>.partial``), made with the umask's permissions as every other output."""
    parent = folder.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    for k in range(1000):
        tmp = parent / f".{folder.name}.{os.getpid()}.{k}.tmp"
        try:
            tmp.mkdir()
            return tmp
        except FileExistsError:
            continue
    raise ConfigError(f"{folder}: cannot create a temporary folder in {parent}")  # pragma: no cover


def _model_files(snn, src, out: Path):
    """The source model's files (a folder), or its family's config and weights written from memory."""
    if src is not None and src.is_dir():
        for p in sorted(src.iterdir()):
            if p.is_file() and p.name != LEARNED_FILE:
                shutil.copy2(p, out / p.name)
        return
    if src is None and snn.family is not None:
        snn.family.save_folder(snn.config, snn.params, out)
        return
    raise ConfigError(f"save_model: the model came from {src}; give source= its Hugging Face folder")


def apply(graph: LMGraph, path) -> LMGraph:
    """``graph`` (a fresh conversion) with the learned state of ``path`` applied; checked to match.

    Every array is checked before it is used (one line naming the file and the field): integer
    rows of this model's shapes and inside its weight range, finite masters, spike units >= 1,
    EI-IF parameters in their domains (theta_base, alpha >= 0, r in [0, 1])."""

    from spikelm.io.checkpoint import json_object
    from spikelm.io.hdf5 import open_hdf5, reading
    from spikelm.io.stored import stored_array
    from spikelm.lm.learn.attach import weight_bound

    path = Path(path)
    what = f"a learned-model file ({LEARNED_FILE}, written by save_model)"
    with open_hdf5(path, what) as f, reading(path, what):
        if f.attrs.get("format") != FORMAT:
            raise FileFormatError(f"{path}: not a spikelm learned-model file (format={FORMAT!r} missing)")
        if f.attrs.get("fingerprint") != fingerprint(graph, coding=False):
            theirs = json_object(f.attrs.get("summary")) or {}
            raise ConfigError(f"{path}: learned on another conversion of this model ("
                              f"{difference(theirs, summary(graph, coding=False))}); convert with the same "
                              "bits and calibration text")
        projections = list(graph.projections)
        masters = {}
        for key, h in _groups(f, "projections", path):
            k = int(key) if key.isdigit() else -1
            if not 0 <= k < len(projections):
                raise FileFormatError(f"{path}: projections/{key}: this model has projections 0..{len(projections) - 1}")
            shape, q = projections[k].weights.shape, weight_bound(graph, k)
            w = stored_array(_dataset(h, "weights", path), f"{path}: projections/{key}/weights", "int", shape, -q, q)
            projections[k] = LMProjection(projections[k].pre, projections[k].post,
                                          w.astype(projections[k].weights.dtype))
            masters[k] = stored_array(_dataset(h, "masters", path), f"{path}: projections/{key}/masters", "float",
                                      shape).astype(np.float64)
            check_rounding(w, masters[k], q, f"{path}: projections/{key}/weights")
        pops = list(graph.pops)
        for name, h in _groups(f, "populations", path):
            if name not in graph.index or not graph.pops[graph.index[name]].spiking:
                raise FileFormatError(f"{path}: populations/{name}: no such spiking population in this model")
            p = graph.index[name]
            neuron = h.attrs.get("neuron")
            at, size = f"{path}: populations/{name}", (pops[p].size,)
            if neuron in ("eiif_exact", "eiif"):  # "eiif": its name in files written before it had its own
                pops[p] = dataclasses.replace(pops[p], neuron="eiif_exact", unit=None, eiif=tuple(
                    stored_array(_dataset(h, x, path), f"{at}/{x}", "float", size, 0.0, 1.0 if x == "r" else None)
                    .astype(np.float64) for x in ("theta_base", "alpha", "r")))
            elif neuron == "signed_if":
                unit = stored_array(_dataset(h, "unit", path), f"{at}/unit", "int", size, 1, 2**31).astype(np.int64)
                pops[p] = dataclasses.replace(pops[p], neuron="signed_if", eiif=None,
                                              unit=None if (unit == 1).all() else unit)
            else:
                raise FileFormatError(f"{path}: populations/{name}: neuron {neuron!r}; allowed: signed_if, eiif_exact")
        if "readout/bias" in f:  # learned by the readout rule: the logits' bias
            head = pops[graph.readout]
            bias = f["readout/bias"][...]
            if bias.shape != (graph.vocab_size,) or not np.isfinite(bias).all():
                raise FileFormatError(f"{path}: readout/bias: {bias.shape} (finite: {bool(np.isfinite(bias).all())}); "
                                      f"allowed: {graph.vocab_size} finite numbers")
            pops[graph.readout] = dataclasses.replace(head, params=dataclasses.replace(
                head.params, bias=bias.astype(np.float64)))
    return LMGraph(config=graph.config, pops=pops, projections=projections, edges=graph.edges,
                   n_positions=graph.n_positions, vocab_size=graph.vocab_size,
                   meta={**graph.meta, "learned": str(path), "masters": masters}, prefix=graph.prefix)


def check_rounding(weights, masters, q, where: str) -> None:
    """Learning keeps every integer weight the rounding of its master, ``clip(floor(m + 1/2), -q, q)``:
    a file where they disagree was not written by a run."""
    bad = np.flatnonzero(np.asarray(weights, np.int64).reshape(-1) !=
                         np.clip(np.floor(np.asarray(masters).reshape(-1) + 0.5), -q, q))
    if bad.size:
        i = int(bad[0])
        raise FileFormatError(f"{where}: {bad.size} integer weight(s) differ from the rounding of their masters "
                              f"(the first at flat index {i}: {int(np.asarray(weights).reshape(-1)[i])}, master "
                              f"{float(np.asarray(masters).reshape(-1)[i])!r})")


def _groups(f, name, path):
    """The groups under ``/name`` (none when it is absent), each refused unless a group."""
    import h5py

    top = f.get(name)
    if top is None:
        return []
    if not isinstance(top, h5py.Group):
        raise FileFormatError(f"{path}: {name}: not a group")
    for key, h in top.items():
        if not isinstance(h, h5py.Group):
            raise FileFormatError(f"{path}: {name}/{key}: not a group")
    return list(top.items())


def _dataset(h, name, path):
    import h5py

    if not isinstance(h.get(name), h5py.Dataset):
        raise FileFormatError(f"{path}: {h.name.lstrip('/')}/{name}: {'missing' if name not in h else 'not a dataset'}")
    return h[name][...]
