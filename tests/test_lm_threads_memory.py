"""The converted model's integer weights live once (issue 23): packed into one flat array that
the compiled runners read in place, never copied beside it, and learning works on its own copy."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from test_lm_helpers import random_tiny_gpt, token_ids
from test_lm_plasticity import EVERYTHING
from spikelm.lm import convert
from spikelm.lm.fingerprint import fingerprint
from spikelm.lm.layout import column_l1_max, flat_weights, pack_weights
from spikelm.lm.numba_runner import NumbaRunner


def tiny():
    return convert(random_tiny_gpt(2, vocab=30, width=16), calibration=token_ids(1, 30, 30), bits=5)


def test_runners_read_the_converted_weights_in_place():
    snn = tiny()
    base = snn.graph.projections[0].weights.base
    assert base is not None and base.ndim == 1
    assert all(pr.weights.base is base for pr in snn.graph.projections)
    runner = NumbaRunner(snn.graph)
    assert np.shares_memory(runner.struct.W, base)


def test_packing_changes_no_weight_and_no_fingerprint():
    snn = tiny()
    g = snn.graph
    before = fingerprint(g)
    for pr in g.projections:  # unpack: each projection its own array again
        pr.weights = pr.weights.copy()
    assert fingerprint(g) == before
    W0, off0 = flat_weights(g)
    pack_weights(g)
    W1, off1 = flat_weights(g, shared=True)
    assert fingerprint(g) == before and np.array_equal(W0, W1) and np.array_equal(off0, off1)


def test_learning_never_writes_the_models_weights():
    snn = tiny()
    saved = [pr.weights.copy() for pr in snn.graph.projections]
    snn.simulate(token_ids(3, 6, 30), plasticity=EVERYTHING)
    for pr, w in zip(snn.graph.projections, saved):
        assert np.array_equal(pr.weights, w)


@settings(max_examples=50, deadline=None)
@given(w=st.one_of(arrays(np.int8, st.tuples(st.integers(0, 5), st.integers(0, 5))),
                   arrays(np.int16, st.tuples(st.integers(0, 5), st.integers(0, 5)))))
def test_the_largest_column_norm_is_exact_at_the_most_negative_weight(w):
    expect = max((sum(abs(int(x)) for x in w[:, c]) for c in range(w.shape[1])), default=0)
    assert column_l1_max(w) == expect
    assert column_l1_max(w) == expect  # again, from the cache
