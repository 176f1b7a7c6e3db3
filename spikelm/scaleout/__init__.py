"""Beyond one machine: parameter sweeps and corpus evaluation on Dask distributed.

One simulation runs on one machine; what users outgrow first is throughput. This package
runs many independent, deterministic spikelm runs as tasks of a Dask cluster (a
``LocalCluster`` by default, any scheduler otherwise) and gathers their results in one table:

- :mod:`spikelm.scaleout.overrides`: the ``--set PATH=VALUES`` syntax that addresses
  scenario fields (shared by ``spikelm run`` and ``spikelm sweep``);
- :mod:`spikelm.scaleout.sweep`: ``spikelm sweep``, one run per point of a parameter grid;
- :mod:`spikelm.scaleout.corpus`: ``spikelm lm evaluate --docs``, one task per document;
- :mod:`spikelm.scaleout.cluster`: opening a client from ``--scheduler`` and gathering
  results with a progress bar.

Dask is the optional extra ``distributed`` (``pip install -e ".[distributed]"``); only the
cluster paths need it. docs/scale-out.md is the user's guide.
"""
