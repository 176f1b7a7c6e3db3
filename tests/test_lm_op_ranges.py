"""Every operator's Numba twin computes any range of its population's neurons exactly as the
whole population computes them (the threads of a team each start their own share of an
operator-fed population: spikelm.lm.ops.registry, spikelm.lm.loop), writes nothing outside
the range, and the ranges' evaluation counts add up to the whole's."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lm_hf_families import CLASSES as HF_CLASSES, cases as hf_cases, convert_case
from test_lm_exact import SETTINGS
from test_lm_helpers import random_tiny_gpt, scaled, token_ids
from test_lm_llama import build as build_llama, llama_cases
from spikelm.lm import convert, ops
from spikelm.lm.numba_runner import NumbaRunner
from spikelm.lm.results import drive


def assert_ranges_agree(snn, ids, data):
    """Run ``ids``; then, at the last position, every operator-fed population's twin over drawn
    cuts (inside heads and norm groups too) against one call over the whole population."""
    runner = NumbaRunner(snn.graph, threads=1)
    drive(runner, ids, None, None, "numba")
    n = len(ids) - 1
    st_, g = runner.struct, snn.graph
    off = st_.off
    scratch = np.zeros_like(runner.state.scratch[0])
    checked = 0
    for p in range(len(g.pops)):
        kind = int(st_.op_kind[p])
        if kind < 0:
            continue
        start = type(ops.get(runner.kinds[kind])).start  # the twin itself (an instance binds it)
        size = int(off[p + 1] - off[p])
        call = (n, p, st_.op_arg[p], st_.op_graph, runner.counts)
        S, params = runner.state.S, runner.op_params[kind]
        whole = np.full(runner.state.acc.shape, -7, runner.state.acc.dtype)
        total = start(*call, whole, S, params, scratch, 0, size)
        assert total == ops.get(g.pops[p].op).evaluations(g, p, n), g.pops[p].name
        cuts = sorted(data.draw(st.lists(st.integers(0, size), max_size=4), label=f"cuts of {g.pops[p].name}"))
        pieces = np.full_like(whole, -7)
        counted = 0
        for lo, hi in zip([0, *cuts], [*cuts, size]):
            mine = np.full_like(whole, -7)  # each range into a fresh array: what it wrote is what changed
            counted += start(*call, mine, S, params, scratch, lo, hi)
            changed = np.flatnonzero(mine != -7)
            assert np.all((changed >= off[p] + lo) & (changed < off[p] + hi)), \
                f"{g.pops[p].name}: the range {lo}..{hi} wrote outside itself"
            pieces[off[p] + lo : off[p] + hi] = mine[off[p] + lo : off[p] + hi]
        np.testing.assert_array_equal(pieces, whole, err_msg=g.pops[p].name)
        assert counted == total, g.pops[p].name
        checked += 1
    assert checked > 0


@settings(max_examples=scaled(6), **SETTINGS)
@given(case=llama_cases(), data=st.data())
def test_llama_family_operators_compute_any_range_as_the_whole(case, data):
    """RMSNorm, RoPE, the residual sums, SiLU's table and the softmax."""
    case["length"] = min(case["length"], 5)
    _, snn = build_llama(case)
    assert_ranges_agree(snn, token_ids(case["seed"] + 2, case["length"], case["vocab"]), data)


@settings(max_examples=scaled(5), **SETTINGS)
@given(case=hf_cases(list(HF_CLASSES)), data=st.data())
def test_windowed_soft_capped_and_per_head_normed_operators_compute_any_range_as_the_whole(case, data):
    """Qwen3's and Gemma's per-head norms (a cut inside a head), sliding windows, soft-caps."""
    case = {**case, "length": min(case["length"], 5)}
    _, snn = convert_case(case)
    assert_ranges_agree(snn, token_ids(case["seed"] + 2, case["length"], case["vocab"]), data)


@settings(max_examples=scaled(4), **SETTINGS)
@given(seed=st.integers(0, 2**16), data=st.data())
def test_gpt2_operators_compute_any_range_as_the_whole(seed, data):
    """LayerNorm (a whole row into scratch, its range out of it) and GELU's table."""
    snn = convert(random_tiny_gpt(seed, width=32, heads=4), calibration=token_ids(seed, 20, 40), bits=6)
    assert_ranges_agree(snn, token_ids(seed + 1, 4, 40), data)
