"""A NIR graph made flat and checked: subgraphs inlined, every parameter a finite float64 array,
every edge between existing nodes of matching sizes.

Both imports (from a file and from a ``nir.NIRGraph`` built in Python) go through
:func:`flatten`, so both are refused the same way: one line naming the source, the node (or
edge) and what is wrong. Subgraph nodes are inlined with dotted names (``sub.lif``); their own
Input and Output nodes, and Flatten nodes, become pass-through nodes (``Pass``), since spikelm
indexes every signal as a flat vector (row-major, as NIR and PyTorch flatten).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from spikelm.errors import FileFormatError

from .checkpoint import json_object
from .nir_read import MAX_VALUES, NEURON_PARAMS, UNSUPPORTED

#: Nodes that only move values along (weights, delays, pass-throughs).
LINEAR = ("Affine", "Linear", "Scale", "Delay", "Pass")
#: Neuron nodes whose output is spikes.
SPIKING = ("LIF", "CubaLIF", "IF", "Threshold")
#: Neuron nodes whose output is a continuous value (spikelm records it; it cannot drive synapses).
READOUT = ("LI", "CubaLI", "I")
#: Parameters that must be > 0.
POSITIVE = ("tau", "tau_syn", "tau_mem")
#: The metadata key under which spikelm keeps its own bookkeeping (JSON text).
META_KEY = "spikelm"


@dataclass
class Node:
    """One flat node: NIR type (or ``Pass``), parameters as float64 arrays, sizes, metadata."""

    name: str
    kind: str
    params: dict
    size_in: int | None
    size_out: int | None
    meta: dict = field(default_factory=dict)


@dataclass
class FlatGraph:
    """Nodes by flat name, edges as (from, to) pairs, the root graph's spikelm metadata."""

    source: str
    nodes: dict
    edges: list
    meta: dict

    def preds(self, name):
        return [a for a, b in self.edges if b == name]

    def succs(self, name):
        return [b for a, b in self.edges if a == name]

    def where(self, name):
        n = self.nodes[name]
        return f"{self.source}: node '{name}' ({n.kind})"


def flatten(graph, source) -> FlatGraph:
    """Inline subgraphs of ``graph`` (a ``nir.NIRGraph``) and check every node and edge."""
    nodes, edges = {}, []
    _inline(graph, "", source, nodes, edges, top=True)
    seen = set()
    for e in edges:
        if e in seen:
            raise FileFormatError(f"{source}: edge '{e[0]}' -> '{e[1]}' appears twice")
        seen.add(e)
    g = FlatGraph(source, nodes, edges, _meta(source, "(root graph)", getattr(graph, "metadata", None)))
    _check_edges(g)
    _infer_pass_sizes(g)
    return g


def _inline(graph, prefix, source, nodes, edges, top):
    import nir

    if not isinstance(getattr(graph, "nodes", None), dict) or not isinstance(getattr(graph, "edges", None), list):
        raise FileFormatError(f"{source}: graph '{prefix or '(root)'}' needs a dict of nodes and a list of edges")
    subgraphs = {}
    for name, node in graph.nodes.items():
        full = f"{prefix}{name}"
        if isinstance(node, nir.NIRGraph):
            subgraphs[name] = _inline(node, f"{full}.", source, nodes, edges, top=False)
            continue
        nodes[full] = _node(node, full, source, top)
    for pair in graph.edges:
        if len(pair) != 2:
            raise FileFormatError(f"{source}: edge {pair!r} is not a (from, to) pair")
        a, b = (x.decode("utf8") if isinstance(x, bytes) else str(x) for x in pair)
        edges.append((_endpoint(a, prefix, subgraphs, nodes, source, (a, b), "Output"),
                      _endpoint(b, prefix, subgraphs, nodes, source, (a, b), "Input")))
    ins = [n for n, v in graph.nodes.items() if isinstance(v, nir.Input)]
    outs = [n for n, v in graph.nodes.items() if isinstance(v, nir.Output)]
    return ins, outs


def _endpoint(x, prefix, subgraphs, nodes, source, edge, io):
    if f"{prefix}{x}" in nodes:
        return f"{prefix}{x}"
    if x in subgraphs:
        ins, outs = subgraphs[x]
        ends = outs if io == "Output" else ins
        if len(ends) != 1:
            raise FileFormatError(f"{source}: edge '{edge[0]}' -> '{edge[1]}': subgraph '{prefix}{x}' has "
                                  f"{len(ends)} {io} nodes; the edge must name one of them ('{x}.NAME')")
        return f"{prefix}{x}.{ends[0]}"
    raise FileFormatError(f"{source}: edge '{edge[0]}' -> '{edge[1]}': there is no node '{prefix}{x}'")


def _node(node, name, source, top):
    import nir

    kind = type(node).__name__
    where = f"{source}: node '{name}' ({kind})"
    if kind in UNSUPPORTED:
        raise FileFormatError(f"{where}: {UNSUPPORTED[kind]}")
    meta = _meta(source, name, getattr(node, "metadata", None))
    if isinstance(node, (nir.Input, nir.Output)):
        shape = node.input_type["input"] if isinstance(node, nir.Input) else node.output_type["output"]
        size = _size(where, shape)
        return Node(name, kind if top else "Pass", {}, size, size, meta)
    if isinstance(node, nir.Flatten):
        return Node(name, "Pass", {}, None, None, meta)
    fields = {"Affine": ("weight", "bias"), "Linear": ("weight",), "Scale": ("scale",), "Delay": ("delay",),
              "Threshold": ("threshold",), "I": ("r",), "IF": ("r", "v_threshold", "v_reset"),
              "LI": ("tau", "r", "v_leak"), "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
              "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak", "w_in"),
              "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in")}.get(kind)
    if fields is None:
        raise FileFormatError(f"{where}: spikelm cannot simulate this node type; it reads Input, Output, "
                              f"Affine, Linear, Scale, Delay, Flatten, Threshold, I, IF, LI, LIF, CubaLI, "
                              f"CubaLIF and NIRGraph")
    params = {}
    for f in fields:
        try:
            a = np.asarray(getattr(node, f), dtype=np.float64)
        except (TypeError, ValueError):
            raise FileFormatError(f"{where}: parameter '{f}' is not numeric") from None
        if a.size > MAX_VALUES:
            raise FileFormatError(f"{where}: parameter '{f}' holds {a.size:,} values, more than spikelm reads")
        if not np.all(np.isfinite(a)):
            raise FileFormatError(f"{where}: parameter '{f}' holds NaN or infinite values")
        if f in POSITIVE and np.any(a <= 0):
            raise FileFormatError(f"{where}: parameter '{f}' must be > 0, found {a.min():g}")
        if f == "delay" and np.any(a < 0):
            raise FileFormatError(f"{where}: delays must be >= 0, found {a.min():g}")
        params[f] = a
    if kind in ("Affine", "Linear"):
        w = params["weight"]
        if w.ndim != 2:
            raise FileFormatError(f"{where}: weight must be 2-D (outputs x inputs), got shape {w.shape}")
        if kind == "Affine":
            params["bias"] = _vector(where, "bias", params["bias"], w.shape[0])
        return Node(name, kind, params, w.shape[1], w.shape[0], meta)
    if kind in NEURON_PARAMS:
        n = params["r"].size
        for f, a in params.items():
            if a.size != n and not (f == "w_in" and a.size == 1):
                raise FileFormatError(f"{where}: parameters must share one size; 'r' has {n} values, "
                                      f"'{f}' {a.size}")
        params = {f: np.broadcast_to(a.ravel(), (n,)).copy() for f, a in params.items()}
        return Node(name, kind, params, n, n, meta)
    (f, a), = params.items()  # Scale, Delay, Threshold: one parameter, one value per element
    params[f] = a.ravel()
    return Node(name, kind, params, a.size, a.size, meta)


def _vector(where, f, a, n):
    if a.size == 1:
        return np.full(n, float(a.ravel()[0]))
    if a.size != n:
        raise FileFormatError(f"{where}: '{f}' must hold {n} values, got {a.size}")
    return a.ravel()


def _size(where, shape):
    try:
        dims = np.asarray(shape, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise FileFormatError(f"{where}: shape {shape!r} is not a list of sizes") from None
    if dims.size == 0 or not np.all(np.isfinite(dims)) or np.any(dims < 1) or np.any(dims != np.round(dims)):
        raise FileFormatError(f"{where}: shape must be positive whole sizes, got {list(dims)}")
    size = math.prod(int(d) for d in dims)
    if size > MAX_VALUES:
        raise FileFormatError(f"{where}: shape {list(dims)} holds {size:,} values, more than spikelm reads")
    return size


def _meta(source, name, metadata):
    if not isinstance(metadata, dict) or META_KEY not in metadata:
        return {}
    text = metadata[META_KEY]
    meta = json_object(text.decode("utf8", "replace") if isinstance(text, bytes) else text)
    if meta is None:
        raise FileFormatError(f"{source}: node '{name}': metadata '{META_KEY}' must be a JSON object")
    _check_meta(f"{source}: node '{name}': metadata {META_KEY}", meta, ROOT_META if name == "(root graph)" else NODE_META)
    return meta


# -- the types of spikelm's metadata (values are checked where they become scenario fields) -------------
def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _numbers(v):
    return isinstance(v, list) and all(_number(x) for x in v)


def _texts(v):
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


_KINDS = {
    "a number": _number,
    "an integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "a string": lambda v: isinstance(v, str),
    "a list of strings": _texts,
    "a table": lambda v: isinstance(v, dict),
    '"all" or a list of strings': lambda v: v == "all" or _texts(v),
    "a list of numbers": _numbers,
    "a number or a list of numbers": lambda v: _number(v) or _numbers(v),
    "a list of (numbers or lists of numbers)": lambda v: isinstance(v, list) and all(_number(x) or _numbers(x)
                                                                                        for x in v),
    "a list of lists of numbers": lambda v: isinstance(v, list) and all(_numbers(x) for x in v),
}
#: Keys of the root graph's and of a node's metadata, with their kinds (other keys are ignored).
ROOT_META = {"dt": "a number", "seed": "an integer", "order": "a list of strings", "projections": "a list of strings",
             "record": '"all" or a list of strings', "run": "a table", "time_unit": "a string", "writer": "a string"}
NODE_META = {"population": "a string", "projection": "a string", "target": "a string", "model": "a string",
             "params": "a table", "init": "a table", "stimulus": "a table"}
PARAMS_META = {"rate": "a number", "times": "a list of lists of numbers"}
#: What each stimulus kind must carry.
STIMULUS_NEEDS = {"constant_current": ("amplitude",), "current_steps": ("times", "amplitudes"),
                  "noise_current": ("mean", "std"), "poisson_input": ("rate",)}
RUN_META = {"duration": "a number", "steps": "an integer", "backend": "a string"}
STIMULUS_META = {"kind": "a string", "index": "an integer", "amplitude": "a number or a list of numbers",
                 "amplitudes": "a list of (numbers or lists of numbers)", "times": "a list of numbers",
                 "mean": "a number", "std": "a number", "rate": "a number", "weight": "a number", "target": "a string"}


def _check_meta(where, meta, kinds):
    """Each known key of ``meta`` holds its kind of value (what spikelm's export writes)."""
    for key, kind in kinds.items():
        if key in meta and not _KINDS[kind](meta[key]):
            raise FileFormatError(f"{where}: {key} is {_shown(meta[key])}; expected {kind}")
    subs = (("params", PARAMS_META), ("stimulus", STIMULUS_META)) if kinds is NODE_META else (("run", RUN_META),)
    for key, sub in subs:
        if isinstance(meta.get(key), dict):
            _check_meta(f"{where}.{key}", meta[key], sub)
    stim = meta.get("stimulus") if kinds is NODE_META else None
    if isinstance(stim, dict):
        missing = [k for k in STIMULUS_NEEDS.get(stim.get("kind"), ()) if k not in stim]
        if missing:
            raise FileFormatError(f"{where}.stimulus: a {stim['kind']} without {', '.join(missing)}")
    if kinds is NODE_META and isinstance(meta.get("init"), dict):
        _check_meta(f"{where}.init", meta["init"], dict.fromkeys(meta["init"], "a list of numbers"))


def _shown(v):
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_edges(g):
    for a, b in g.edges:
        na, nb = g.nodes[a], g.nodes[b]
        if nb.kind == "Input":
            raise FileFormatError(f"{g.source}: edge '{a}' -> '{b}': an Input node takes no edges in")
        if na.kind == "Output":
            raise FileFormatError(f"{g.source}: edge '{a}' -> '{b}': an Output node has no edges out")
        if na.kind in READOUT and nb.kind not in ("Output", "Pass"):
            raise FileFormatError(f"{g.where(a)}: feeds '{b}' ({nb.kind}); spikelm carries spikes between "
                                  f"populations, so a non-spiking {na.kind} node can only be read out (-> Output)")
    for name, n in g.nodes.items():
        ins, outs = len(g.preds(name)), len(g.succs(name))
        if n.kind == "Output" and ins != 1:
            raise FileFormatError(f"{g.where(name)}: needs exactly one incoming edge, has {ins}")
        if n.kind in LINEAR and not ins:
            raise FileFormatError(f"{g.where(name)}: has no incoming edge")
        if n.kind in LINEAR and not outs:
            raise FileFormatError(f"{g.where(name)}: has no outgoing edge")


def _infer_pass_sizes(g):
    """Sizes of pass-through nodes from their neighbours, then every edge's sizes must match."""
    changed = True
    while changed:
        changed = False
        for name, n in g.nodes.items():
            if n.kind != "Pass" or n.size_out is not None:
                continue
            known = [g.nodes[p].size_out for p in g.preds(name) if g.nodes[p].size_out is not None]
            known += [g.nodes[s].size_in for s in g.succs(name) if g.nodes[s].size_in is not None]
            if known:
                n.size_in = n.size_out = known[0]
                changed = True
    for a, b in g.edges:
        na, nb = g.nodes[a], g.nodes[b]
        if na.size_out is None or nb.size_in is None:
            raise FileFormatError(f"{g.source}: edge '{a}' -> '{b}': the size of the values it carries cannot be "
                                  f"inferred (a loop of pass-through nodes)")
        if na.size_out != nb.size_in:
            raise FileFormatError(f"{g.source}: edge '{a}' -> '{b}': '{a}' gives {na.size_out} values, '{b}' "
                                  f"takes {nb.size_in}")
