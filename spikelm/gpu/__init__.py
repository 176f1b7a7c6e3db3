"""The CuPy (CUDA) backend: ``Simulator(net, backend="cupy")``.

- :mod:`spikelm.gpu.kernels`: the CUDA C sources (one kernel skeleton per phase, each model
  supplies only its update and may-fire code) and the memoised factory that compiles them.
  Importable and testable without CuPy.
- :mod:`spikelm.gpu.backend`: ``check_available()`` and ``run_chunk(...)``, the same
  operation as the numpy and numba backends. Imports CuPy only when it runs.

See docs/gpu.md for the design, the tolerance statement and what remains to be verified.
"""
