"""What lives on a Dask worker: the converted-model cache and the per-document task.

Imported only where Dask is installed (it subclasses ``distributed.WorkerPlugin``). The
client registers :class:`ModelCachePlugin` once; each worker then holds one
:class:`~spikelm.scaleout.corpus.ModelCache`, so the model is converted once per worker and
(model folder, bits), however many documents the worker evaluates. A restarted worker starts
with an empty cache and converts again: conversion is deterministic, so results do not change.
"""
from __future__ import annotations

from distributed import WorkerPlugin, get_worker

from spikelm.scaleout.corpus import EvalOptions, ModelCache, evaluate_document

PLUGIN = "spikelm-model-cache"


class ModelCachePlugin(WorkerPlugin):
    """Gives each worker a :class:`ModelCache` (``worker.plugins[PLUGIN].cache``)."""

    idempotent = True

    def setup(self, worker):
        self.cache = ModelCache()

    def teardown(self, worker):
        self.cache = None


def evaluate_document_task(doc: str, text: str, opts: EvalOptions) -> dict:
    """One document on this worker, with the worker's cached model."""
    return evaluate_document(doc, text, opts, get_worker().plugins[PLUGIN].cache)


def conversions(dask_worker) -> int:
    """How many conversions a worker's cache has made: ``client.run(conversions)`` asks every worker."""
    return dask_worker.plugins[PLUGIN].cache.conversions
