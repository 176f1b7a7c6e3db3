"""The spiking network computes exactly what the quantized reference computes (issue 4, 1/3/4)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_lm_helpers import random_hf_gpt2, random_tiny_gpt, token_ids
from spikelm.lm import convert
from spikelm.lm.codings import coding_id, spike_count

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


@st.composite
def gpt_cases(draw):
    heads = draw(st.integers(1, 4))
    head_dim = draw(st.integers(max(1, -(-8 // heads)), 64 // heads))
    ctx = draw(st.integers(1, 32))
    return dict(
        seed=draw(st.integers(0, 2**16)),
        layers=draw(st.integers(1, 2)),
        heads=heads,
        width=heads * head_dim,
        vocab=draw(st.integers(10, 300)),
        ctx=ctx,
        bits=draw(st.integers(2, 8)),
        length=draw(st.integers(1, ctx)),
        std=draw(st.sampled_from([0.05, 0.3, 1.0])),
        tied=draw(st.booleans()),
        activation=draw(st.sampled_from(["gelu_new", "gelu"])),
        inner=draw(st.sampled_from([None, 8, 40])),
    )


def assert_exact(snn, ids, run, ref):
    assert np.array_equal(run.logits, ref.logits)
    assert run.logits.dtype == np.float64 and run.logits.shape == (len(ids), snn.config.vocab_size)
    for name, codes in ref.codes.items():
        assert np.array_equal(run.counts[name], codes), name


def independent_synops(snn, codes, L):
    """SynOps from the reference codes alone: each neuron's spike count (its coding's, in closed
    form) x its fan-out, per projection, plus the telescoping products per edge."""
    g = snn.graph
    spikes = {p.name: spike_count(coding_id(p.coding), codes[p.name]) for p in g.pops if p.spiking}
    total = 0
    for pr in g.projections:
        total += int(spikes[g.pops[pr.pre].name].sum()) * pr.weights.shape[1]
    fan = np.arange(1, L + 1)[:, None]  # a Q spike at position n reaches n + 1 keys
    for ed in g.edges:
        a, b = spikes[g.pops[ed.a].name], spikes[g.pops[ed.b].name]
        if ed.kind == "scores":
            total += int((a * fan).sum()) + int(b.sum()) * ed.group
        elif ed.kind == "mix":
            total += int(a.sum()) * ed.head_dim + int(b.sum()) * ed.group
        else:
            total += int(a.sum()) + int(b.sum())
    return total


@settings(max_examples=120, **SETTINGS)
@given(case=gpt_cases())
def test_simulation_equals_reference_random_tiny_gpt(case):
    model = random_tiny_gpt(case["seed"], case["vocab"], case["ctx"], case["width"], case["layers"],
                            case["heads"], case["std"], case["tied"], case["activation"], case["inner"])
    snn = convert(model, calibration=token_ids(case["seed"] + 1, 40, case["vocab"]), bits=case["bits"])
    ids = token_ids(case["seed"] + 2, case["length"], case["vocab"])
    ref = snn.reference(ids)
    run = snn.simulate(ids, backend="numba")
    assert_exact(snn, ids, run, ref)
    # every neuron fired exactly |code| spikes, so SynOps have a closed form
    spikes = sum(int(np.abs(c).sum()) for c in ref.codes.values())
    assert run.spikes["total"] == spikes
    assert run.synops["total"] == independent_synops(snn, ref.codes, len(ids))
    assert len(run.steps) == len(ids) and (run.steps > 0).all()


@settings(max_examples=40, **SETTINGS)
@given(case=gpt_cases())
def test_simulation_equals_reference_random_hf_gpt2(case):
    model = random_hf_gpt2(case["seed"], case["vocab"], case["ctx"], case["width"], case["layers"],
                           case["heads"], case["std"])
    snn = convert(model, calibration=token_ids(case["seed"] + 1, 40, case["vocab"]), bits=case["bits"])
    ids = token_ids(case["seed"] + 2, case["length"], case["vocab"])
    assert_exact(snn, ids, snn.simulate(ids), snn.reference(ids))


@settings(max_examples=25, **SETTINGS)
@given(case=gpt_cases())
def test_numpy_backend_agrees_with_numba_bit_for_bit(case):
    case["bits"] = min(case["bits"], 4)  # the NumPy executor is the slow oracle: keep codes small
    case["length"] = min(case["length"], 6)
    model = random_tiny_gpt(case["seed"], case["vocab"], case["ctx"], case["width"], case["layers"],
                            case["heads"], case["std"], case["tied"])
    snn = convert(model, calibration=token_ids(case["seed"] + 1, 40, case["vocab"]), bits=case["bits"])
    ids = token_ids(case["seed"] + 2, case["length"], case["vocab"])
    a = snn.simulate(ids, backend="numpy", record=True)
    b = snn.simulate(ids, backend="numba", record=True)
    assert np.array_equal(a.logits, b.logits)
    assert np.array_equal(a.steps, b.steps)
    for field in ("synops", "spikes_pos", "spikes_neg", "op_evals"):
        assert getattr(a, field) == getattr(b, field), field
    for name in a.counts:
        assert np.array_equal(a.counts[name], b.counts[name])
    for x, y in zip(a.events, b.events):
        assert np.array_equal(x, y)
    assert_exact(snn, ids, a, snn.reference(ids))


@pytest.mark.parametrize("bits", [8, 3])
def test_generate_equals_greedy_reference_and_settled_positions_stay_silent(bits):
    model = random_tiny_gpt(7, vocab=30, ctx=16, width=24, layers=2, heads=3)
    snn = convert(model, calibration=token_ids(1, 64, 30), bits=bits)
    prompt = token_ids(2, 4, 30)
    gen = snn.generate(prompt, 8, record=True)
    ids = list(prompt)
    for _ in range(8):
        ids.append(int(np.argmax(snn.reference(np.array(ids)).logits[-1])))
    assert gen.tokens.tolist() == ids
    assert gen.new_tokens.tolist() == ids[4:]
    sim = gen.simulation
    assert len(sim.steps) == len(ids) - 1  # the last new token is not run
    # every spike of position n lies in the steps of token n
    ends = np.cumsum(sim.steps)
    starts = ends - sim.steps
    steps, pops, nodes, _ = sim.events
    sizes = np.array([p.size for p in snn.graph.pops])
    pos = nodes // sizes[pops]
    assert (steps >= starts[pos]).all() and (steps < ends[pos]).all()
    # and by counting: a position's spike counts do not change once its token has settled
    runner = snn.runner("numba")
    seen = []
    for t in ids[:-1]:
        runner.step_token(t, None)
        seen.append(runner.counts.copy())
    for n in range(len(seen) - 1):
        assert np.array_equal(seen[n][: n + 1], seen[-1][: n + 1])


def test_decoding_cost_per_token_reported_and_positive():
    model = random_tiny_gpt(3, vocab=20, ctx=10, width=16, layers=1, heads=2)
    snn = convert(model, calibration=token_ids(1, 30, 20), bits=6)
    run = snn.simulate(token_ids(2, 10, 20))
    per = run.per_token
    assert sum(c.synops["total"] for c in per) == run.synops["total"]
    assert sum(c.spikes["total"] for c in per) == run.spikes["total"]
    assert [c.steps for c in per] == run.steps.tolist()
    assert run.macs["total"] > 0 and set(run.macs) == set(run.synops)


def test_numpy_backend_agrees_with_numba_at_8_bits():
    model = random_tiny_gpt(21, vocab=60, ctx=8, width=24, layers=2, heads=2)
    snn = convert(model, calibration=token_ids(1, 40, 60), bits=8)
    ids = token_ids(2, 3, 60)
    a = snn.simulate(ids, backend="numpy", record=True)
    b = snn.simulate(ids, backend="numba", record=True)
    assert np.array_equal(a.logits, b.logits) and np.array_equal(a.steps, b.steps)
    assert a.synops == b.synops and a.spikes == b.spikes
    for x, y in zip(a.events, b.events):
        assert np.array_equal(x, y)
    assert (a.steps > 100).all()  # 8-bit codes take many steps: the loop was exercised
