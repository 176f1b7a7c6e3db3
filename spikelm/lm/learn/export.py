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
    tmp = Path(str(folder) + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
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
    """``graph`` (a fresh conversion) with the learned state of ``path`` applied; checked to match."""
    import h5py

    from spikelm.io.checkpoint import json_object

    path = Path(path)
    if not h5py.is_hdf5(path):
        raise FileFormatError(f"{path}: not an HDF5 file (a learned model's state is written by save_model)")
    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise FileFormatError(f"{path}: not a spikelm learned-model file (format={FORMAT!r} missing)")
        if f.attrs.get("fingerprint") != fingerprint(graph, coding=False):
            theirs = json_object(f.attrs.get("summary")) or {}
            raise ConfigError(f"{path}: learned on another conversion of this model ("
                              f"{difference(theirs, summary(graph, coding=False))}); convert with the same "
                              "bits and calibration text")
        projections = list(graph.projections)
        masters = {}
        for key, h in f.get("projections", {}).items():
            k = int(key)
            if not 0 <= k < len(projections) or h["weights"].shape != projections[k].weights.shape:
                raise FileFormatError(f"{path}: projections/{key} does not fit this model")
            w = h["weights"][...].astype(projections[k].weights.dtype)
            projections[k] = LMProjection(projections[k].pre, projections[k].post, w)
            masters[k] = h["masters"][...].astype(np.float64)
        pops = list(graph.pops)
        for name, h in f.get("populations", {}).items():
            if name not in graph.index:
                raise FileFormatError(f"{path}: populations/{name}: no such population in this model")
            p = graph.index[name]
            neuron = h.attrs.get("neuron")
            if neuron in ("eiif_exact", "eiif"):  # "eiif": its name in files written before it had its own
                pops[p] = dataclasses.replace(pops[p], neuron="eiif_exact", unit=None, eiif=tuple(
                    h[x][...].astype(np.float64) for x in ("theta_base", "alpha", "r")))
            elif neuron == "signed_if":
                unit = h["unit"][...].astype(np.int64)
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
