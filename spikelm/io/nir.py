"""NIR in and out: exchange networks with snnTorch, Norse, Sinabs, Rockpool and neuromorphic chips.

NIR (the Neuromorphic Intermediate Representation, https://neuroir.org) stores a network as
a graph of continuous-time nodes in HDF5. This module is the public face:

- :func:`export_network` / :func:`network_to_nir`: a :class:`~spikelm.network.Network` as a
  NIR graph (LIF populations, projections as Linear nodes, delays as Delay nodes, spike
  sources and stimuli as Input nodes, recorded populations as Output nodes);
- :func:`import_nir`: a NIR file (or ``nir.NIRGraph``) as a spikelm scenario at a chosen dt,
  returned as a :class:`NirImport` that writes TOML or builds the Network;
- :func:`describe`: what ``spikelm info FILE.nir`` prints.

The mapping, the discretisations and the conventions that differ are in docs/nir.md and
:mod:`spikelm.io.nir_params`. Needs the optional ``nir`` package (``pip install -e ".[nir]"``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from spikelm.errors import ConfigError, FileFormatError

from .outputs import atomic_output

__all__ = ["export_network", "network_to_nir", "import_nir", "NirImport", "describe", "is_nir_file",
           "require_nir"]


def require_nir():
    """Import the ``nir`` package, or say in one line how to install it."""
    try:
        import nir
    except ImportError:
        raise ConfigError('NIR support needs the optional nir package: pip install -e ".[nir]" '
                          '(or pip install nir)') from None
    return nir


def network_to_nir(net, outputs=None, time_unit="s", run=None):
    """``net`` as a ``nir.NIRGraph`` (see :mod:`spikelm.io.nir_export`); ``outputs``: the
    populations to mark as graph outputs (default: every neuron population); ``run``: a
    scenario's [run] table, kept in the metadata so that an import runs as long."""
    require_nir()
    from .nir_export import to_graph

    return to_graph(net, outputs, time_unit, run)


def export_network(net, path, outputs=None, time_unit="s", run=None):
    """Write ``net`` to the NIR file ``path`` (written to a temporary file first: a failed export
    leaves an existing file untouched). Returns the graph."""
    nir = require_nir()
    graph = network_to_nir(net, outputs, time_unit, run)
    with atomic_output(path) as tmp:
        nir.write(tmp, graph)
    return graph


@dataclass
class NirImport:
    """An imported NIR graph as scenario data (docs/scenarios.md).

    ``inputs``: the spike-source populations fed by the graph's Input nodes ({name: n}); they
    start without spikes, give them with :meth:`set_input`. ``offsets``: steps each
    population runs behind the source simulator (``same-step`` timing; 0 otherwise).
    """

    data: dict
    inputs: dict
    offsets: dict
    source: str = "<nir graph>"
    _text: str = field(default=None, repr=False)

    def set_input(self, population, spikes):
        """Feed ``spikes`` (a bool array [steps, n]: neuron i fires at step t) to input ``population``."""
        if population not in self.inputs:
            raise ConfigError(f"set_input: {population!r} is not an input population; inputs: "
                              f"{', '.join(self.inputs) or 'none'}")
        s = np.asarray(spikes, dtype=bool)
        n = self.inputs[population]
        if s.ndim != 2 or s.shape[1] != n:
            raise ConfigError(f"set_input: {population!r} takes a [steps, {n}] array, got shape {s.shape}")
        dt = self.data["network"]["dt"]
        self.data["populations"][population]["params"]["times"] = [
            (np.flatnonzero(s[:, i]) * dt).tolist() for i in range(n)]
        self._text = None

    def to_toml(self) -> str:
        from .nir_toml import dumps

        if self._text is None:
            self._text = dumps(self.data)
        return self._text

    def scenario(self):
        """The :class:`~spikelm.io.scenario.Scenario` (validated as a file would be)."""
        from .scenario import loads_scenario

        return loads_scenario(self.to_toml(), self.source)

    def build(self, seed=None):
        """The :class:`~spikelm.network.Network`; ``scenario().state_monitors`` record the readouts."""
        return self.scenario().build(seed)

    def write(self, path):
        """Write the scenario TOML to ``path`` (atomically)."""
        text = self.to_toml()

        with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def import_nir(graph, dt, discretisation="exact", timing="step-per-edge", time_unit="s") -> NirImport:
    """Import a NIR file (path) or ``nir.NIRGraph`` at step ``dt`` (ms).

    ``discretisation``: "exact" (spikelm's exact integration of NIR's equations) or "euler"
    (the forward-Euler step of snnTorch, Norse and most deep-learning SNN libraries).
    ``timing``: "step-per-edge" (every edge takes one step) or "same-step" (spikes cross
    feed-forward edges within their step, as those libraries run). ``time_unit``: what the
    file's times are in, "s" (snnTorch, Norse) or "ms".
    """
    require_nir()
    from .nir_graph import flatten
    from .nir_import import to_scenario
    from .nir_read import read_graph

    if isinstance(graph, (str, os.PathLike)):
        source = str(graph)
        graph = read_graph(source)
    else:
        source = "<nir graph>"
    flat = flatten(graph, source)
    data, inputs, offsets = to_scenario(flat, dt, discretisation, timing, time_unit)
    return NirImport(data, inputs, offsets, source)


def is_nir_file(path) -> bool:
    """Whether ``path`` is an HDF5 file laid out as NIR (a /node group and no SONATA /spikes).

    Never blocks and never raises: what is not a readable regular HDF5 file (a named pipe, a
    directory, damage) is not a NIR file, and the SONATA reader then says what is wrong.
    """
    from .hdf5 import open_hdf5

    try:
        with open_hdf5(path, "a NIR graph") as f:
            return "node" in f and "spikes" not in f
    except (FileFormatError, OSError, RuntimeError, ValueError):
        return False


def describe(path) -> str:
    """A summary of a NIR file: its nodes (type, size, main parameters), edges, and whether
    spikelm can import it."""
    require_nir()
    from .nir_graph import flatten
    from .nir_import import to_scenario
    from .nir_read import file_version, read_graph

    src = str(path)
    flat = flatten(read_graph(src), src)
    lines = [f"{src}: NIR graph (written by nir {file_version(src) or '?'}), {len(flat.nodes)} nodes, "
             f"{len(flat.edges)} edges",
             f"  {'node':<24}{'type':<10}{'in':>8}{'out':>8}  parameters"]
    for name, n in flat.nodes.items():
        lines.append(f"  {name:<24}{n.kind:<10}{n.size_in or '-':>8}{n.size_out or '-':>8}  {_params(n)}")
    try:
        to_scenario(flat, 0.1, "exact", "step-per-edge", "s")
        lines.append("  spikelm can import it: spikelm nir import FILE --dt MS -o scenario.toml")
    except (FileFormatError, ConfigError) as e:
        lines.append(f"  spikelm cannot import it: {str(e).removeprefix(src + ': ')}")
    return "\n".join(lines)


def _params(node):
    parts = []
    for k, a in node.params.items():
        if a.size == 1 or np.all(a == a.ravel()[0]):
            parts.append(f"{k}={a.ravel()[0]:.4g}" if a.size else f"{k}=[]")
        elif k in ("weight", "bias"):
            parts.append(f"{k}{list(a.shape)} in [{a.min():.3g}, {a.max():.3g}]")
        else:
            parts.append(f"{k} in [{a.min():.4g}, {a.max():.4g}]")
    return ", ".join(parts)

