"""Reading NIR files: the HDF5 layout is checked node by node before the ``nir`` package builds
the graph, so a bad file is refused in one line that names the file and the node.

A NIR file holds ``/version`` and ``/node``, the root graph: a group with ``type`` =
"NIRGraph", ``nodes/<name>/`` (one group per node: a ``type`` string and one dataset per
parameter, an optional ``metadata`` group) and ``edges``, an array of (from, to) name pairs.
Subgraphs nest the same layout. What is checked here, before anything is built: the node
types (known to NIR, and ones spikelm can simulate), the fields each type needs (present,
numeric, of a bounded size, of consistent shapes) and the edge list. Values (NaN, signs) and
the graph (edges between existing nodes, matching sizes) are checked on the built graph, in
:mod:`spikelm.io.nir_graph`, so graphs built in Python get the same checks.
"""
from __future__ import annotations

import h5py

from spikelm.errors import FileFormatError

from .hdf5 import open_hdf5, reading

#: What a NIR reader expects, for messages.
EXPECTED = "a NIR graph (HDF5 with /version and /node)"
#: Largest number of values any one dataset may hold (checked before it is read).
MAX_VALUES = 50_000_000

# type -> (required fields, optional fields); every field but "nodes" is a numeric dataset
FIELDS = {
    "Input": (("shape",), ()),
    "Output": (("shape",), ()),
    "Affine": (("weight", "bias"), ()),
    "Linear": (("weight",), ()),
    "Scale": (("scale",), ()),
    "Delay": (("delay",), ()),
    "Threshold": (("threshold",), ()),
    "Flatten": (("start_dim", "end_dim"), ("input_type",)),
    "I": (("r",), ()),
    "IF": (("r", "v_threshold"), ("v_reset",)),
    "LI": (("tau", "r", "v_leak"), ()),
    "LIF": (("tau", "r", "v_leak", "v_threshold"), ("v_reset",)),
    "CubaLI": (("tau_syn", "tau_mem", "r", "v_leak"), ("w_in",)),
    "CubaLIF": (("tau_syn", "tau_mem", "r", "v_leak", "v_threshold"), ("v_reset", "w_in")),
    "NIRGraph": (("nodes", "edges"), ()),
}
#: Parameters of one neuron node that must share one shape (``w_in`` may also be one number).
NEURON_PARAMS = {"I", "IF", "LI", "LIF", "CubaLI", "CubaLIF"}
#: NIR node types spikelm refuses, with the reason.
UNSUPPORTED = {
    "Conv1d": "convolutions are not supported (spikelm projections are explicit synapses); "
              "flatten the network to Linear layers before exporting",
    "Conv2d": "convolutions are not supported (spikelm projections are explicit synapses); "
              "flatten the network to Linear layers before exporting",
    "SumPool2d": "pooling is not supported; replace it by a Linear layer before exporting",
    "AvgPool2d": "pooling is not supported; replace it by a Linear layer before exporting",
}


def read_graph(path):
    """Check the file at ``path`` and return its root ``nir.NIRGraph`` (not type-inferred, so the
    nodes are exactly those in the file)."""
    import nir

    src = str(path)
    f = open_hdf5(src, EXPECTED)
    with f, reading(src, EXPECTED):
        if "node" not in f or not isinstance(f["node"], h5py.Group):
            raise FileFormatError(f"{src}: not a NIR file: no /node group (a NIR file holds /version and /node)")
        _check_node(src, f["node"], "(root graph)", root=True)
    try:
        return nir.read(src, type_check=False)
    except Exception as e:  # the layout passed our checks; anything left is the nir package's own complaint
        raise FileFormatError(f"{src}: the nir package could not build the graph "
                              f"({e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else 'no message'})") from None


def file_version(path):
    """The NIR version string a file was written with ('' when it has none)."""
    src = str(path)
    with open_hdf5(src, EXPECTED) as f, reading(src, EXPECTED):
        if "version" not in f:
            return ""
        v = f["version"][()]
        return v.decode("utf8", "replace") if isinstance(v, bytes) else str(v)


def _string(ds):
    v = ds[()] if isinstance(ds, h5py.Dataset) and ds.shape == () else None
    if isinstance(v, bytes):
        return v.decode("utf8", "replace")
    return v if isinstance(v, str) else None


def _check_node(src, g, name, root=False):
    what = f"{src}: node '{name}'"
    if not isinstance(g, h5py.Group):
        raise FileFormatError(f"{what}: must be an HDF5 group, found a dataset")
    if "type" not in g:
        raise FileFormatError(f"{what}: no 'type' field")
    kind = _string(g["type"])
    if kind is None:
        raise FileFormatError(f"{what}: 'type' must be a string")
    if root and kind != "NIRGraph":
        raise FileFormatError(f"{src}: the root node must be a NIRGraph, found {kind!r}")
    if kind in UNSUPPORTED:
        raise FileFormatError(f"{what} ({kind}): {UNSUPPORTED[kind]}")
    if kind not in FIELDS:
        raise FileFormatError(f"{what}: unknown NIR node type {kind!r}; spikelm reads "
                              f"{', '.join(sorted(FIELDS))}")
    what = f"{what} ({kind})"
    required, optional = FIELDS[kind]
    for fld in required:
        if fld not in g:
            raise FileFormatError(f"{what}: missing field '{fld}'")
    extra = sorted(set(g) - set(required) - set(optional) - {"type", "metadata"})
    if extra:
        raise FileFormatError(f"{what}: unexpected field '{extra[0]}'; a {kind} node has "
                              f"{', '.join(required + optional)}")
    if kind == "NIRGraph":
        _check_graph(src, g, name, root)
        return
    shapes = {fld: _numeric(what, g[fld], fld) for fld in required + optional if fld in g}
    _check_shapes(what, kind, shapes)


def _numeric(what, ds, fld):
    if not isinstance(ds, h5py.Dataset):
        raise FileFormatError(f"{what}: field '{fld}' must be a dataset, found a group")
    if ds.dtype.kind not in "biuf":
        raise FileFormatError(f"{what}: field '{fld}' must be numeric, found dtype {ds.dtype}")
    if ds.size > MAX_VALUES:
        raise FileFormatError(f"{what}: field '{fld}' holds {ds.size:,} values, more than spikelm reads "
                              f"({MAX_VALUES:,})")
    return tuple(int(x) for x in ds.shape)


def _check_shapes(what, kind, shapes):
    if kind in NEURON_PARAMS:
        base = {s for f, s in shapes.items() if f != "w_in"}
        if len(base) > 1:
            detail = ", ".join(f"{f} {s}" for f, s in shapes.items() if f != "w_in")
            raise FileFormatError(f"{what}: parameters must share one shape, got {detail}")
        if "w_in" in shapes and shapes["w_in"] not in base | {()}:
            raise FileFormatError(f"{what}: w_in must be one number or of shape {next(iter(base))}, "
                                  f"got {shapes['w_in']}")
    elif kind in ("Affine", "Linear"):
        w = shapes["weight"]
        if len(w) != 2:
            raise FileFormatError(f"{what}: weight must be 2-D (outputs x inputs), got shape {w}")
        if kind == "Affine" and shapes["bias"] not in ((w[0],), ()):
            raise FileFormatError(f"{what}: bias must have shape ({w[0]},) for a weight of shape {w}, "
                                  f"got {shapes['bias']}")
    elif kind in ("Input", "Output"):
        if len(shapes["shape"]) != 1:
            raise FileFormatError(f"{what}: shape must be a 1-D list of sizes, got an array of shape "
                                  f"{shapes['shape']}")


def _check_graph(src, g, name, root):
    what = f"{src}: node '{name}' (NIRGraph)" if not root else f"{src}: root graph"
    nodes = g["nodes"]
    if not isinstance(nodes, h5py.Group):
        raise FileFormatError(f"{what}: 'nodes' must be a group of node groups")
    edges = g["edges"]
    if not isinstance(edges, h5py.Dataset):
        raise FileFormatError(f"{what}: 'edges' must be a dataset of (from, to) name pairs")
    if edges.size > MAX_VALUES:
        raise FileFormatError(f"{what}: 'edges' holds {edges.size:,} entries, more than spikelm reads")
    if edges.size and (edges.ndim != 2 or edges.shape[1] != 2 or edges.dtype.kind not in "OSU"):
        raise FileFormatError(f"{what}: 'edges' must be an array of (from, to) name pairs, got shape "
                              f"{edges.shape} of dtype {edges.dtype}")
    for child in nodes:
        _check_node(src, nodes[child], child if root else f"{name}.{child}")
