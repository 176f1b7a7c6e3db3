"""lm/ as a place to build in (issue 8): operators from a registry, explicit graph edges,
codings, the generated loop and its cache, constants kept in step, and the demo run
unchanged against the file recorded before the restructure."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from test_lm_helpers import assert_lm_agree, assert_matches_reference, random_tiny_gpt, scaled, token_ids
from spikelm.errors import ConfigError
from spikelm.lm import codings, compile as lm_compile, convert, edges, families, graph as G, ops
from spikelm.lm.neuron import signed_if_step, signed_if_step_nb
from spikelm.network.models import signed_if as classic_sif

DATA = Path(__file__).parent / "data"


# ---------------------------------------------------------------- a toy operator, all in this file

@njit(cache=True)
def _square_start(n, p, arg, struct, counts, acc, S, params, scratch, c_lo, c_hi):
    off, in_ptr, in_idx, qmin, qmax = struct
    (shift,) = params
    i = off[in_idx[in_ptr[p]]]
    b = off[p]
    for c in range(c_lo, c_hi):
        x = np.int64(counts[n, i + c])
        y = (x * x) >> shift[arg]
        acc[b + c] = min(y, qmax[p])
    return c_hi - c_lo


class Square(ops.Operator):
    """Elementwise square of one code tensor, shifted right and clamped (a test-only operator)."""

    name = "test_square"
    start = _square_start

    def evaluate(self, graph, pop, inputs, ctx):
        x = np.asarray(inputs[0], dtype=np.int64)
        return np.minimum((x * x) >> pop.params, pop.qmax)

    def pack(self, graph, pops):
        return (np.array([graph.pops[p].params for p in pops], dtype=np.int64),)


ops.register(Square())


def _toy_graph(seed, coding="unit", d=12, vocab=17, ctx=6):
    """emb -> lin (synaptic) -> sq (the toy operator) -> head; weights and scales random."""
    rng = np.random.default_rng(seed)
    from spikelm.lm.ops.embed import EmbedParams

    w1 = rng.integers(-127, 128, (d, d)).astype(np.int8)
    w2 = rng.integers(-127, 128, (d, vocab)).astype(np.int8)
    pops = [
        G.LMPopulation("emb", "emb", "embed", d, -31, 31, 1.0, coding=coding,
                       params=EmbedParams(rng.normal(0, 20, (vocab, d)), None, 1.0)),
        G.LMPopulation("lin", "h0", G.ACCUMULATE, d, -31, 31, 1.0, inputs=(0,), coding=coding,
                       gain=rng.integers(1, 2**10, d).astype(np.int64), offset=rng.integers(-2**14, 2**14, d),
                       shift=16),
        G.LMPopulation("sq", "h0", "test_square", d, 0, 63, 1.0, inputs=(1,), params=4, coding=coding),
        G.LMPopulation("head", "head", G.ACCUMULATE, vocab, 0, 0, 0.0, inputs=(2,), spiking=False,
                       params=G.ReadoutParams(np.full(vocab, 0.01), np.zeros(vocab))),
    ]
    projs = [G.LMProjection(0, 1, w1), G.LMProjection(2, 3, w2)]
    return G.LMGraph(config=None, pops=pops, projections=projs, edges=[], n_positions=ctx, vocab_size=vocab,
                     meta={"bits": 6, "coding": coding})


@pytest.mark.parametrize("coding", codings.CODINGS)
def test_toy_operator_in_one_file_runs_exact_on_every_backend(coding, lm_backend):
    from spikelm.lm.convert import SpikingLM

    snn = SpikingLM(_toy_graph(3, coding), params={})
    ids = token_ids(4, 6, 17)
    ref = snn.reference(ids)
    assert ref.codes["sq"].max() > 0  # the operator did something
    run = snn.simulate(ids, backend=lm_backend)
    assert_matches_reference(snn, ids, run, ref)
    assert run.op_evals["h0"] == 6 * 12  # the toy operator's evaluations were counted


# ---------------------------------------------------------------- explicit edges: any topological order

def reorder(graph, order):
    """The same graph with its populations listed in ``order`` (old indices)."""
    new = {old: i for i, old in enumerate(order)}
    pops = [dataclasses.replace(graph.pops[o], inputs=tuple(new[i] for i in graph.pops[o].inputs)) for o in order]
    projs = [G.LMProjection(new[pr.pre], new[pr.post], pr.weights) for pr in graph.projections]
    eds = [dataclasses.replace(e, a=new[e.a], b=new[e.b], out=new[e.out]) for e in graph.edges]
    return G.LMGraph(config=graph.config, pops=pops, projections=projs, edges=eds, n_positions=graph.n_positions,
                     vocab_size=graph.vocab_size, meta=graph.meta)


@pytest.mark.parametrize("coding", ["unit", "signed_digit"])
def test_populations_in_another_topological_order_give_the_same_run(coding, lm_backend):
    from spikelm.lm.convert import SpikingLM

    model = random_tiny_gpt(5, vocab=30, ctx=8, width=16, layers=2, heads=2)
    snn = convert(model, calibration=token_ids(1, 40, 30), bits=6, coding=coding)
    g = snn.graph
    # per layer: v first, then k, then q; the MLP's fc before the attention output projection
    order, names = [], [p.name for p in g.pops]
    for i, name in enumerate(names):
        if i in order:
            continue
        layer = name.split(".")[0]
        if name.endswith(".q"):
            order += [g.index[f"{layer}.v"], g.index[f"{layer}.k"], i]
        elif name.endswith((".k", ".v")):
            continue
        else:
            order.append(i)
    assert sorted(order) == list(range(len(names))) and order != list(range(len(names)))
    moved = SpikingLM(reorder(g, order), snn.params)
    ids = token_ids(2, 8, 30)
    a, b = snn.simulate(ids, backend=lm_backend), moved.simulate(ids, backend=lm_backend)
    assert np.array_equal(a.logits, b.logits) and np.array_equal(a.steps, b.steps)
    assert a.synops == b.synops and a.spikes == b.spikes
    assert np.array_equal(moved.reference(ids).logits, snn.reference(ids).logits)


def test_graph_refuses_non_topological_orders_and_bad_edges():
    g = _toy_graph(0)
    with pytest.raises(ConfigError, match="topological"):
        reorder(g, [0, 2, 1, 3])
    with pytest.raises(ConfigError, match="edge kind"):
        G.LMGraph(config=None, pops=g.pops, projections=g.projections, n_positions=6, vocab_size=17,
                  edges=[G.ProductEdge("outer", 1, 1, 2)])
    with pytest.raises(ConfigError, match="coding='ternary'"):
        G.LMGraph(config=None, pops=[dataclasses.replace(g.pops[0], coding="ternary")] + g.pops[1:],
                  projections=g.projections, edges=[], n_positions=6, vocab_size=17)


def test_no_order_or_name_assumptions_in_the_executors():
    """The executors take edges and parameters from the graph, never from order or names."""
    src = "".join((Path(m.__file__)).read_text() for m in (
        __import__("spikelm.lm.loop", fromlist=["x"]), __import__("spikelm.lm.runner", fromlist=["x"]),
        __import__("spikelm.lm.numba_runner", fromlist=["x"]), __import__("spikelm.lm.reference", fromlist=["x"]),
        edges))
    for pattern in ("lbase", "lb + 5", ".split(\".\")", "ln1", "\"head\"", "base = p -", "TELE_"):
        assert pattern not in src, pattern


# ---------------------------------------------------------------- named bundles, no names in the executors (issue 20)

LM = Path(__file__).resolve().parent.parent / "spikelm" / "lm"
#: the modules that execute a graph: they may read only what the graph and its bundles say
EXECUTORS = ("reference", "runner", "numba_runner", "loop", "compile", "report", "results", "backends", "layout",
             "events", "bundles", "edges")


def _code(path: Path) -> tuple[set, set]:
    """(identifiers, string constants) of a module's code; docstrings and comments left out."""
    import ast

    tree = ast.parse(path.read_text())
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)) and node.body
            and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    names, strings = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.alias):
            names.update(node.name.split(".") + ([node.asname] if node.asname else []))
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.update(node.module.split("."))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            strings.add(node.value)
    return names, strings


def test_no_positional_bundle_indexing_in_lm():
    """Bundles are read by field: struct.kslot, never struct[29] (a grep, as the issue asks)."""
    bad = re.compile(r"\b(struct|state|counters|rec|lrn|neur|plast|ostruct)\[\s*-?\d")
    hits = [f"{f.relative_to(LM)}:{i}" for f in LM.rglob("*.py") for i, line in enumerate(f.read_text().splitlines(), 1)
            if bad.search(line)]
    assert not hits, hits
    assert bad.search("x = struct[29]") and bad.search("neur[0]") and not bad.search("struct.kslot[p]")


def test_no_operator_or_family_name_in_the_executors():
    fams = [families.get(n) for n in families.names()]
    family_words = {w for f in fams for w in (f.name, *f.model_types, *f.architectures, f.config_class.__name__)}
    for name in EXECUTORS:
        idents, strings = _code(LM / f"{name}.py")
        assert not strings & set(ops.names()), (name, strings & set(ops.names()))
        assert not (idents | strings) & family_words, (name, (idents | strings) & family_words)


def test_nothing_outside_a_family_folder_names_a_family():
    """Family names appear in code only in their own folders, and in the one line of
    families/__init__.py that registers the built-in ones (lm/__init__ re-exports the public
    GPTConfig and TinyGPT, which the docs and the demo use)."""
    fams = [families.get(n) for n in families.names()]
    words = {w for f in fams for w in (f.name, *f.model_types, *f.architectures, f.config_class.__name__)}
    words |= {"TinyGPT", "GPTConfig", "LlamaConfig"}
    for path in LM.rglob("*.py"):
        rel = path.relative_to(LM)
        if rel.parts[0] == "families" and len(rel.parts) > 2 or rel.as_posix() == "__init__.py":
            continue  # a family's own folder; lm/__init__'s public re-export
        if rel.as_posix() == "families/__init__.py":  # its one registration line names the built-in folders
            idents, _ = _code(path)
            assert {"gpt2", "llama"} <= idents
            continue
        idents, strings = _code(path)
        assert not (idents | strings) & words, (rel.as_posix(), (idents | strings) & words)


# ---------------------------------------------------------------- codings and the neuron

@settings(max_examples=scaled(200), deadline=None)
@given(st.integers(-(2**40), 2**40), st.sampled_from(range(len(codings.CODINGS))))
def test_codings_numba_twin_and_spelling(rem, coding):
    v = int(codings.spike_values(coding, np.array([rem]))[0])
    assert v == codings.spike_value_nb(coding, rem)
    if coding == codings.UNIT:
        rem = rem % 2000 - 1000  # |rem| unit spikes: keep the spelling short
    train = codings.spike_trains(coding, np.array([rem]))[0]
    assert int(train.sum()) == rem and len(train) == int(codings.spike_count(coding, np.array([rem]))[0])
    if rem:
        mags = np.abs(train)
        assert ((mags & (mags - 1)) == 0).all()  # powers of two
        assert (mags[:-1] > mags[1:]).all() or coding == codings.UNIT  # most significant first
    if coding == codings.SIGNED_DIGIT and len(train) > 1:  # non-adjacent: exponents differ by >= 2
        e = np.log2(np.abs(train)).astype(int)
        assert (e[:-1] - e[1:] >= 2).all()


def test_documented_example_code_13():
    assert codings.spike_trains(codings.UNIT, [13])[0].tolist() == [1] * 13
    assert codings.spike_trains(codings.BITPLANE, [13])[0].tolist() == [8, 4, 1]
    assert codings.spike_trains(codings.SIGNED_DIGIT, [13])[0].tolist() == [16, -4, 1]


@settings(max_examples=scaled(60), deadline=None)
@given(st.integers(1, 30), st.integers(0, 20), st.sampled_from(range(3)), st.integers(0, 2**32 - 1))
def test_lm_neuron_numpy_equals_numba_and_settles_to_its_code(n, shift, coding, seed):
    rng = np.random.default_rng(seed)
    acc = rng.integers(-(2**20), 2**20, n).astype(np.int32)
    gain = rng.integers(-(2**12), 2**12, n).astype(np.int64)
    offset = rng.integers(-(2**30), 2**30, n).astype(np.int64)
    count = rng.integers(-100, 101, n).astype(np.int32)
    for _ in range(300):
        a = signed_if_step(acc, count, gain, offset, shift, -100, 100, coding)
        b = signed_if_step_nb(acc, count, gain, offset, shift, -100, 100, coding)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        count = a[1]
        if not a[0].any():
            break
    assert not a[0].any()


@settings(max_examples=scaled(40), deadline=None)
@given(st.lists(st.lists(st.integers(-3, 3), min_size=5, max_size=5), min_size=1, max_size=40),
       st.integers(1, 10))
def test_classic_signed_if_and_lm_neuron_fire_the_same_unit_spikes(inputs, q):
    """The engine's SignedIF (float V) and the LM neuron (integer acc) agree step by step."""
    inp = np.array(inputs, dtype=np.int64)
    c = classic_sif.derive(classic_sif.SignedIFParams(-q, q), 1.0)
    s = {"v": np.zeros(5), "count": np.zeros(5)}
    acc = np.zeros(5, np.int64)
    count = np.zeros(5, np.int64)
    zero = np.zeros(5)
    for t in range(len(inp) + 2 * q + 2):
        x = inp[t] if t < len(inp) else np.zeros(5, np.int64)
        idx, val = classic_sif.step(s, c, x.astype(float), zero, zero, t)
        acc += x
        spikes, count = signed_if_step(acc, count, 1, 0, 0, -q, q, codings.UNIT)
        got = np.zeros(5, np.int64)
        got[idx] = val
        assert np.array_equal(got, spikes), t
        assert np.array_equal(s["count"], count)


# ---------------------------------------------------------------- constants, registry, generated loop

def test_constants_kept_in_one_place_agree():
    assert [codings.CODINGS[i] for i in (codings.UNIT, codings.BITPLANE, codings.SIGNED_DIGIT)] == \
        ["unit", "bitplane", "signed_digit"]
    assert set(edges.KIND_IDS) == set(G.EDGE_KINDS)
    assert [edges.KIND_IDS[k] for k in ("scores", "mix", "mul")] == [edges.SCORES, edges.MIX, edges.MUL]
    # the generated dispatcher numbers operators as compile.kinds() does
    names = lm_compile.kinds(["softmax", "layernorm", "embed", "table"])
    text = lm_compile._footer(names, False)
    for k, name in enumerate(names):
        f = ops.get(name).start.py_func
        assert f"from {f.__module__} import {f.__name__} as _op{k}" in text
        assert f"if kind == {k}:" in text
    assert "embed" not in names  # injected by the runner, never started by the loop


def test_registry_refuses_a_second_operator_under_a_taken_name():
    class Other(ops.Operator):
        name = "layernorm"

    with pytest.raises(ConfigError, match="taken"):
        ops.register(Other())
    with pytest.raises(ConfigError, match="registered: .*layernorm"):
        ops.get("no-such-op")


def test_generated_loop_is_renamed_when_any_source_it_compiles_in_changes(tmp_path, monkeypatch):
    names = lm_compile.kinds(["layernorm", "softmax"])
    before = lm_compile._source_hash(names, False)
    assert before == lm_compile._source_hash(names, False)
    assert before != lm_compile._source_hash(names, True)
    fake = tmp_path / "neuron.py"
    fake.write_text(Path(lm_compile.neuron.__file__).read_text() + "\n# edited\n")
    monkeypatch.setattr(lm_compile.neuron, "__file__", str(fake))
    assert lm_compile._source_hash(names, False) != before


def test_timed_loop_runs_the_same_tokens_and_reads_the_clock():
    """The benchmark's instrumented loop (TIMED): the same counts as the plain one, and a clock
    that advances (it once wrote into an array Numba had frozen read-only, and crashed)."""
    from spikelm.lm import load_demo
    from spikelm.lm.numba_runner import NumbaRunner

    snn, tok = load_demo(bits=4, coding="signed_digit")
    plain, timed = NumbaRunner(snn.graph), NumbaRunner(snn.graph, timed=True)
    for t in tok.encode("Return the ")[:4]:
        plain.step_token(int(t), None)
        timed.step_token(int(t), None)
    assert np.array_equal(plain.counts, timed.counts) and np.array_equal(plain.head_acc, timed.head_acc)
    assert timed.timing[1] > 0 and timed.timing[0] > 0


def test_lm_backend_registry_and_cli_choices():
    from spikelm.lm import backends
    from spikelm.lm.cli import add_parser
    import argparse

    assert backends.available() == ["numpy", "numba"]
    with pytest.raises(ConfigError, match="allowed: numpy, numba"):
        backends.runner_class("cuda")
    ap = argparse.ArgumentParser()
    add_parser(ap.add_subparsers(dest="command"))
    with pytest.raises(SystemExit):
        ap.parse_args(["lm", "check", "--backend", "cuda"])
    assert ap.parse_args(["lm", "check", "--backend", "numpy"]).backend == "numpy"


# ---------------------------------------------------------------- behaviour unchanged (issue 8, 3)

def _digest(arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
    return h.hexdigest()


def test_demo_run_is_identical_to_the_file_recorded_before_the_restructure():
    from spikelm.lm import load_demo

    golden = json.loads((DATA / "lm_demo_unit_golden.json").read_text())
    snn, tok = load_demo(bits=8, coding="unit")
    gen = snn.generate(tok.encode(golden["prompt"]), golden["new_tokens"], record=True)
    sim = gen.simulation
    assert gen.tokens.tolist() == golden["tokens"]
    assert sim.steps.tolist() == golden["steps"]
    for field in ("synops", "spikes_pos", "spikes_neg", "op_evals"):
        assert getattr(sim, field) == golden[field], field
    steps, pops, nodes, vals = sim.events
    order = np.lexsort((nodes, pops, steps))
    assert steps.size == golden["n_events"]
    assert _digest([steps[order], pops[order], nodes[order], vals[order]]) == golden["events_sha256"]
    # rounded: the logits' float scales may differ in the last bit between CPUs (BLAS in calibration)
    rounded = np.ascontiguousarray(np.round(sim.logits, 9))
    assert hashlib.sha256(rounded.tobytes()).hexdigest() == golden["logits_round9_sha256"]


def test_backends_agree_bit_for_bit_through_the_snapshot_helper():
    model = random_tiny_gpt(9, vocab=25, ctx=6, width=12, layers=1, heads=3)
    for coding in codings.CODINGS:
        snn = convert(model, calibration=token_ids(1, 30, 25), bits=5, coding=coding)
        ids = token_ids(2, 6, 25)
        assert_lm_agree(snn.simulate(ids, backend="numpy", record=True), snn.simulate(ids, backend="numba", record=True))
