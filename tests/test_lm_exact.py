"""The spiking network computes exactly what the quantized reference computes (issue 4, 1/3/4)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_lm_helpers import random_hf_gpt2, random_tiny_gpt, scaled, token_ids
from spikelm.lm import convert
from spikelm.lm.codings import CODINGS, UNIT, coding_id, spike_count
from spikelm.lm.precision import GROUPS

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def bits_strategy(coding):
    """One width 2-8, or per point group up to 16 bits where the coding keeps spikes few (unit
    coding spells a 16-bit code in up to 32,767 steps: kept to 8 bits)."""
    top = 8 if coding == "unit" else 16
    per_group = st.fixed_dictionaries({g: st.integers(2, top) for g in GROUPS})
    return st.one_of(st.integers(2, 8), per_group)


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
        coding=(coding := draw(st.sampled_from(CODINGS))),
        bits=draw(bits_strategy(coding)),
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


def independent_synops(snn, codes, L, start=0):
    """SynOps and shift-adds from the reference codes alone: each neuron's spike count in its
    coding (closed form) x its fan-out, per projection, plus the products per edge. A spike is
    shifted (value other than ±1) unless it is the last, unit digit of an odd code."""
    g = snn.graph
    spikes, shifted = {}, {}
    for p in g.pops:
        if p.spiking:
            k = coding_id(p.coding)
            spikes[p.name] = spike_count(k, codes[p.name])
            shifted[p.name] = 0 * spikes[p.name] if k == UNIT else spikes[p.name] - (np.abs(codes[p.name]) & 1)
    total, shift = 0, 0
    fan = np.arange(start + 1, start + L + 1)[:, None]  # a Q spike at position n reaches n + 1 keys
    for which, out in ((spikes, "total"), (shifted, "shift")):
        t = 0
        for pr in g.projections:
            t += int(which[g.pops[pr.pre].name].sum()) * pr.weights.shape[1]
        for ed in g.edges:
            a, b = which[g.pops[ed.a].name], which[g.pops[ed.b].name]
            if ed.kind == "scores":  # with a sliding window, only the window's keys
                t += int((a * (np.minimum(fan, ed.window) if ed.window else fan)).sum()) + int(b.sum()) * ed.group
            elif ed.kind == "mix":
                t += int(a.sum()) * ed.head_dim + int(b.sum()) * ed.group
            else:
                t += int(a.sum()) + int(b.sum())
        total, shift = (t, shift) if out == "total" else (total, t)
    return total, shift


@settings(max_examples=scaled(120), **SETTINGS)
@given(case=gpt_cases())
def test_simulation_equals_reference_random_tiny_gpt(case):
    model = random_tiny_gpt(case["seed"], case["vocab"], case["ctx"], case["width"], case["layers"],
                            case["heads"], case["std"], case["tied"], case["activation"], case["inner"])
    snn = convert(model, calibration=token_ids(case["seed"] + 1, 40, case["vocab"]), bits=case["bits"],
                  coding=case["coding"])
    ids = token_ids(case["seed"] + 2, case["length"], case["vocab"])
    ref = snn.reference(ids)
    run = snn.simulate(ids, backend="numba")
    assert_exact(snn, ids, run, ref)
    # every neuron spelled its code in its coding's spikes, so the counts have closed forms
    k = coding_id(case["coding"])
    assert run.spikes["total"] == sum(int(spike_count(k, c).sum()) for c in ref.codes.values())
    assert (run.synops["total"], run.shift_adds["total"]) == independent_synops(snn, ref.codes, len(ids))
    assert len(run.steps) == len(ids) and (run.steps > 0).all()


@settings(max_examples=scaled(40), **SETTINGS)
@given(case=gpt_cases())
def test_simulation_equals_reference_random_hf_gpt2(case):
    model = random_hf_gpt2(case["seed"], case["vocab"], case["ctx"], case["width"], case["layers"],
                           case["heads"], case["std"])
    snn = convert(model, calibration=token_ids(case["seed"] + 1, 40, case["vocab"]), bits=case["bits"],
                  coding=case["coding"])
    ids = token_ids(case["seed"] + 2, case["length"], case["vocab"])
    assert_exact(snn, ids, snn.simulate(ids), snn.reference(ids))


@settings(max_examples=scaled(25), **SETTINGS)
@given(case=gpt_cases())
def test_numpy_backend_agrees_with_numba_bit_for_bit(case):
    if case["coding"] == "unit":  # the NumPy executor is the slow oracle: keep unit spike trains short
        case["bits"] = 4
    case["length"] = min(case["length"], 6)
    model = random_tiny_gpt(case["seed"], case["vocab"], case["ctx"], case["width"], case["layers"],
                            case["heads"], case["std"], case["tied"])
    snn = convert(model, calibration=token_ids(case["seed"] + 1, 40, case["vocab"]), bits=case["bits"],
                  coding=case["coding"])
    ids = token_ids(case["seed"] + 2, case["length"], case["vocab"])
    a = snn.simulate(ids, backend="numpy", record=True)
    b = snn.simulate(ids, backend="numba", record=True)
    assert np.array_equal(a.logits, b.logits)
    assert np.array_equal(a.steps, b.steps)
    for field in ("synops", "spikes_pos", "spikes_neg", "op_evals", "shift_adds"):
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
    # one summary at the end: the same counts and MACs as simulating the tokens it ran
    run = snn.simulate(np.array(ids[:-1]))
    assert np.array_equal(sim.logits, run.logits) and np.array_equal(sim.steps, run.steps)
    assert (sim.synops, sim.spikes, sim.op_evals, sim.macs) == (run.synops, run.spikes, run.op_evals, run.macs)
    assert [c.synops for c in sim.per_token] == [c.synops for c in run.per_token]
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
    snn = convert(model, calibration=token_ids(1, 40, 60), bits=8, coding="unit")
    ids = token_ids(2, 3, 60)
    a = snn.simulate(ids, backend="numpy", record=True)
    b = snn.simulate(ids, backend="numba", record=True)
    assert np.array_equal(a.logits, b.logits) and np.array_equal(a.steps, b.steps)
    assert a.synops == b.synops and a.spikes == b.spikes
    for x, y in zip(a.events, b.events):
        assert np.array_equal(x, y)
    assert (a.steps > 100).all()  # 8-bit codes take many steps: the loop was exercised
