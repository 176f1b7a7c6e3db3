"""Conversion holds what each phase needs (issue 23): float parameters in their source
precision (float32, read as float64 one tensor at a time), calibration without the head's
[L, vocab] logits, weights folded block by block with the codes of one whole-matrix pass."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_lm_helpers import token_ids
from test_lm_llama import random_llama
from spikelm.lm import convert, quantize, torch_optional
from spikelm.lm.ops.table import TableParams
from spikelm.lm.families.llama import calibrate as C, forward as L
from spikelm.lm.load import open_model
from spikelm.lm.tensors import Params

VOCAB, CTX = 20000, 16


@pytest.fixture(scope="module")
def wide_vocab():
    """A Llama with a vocabulary far wider than the rest of it: its head dominates memory."""
    return random_llama("llama", 3, vocab=VOCAB, ctx=CTX, layers=2, heads=2, kv_heads=1, head_dim=8, inner=24)


def test_parameters_stay_float32_and_read_as_the_same_float64(wide_vocab):
    loaded = open_model(wide_vocab)
    assert isinstance(loaded.params, Params)
    state = {k: v for k, v in wide_vocab.state_dict().items() if "rotary" not in k}
    for k, v in state.items():
        assert loaded.params.stored(k).dtype == np.float32, k
        got = loaded.params[k]
        assert got.dtype == np.float64 and np.array_equal(got, v.double().numpy()), k
    # no float64 copy of any parameter is held: the mapping is the float32 values, once
    assert loaded.params.nbytes == sum(v.numel() * 4 for v in state.values())


def test_the_converted_model_holds_no_float64_weights_beside_its_codes(wide_vocab):
    """What the converted model keeps, measured by tracemalloc: its float32 parameters and the
    integer codes (the embedding table shared with the parameters), its lookup tables and small
    arrays; a float64
    copy of the parameters alone would exceed the bound by half of it."""
    calib = token_ids(1, 40, VOCAB)
    convert(wide_vocab, calibration=calib)  # warm imports and caches outside the measurement
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        snn = convert(wide_vocab, calibration=calib)
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    f32 = snn.params.nbytes
    codes = sum(pr.weights.nbytes for pr in snn.graph.projections)
    # lookup tables (the SiLU's) span the gate's whole code range, clamp included
    tables = sum(p.params.lut.nbytes for p in snn.graph.pops if isinstance(p.params, TableParams))
    assert held < f32 + codes + tables + f32 // 2, (held, f32, codes, tables)


def test_calibration_never_makes_the_full_logits(wide_vocab, monkeypatch):
    """Peak of one calibration window on a wide vocabulary against the [L, vocab] float64 logits
    it used to make (NumPy's product, so that tracemalloc sees every array)."""
    monkeypatch.setattr(torch_optional, "torch", None)
    loaded = open_model(wide_vocab)
    cfg, ids = loaded.config, token_ids(2, 40, VOCAB)
    prefix = np.array([1])
    logits_bytes = CTX * VOCAB * 8
    tracemalloc.start()
    try:
        C.maxabs(cfg, loaded.params, ids, prefix)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < logits_bytes / 4, (peak, logits_bytes)
    # the float model's logits are still there when asked for, the head read in chunks
    monkeypatch.setattr(L, "HEAD_CHUNK", 999)
    seen = {}
    full = L.float_forward(cfg, loaded.params, ids[:CTX], lambda name, x: seen.setdefault(name, x))
    assert L.float_forward(cfg, loaded.params, ids[:CTX], logits=False) is None
    assert np.allclose(full, seen["normf"] @ loaded.params["lm_head.weight"].T, rtol=1e-12, atol=1e-12)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(n_in=st.integers(1, 40), n_out=st.integers(1, 60), bits=st.integers(4, 16), rows=st.booleans(),
       block=st.integers(1, 300), seed=st.integers(0, 2**16), per_channel=st.booleans())
def test_folding_block_by_block_gives_the_whole_matrix_codes(n_in, n_out, bits, rows, block, seed, per_channel):
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((n_in, n_out)) * np.exp(rng.uniform(-4, 4, (n_in, 1)))).astype(np.float32)
    s_in = np.exp(rng.uniform(-3, 3, n_in)) if per_channel else 0.25
    whole = quantize.folded_weight_codes(w.astype(np.float64), s_in, bits, rows)
    assert n_in * n_out < quantize.FOLD_BLOCK  # one block: the whole-matrix pass
    saved, quantize.FOLD_BLOCK = quantize.FOLD_BLOCK, block
    try:
        parts = quantize.folded_weight_codes(w, s_in, bits, rows)  # float32 in, in blocks of columns
    finally:
        quantize.FOLD_BLOCK = saved
    assert parts[0].dtype == whole[0].dtype
    assert np.array_equal(parts[0], whole[0]) and np.array_equal(parts[1], whole[1])


@settings(max_examples=30, deadline=None, derandomize=True)
@given(rows=st.integers(1, 200), vocab=st.integers(2, 50), seed=st.integers(0, 2**16), spread=st.floats(0.1, 300))
def test_the_log_likelihood_in_row_blocks_equals_one_pass(rows, vocab, seed, spread):
    from spikelm.lm.evaluate import _nll

    rng = np.random.default_rng(seed)
    logits, targets = rng.standard_normal((rows, vocab)) * spread, rng.integers(0, vocab, rows)
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    assert _nll(logits, targets) == float(-logp[np.arange(rows), targets].sum())


def test_a_released_float_model_is_refused_in_one_line_and_the_graph_still_runs(wide_vocab):
    from spikelm.errors import ConfigError

    snn = convert(wide_vocab, calibration=token_ids(1, 40, VOCAB))
    ids = token_ids(5, 6, VOCAB)
    want = snn.reference(ids).logits
    assert snn.release_float() is snn and snn.params is None
    with pytest.raises(ConfigError, match="float model was released"):
        snn.float_logits(ids)
    assert np.array_equal(snn.simulate(ids).logits, want)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(L=st.integers(1, 12), heads=st.integers(1, 3), window=st.integers(0, 6), c=st.floats(1e-4, 1.0),
       bits=st.integers(2, 12), seed=st.integers(0, 2**16), spread=st.sampled_from([10, 2**10, 2**20]))
def test_the_reference_softmax_rows_equal_the_numpy_softmax(L, heads, window, c, bits, seed, spread):
    """The dense reference's row-by-row softmax (the executors' arithmetic) against the NumPy
    formula with its causal and window mask, on every row at once."""
    from spikelm.lm.ops.softmax import softmax, softmax_rows, tables

    rng = np.random.default_rng(seed)
    S = rng.integers(-spread, spread + 1, (L, heads, L))
    t, Q = tables(c, 16, 2**20), 2**bits - 1
    j, n = np.arange(L)[None, :], np.arange(L)[:, None]
    allowed = (j <= n) & ((n - j < window) if window else True)
    want = softmax(S, allowed[:, None, :], t.hi, t.lo, t.shift, Q)
    out = np.zeros((L, heads, L + 2), np.int64)
    softmax_rows(S, np.arange(L), window, t.hi, t.lo, int(t.shift), Q, out)
    assert np.array_equal(out[:, :, :L], want) and not out[:, :, L:].any()


@settings(max_examples=40, deadline=None, derandomize=True)
@given(L=st.integers(1, 6), n_in=st.integers(1, 30), n_out=st.integers(1, 40), block=st.integers(1, 200),
       seed=st.integers(0, 2**16), top=st.sampled_from([2**7, 2**15, 2**40]))
def test_imatmul_in_blocks_equals_python_integer_products(L, n_in, n_out, block, seed, top):
    """Blocks of float64 BLAS (or int64 past 2^53: ``top`` reaches it) against Python integers."""
    from spikelm.lm.edges import imatmul

    rng = np.random.default_rng(seed)
    x = rng.integers(-top, top, (L, n_in))
    W = rng.integers(-2**15, 2**15, (n_in, n_out)).astype(np.int16)
    want = np.array([[sum(int(x[i, k]) * int(W[k, j]) for k in range(n_in)) for j in range(n_out)]
                     for i in range(L)], dtype=object)
    got = imatmul(x, W, block=block)
    assert got.dtype == np.int64 and (got.astype(object) == want).all()


def test_the_reference_without_codes_gives_the_same_logits_and_holds_less(wide_vocab):
    snn = convert(wide_vocab, calibration=token_ids(1, 40, VOCAB))
    ids = token_ids(6, CTX - 1, VOCAB)
    full = snn.reference(ids)
    peaks = []
    for codes in (True, False):
        tracemalloc.start()
        try:
            ref = snn.reference(ids, codes=codes)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert np.array_equal(ref.logits, full.logits) and np.array_equal(ref.head_acc, full.head_acc)
    assert ref.codes == {} and len(full.codes) == len(snn.graph.pops) - 1
    kept = sum(c.nbytes for c in full.codes.values())
    assert peaks[1] < peaks[0] - kept / 2, (peaks, kept)
