"""What lives on a Dask worker: the converted-model cache (the per-document task is
:func:`spikelm.scaleout.corpus.evaluate_document_task`).

Imported only where Dask is installed (it subclasses ``distributed.WorkerPlugin``). The
client registers :class:`ModelCachePlugin` once; each worker then holds one
:class:`~spikelm.scaleout.corpus.ModelCache`, so the model is converted once per worker and
(model folder, bits), however many documents the worker evaluates. A restarted worker starts
with an empty cache and converts again: conversion is deterministic, so results do not change.
"""
from __future__ import annotations

from distributed import WorkerPlugin, get_worker

PLUGIN = "spikelm-model-cache"


class ModelCachePlugin(WorkerPlugin):
    """Gives each worker a cache made by ``make_cache`` (a :class:`~spikelm.scaleout.corpus.ModelCache`;
    passed in, so this module imports nothing of the corpus that imports it), at
    ``worker.plugins[PLUGIN].cache``."""

    idempotent = True

    def __init__(self, make_cache):
        self.make_cache = make_cache

    def setup(self, worker):
        self.cache = self.make_cache()

    def teardown(self, worker):
        self.cache = None


def cache():
    """The cache of the worker this task runs on."""
    return get_worker().plugins[PLUGIN].cache


def conversions(dask_worker) -> int:
    """How many conversions a worker's cache has made: ``client.run(conversions)`` asks every worker."""
    return dask_worker.plugins[PLUGIN].cache.conversions
