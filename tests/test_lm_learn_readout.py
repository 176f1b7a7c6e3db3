"""The readout rule (``readout_error``, issue 25): against an independent transcription of its
equations, numpy == numba bit for bit, zero rates change nothing, checkpoint + resume go on
identically, the dense replay is the spiking run's learning, and it lowers perplexity on a
repetitive text (where a wrong sign or scale would raise it)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_lm_helpers import assert_lm_agree, random_tiny_gpt, scaled, token_ids
from spikelm.errors import ConfigError
from spikelm.lm import convert
from spikelm.lm.learn import kernels as K
from spikelm.lm.learn import reference as R
from spikelm.lm.learn.attach import attach
from spikelm.lm.learn.config import Plasticity
from spikelm.lm.learn.replay import readout_codes, replay
from spikelm.lm.learn.session import Learning
from spikelm.lm.learn.state import LearnState

VOCAB = 30


def tiny(seed=3, coding="signed_digit", bits=6, ctx=12, width=16):
    model = random_tiny_gpt(seed, vocab=VOCAB, ctx=ctx, width=width, layers=1, heads=2)
    return convert(model, calibration=token_ids(seed + 1, 40, VOCAB), bits=bits, coding=coding)


def readout(**fields):
    return {"projections": {"head": {"plasticity": {"rule": "readout_error", **fields}}}}


def nll(logits, ids):
    m = logits.max(axis=1)
    return m[:-1] + np.log(np.exp(logits[:-1] - m[:-1, None]).sum(axis=1)) - logits[np.arange(len(ids) - 1), ids[1:]]


# ---------------------------------------------------------------- the equations


def transcribe(c, acc, scale, b, b0, y, wm, w0, qw, eta, eta_b, thr, lam):
    """The rule as the docs write it (ReadoutError's docstring), with NumPy's own exp and sums."""
    z = acc * scale + b
    p = np.exp(z - z.max())
    e = p / p.sum()
    e[y] -= 1
    learns = (np.abs(e) >= thr) | (np.arange(e.size) == y)
    c = c.astype(np.float64)
    wm, b = wm.copy(), b.copy()
    if lam > 0:
        wm[:, learns] = w0[:, learns] + (1 - lam) * (wm[:, learns] - w0[:, learns])
        b[learns] = b0[learns] + (1 - lam) * (b[learns] - b0[learns])
    if (c * c).sum() > 0:
        wm[:, learns] -= eta * np.outer(c, e[learns] / scale[learns]) / (c * c).sum()
    b[learns] -= eta_b * e[learns]
    return wm, np.clip(np.floor(wm + 0.5), -qw, qw), b


@st.composite
def cases(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    npre, npost = draw(st.integers(1, 9)), draw(st.integers(2, 40))
    c = rng.integers(-20, 21, npre) * (rng.random(npre) < draw(st.sampled_from([0.0, 0.5, 1.0])))
    w0 = rng.integers(-100, 101, (npre, npost))
    wm = w0 + rng.normal(0, draw(st.sampled_from([0.0, 3.0])), w0.shape)
    acc = (c @ w0).astype(np.int64)
    scale = rng.uniform(0.001, 0.1, npost)
    b0 = rng.normal(0, 1, npost)
    b = b0 + rng.normal(0, 0.1, npost)
    y = int(rng.integers(0, npost))
    rates = dict(eta=draw(st.sampled_from([0.0, 0.1, 0.9])), eta_b=draw(st.sampled_from([0.0, 0.3])),
                 thr=draw(st.sampled_from([0.0, 0.01, 0.2, 1.0])), lam=draw(st.sampled_from([0.0, 0.05])))
    return c.astype(np.int16), acc, scale, b, b0, y, wm, w0.astype(np.int8 if npre < 5 else np.int16), 127, rates


def _run(kernel, c, acc, scale, b, b0, y, wm, w0, qw, rates):
    npre, npost = w0.shape
    W = np.concatenate([np.full(3, 7), np.clip(np.floor(wm.reshape(-1) + 0.5), -qw, qw)]).astype(w0.dtype)
    ro_i = np.zeros(K.RI, np.int64)
    ro_i[[K.R_ON, K.R_WOFF, K.R_NPRE, K.R_NPOST, K.R_QW]] = 1, 3, npre, npost, qw
    ro_f = np.array([rates["eta"], rates["eta_b"], rates["thr"], rates["lam"]])
    wm, b, lcnt = wm.reshape(-1).copy(), b.copy(), np.zeros(2, np.int64)
    kernel(c, acc, scale, b, b0, y, wm, w0.reshape(-1), W, ro_i, ro_f, lcnt)
    return wm.reshape(npre, npost), W[3:].reshape(npre, npost), b, lcnt, W[:3]


@settings(max_examples=scaled(80))
@given(cases())
def test_readout_rule_matches_its_equations_and_numpy_equals_numba(case):
    c, acc, scale, b, b0, y, wm, w0, qw, rates = case
    ref = _run(R.readout_learn, *case)
    nb = _run(K.readout_learn, *case)
    for x, z in zip(ref, nb):
        assert np.array_equal(x, z)  # bit for bit
    want_wm, want_W, want_b = transcribe(c, acc, scale, b, b0, y, wm, w0, qw, rates["eta"], rates["eta_b"],
                                         rates["thr"], rates["lam"])
    assert np.allclose(ref[0], want_wm, rtol=1e-12, atol=1e-9)
    assert np.allclose(ref[2], want_b, rtol=1e-12, atol=1e-12)
    near_half = np.abs(want_wm - np.floor(want_wm) - 0.5) < 1e-6  # rounding ties may go either way
    assert np.array_equal(ref[1][~near_half], want_W[~near_half])
    assert ref[4].tolist() == [7, 7, 7]  # other projections' rows untouched


def test_the_update_moves_each_learning_logit_by_minus_eta_times_its_error():
    rng = np.random.default_rng(1)
    c = rng.integers(-9, 10, 6).astype(np.int16)
    w0 = rng.integers(-50, 51, (6, 8)).astype(np.int16)
    wm = w0.astype(np.float64)
    scale, b = rng.uniform(0.01, 0.1, 8), np.zeros(8)
    acc = (c.astype(np.int64) @ w0).astype(np.int64)
    z = acc * scale
    e = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    e[2] -= 1
    got, _, _, _, _ = _run(K.readout_learn, c, acc, scale, b, b.copy(), 2, wm, w0, 127,
                           dict(eta=0.3, eta_b=0.0, thr=0.0, lam=0.0))
    assert np.allclose((c @ got) * scale - z, -0.3 * e, atol=1e-12)


# ---------------------------------------------------------------- in the running network


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_readout_rule_at_zero_rates_changes_nothing(backend):
    snn = tiny(5)
    ids = token_ids(5, 9, VOCAB)
    ref = snn.simulate(ids, backend=backend, record=True)
    run = Learning(snn, readout(eta=0.0, eta_bias=0.0, threshold=0.0), backend)
    sim = run.feed(ids, record=True)
    assert_lm_agree(ref, sim)
    s = run.state.stats()
    assert s["readout_w_changed"] == 0 and s["readout_db_max"] == 0 and s["learn_ops"] > 0


@settings(max_examples=scaled(6), deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([0.0, 0.01]))
def test_readout_learning_is_identical_on_numpy_and_numba_and_equals_the_replay(seed, lam):
    snn = tiny(seed % 7)
    ids = token_ids(seed, 11, VOCAB)
    pl = readout(eta=0.5, eta_bias=0.2, threshold=0.01, decay=lam)
    runs = {be: Learning(snn, pl, be) for be in ("numpy", "numba")}
    sims = {be: r.feed(ids) for be, r in runs.items()}
    assert np.array_equal(sims["numpy"].logits, sims["numba"].logits)
    for k, v in runs["numpy"].state.state_dict().items():
        assert np.array_equal(runs["numba"].state.state_dict()[k], v), k
    st_ = LearnState(attach(snn.graph, Plasticity.from_dict(pl)))
    got = replay(st_, [ids], readout_codes(st_.graph, [ids]))
    assert np.array_equal(got, nll(sims["numba"].logits, ids))
    assert np.array_equal(st_.W, runs["numba"].state.W) and np.array_equal(st_.a["rb"], runs["numba"].state.a["rb"])
    assert runs["numba"].state.stats()["readout_w_changed"] > 0


@pytest.mark.parametrize("backends", [("numba", "numba"), ("numpy", "numba")])
def test_checkpoint_and_resume_with_the_readout_rule_continue_identically(backends, tmp_path):
    snn = tiny(6)
    ids = token_ids(6, 11, VOCAB)
    pl = readout(eta=0.4, eta_bias=0.1, threshold=0.0, decay=0.02)
    straight = Learning(snn, pl, "numba")
    whole = straight.feed(ids)
    first = Learning(snn, pl, backends[0])
    first.feed(ids[:5])
    first.save_checkpoint(tmp_path / "ck.h5")
    again = Learning.resume(snn, tmp_path / "ck.h5", backends[1])
    rest = again.feed(ids[5:])  # the pending update of token 4 runs before token 5, as uninterrupted
    assert np.array_equal(rest.logits, whole.logits[5:])
    for key, v in straight.state.state_dict().items():
        assert np.array_equal(again.state.state_dict()[key], v), key


def test_readout_learning_lowers_perplexity_on_a_repetitive_text():
    """A random tiny LM reads a text that repeats a phrase: learning at the readout must make
    the second half more likely than the frozen model finds it (a wrong sign or scale in the
    rule makes it less likely; eta = 0 leaves it equal)."""
    snn = tiny(8, ctx=48)
    phrase = token_ids(9, 7, VOCAB)
    ids = np.tile(phrase, 7)[:48]
    frozen = nll(snn.simulate(ids).logits, ids)
    run = Learning(snn, readout(eta=0.3, eta_bias=0.1), "numba")
    learned = nll(run.feed(ids, drift=False).logits, ids)
    half = len(ids) // 2
    ppl = lambda x: float(np.exp(x[half:].mean()))
    assert ppl(learned) < 0.8 * ppl(frozen)
    run.set_enabled(False)  # after learning, frozen, a new reading of the text is still better
    run.new_sequence()
    assert ppl(nll(run.feed(ids, drift=False).logits, ids)) < ppl(frozen)


@pytest.mark.parametrize("table, needle", [
    ({"projections": {"h0.fc": {"plasticity": {"rule": "readout_error"}}}},
     "rule 'readout_error' cannot act on the projection into h0.fc; it applies to the projection into the readout"),
    (readout(threshold=2.0), "projections.head.plasticity.threshold: must be in [0, 1], got 2.0"),
    (readout(decay=1.0), "projections.head.plasticity.decay: must be in [0, 1), got 1.0"),
    (readout(eta=-1.0), "projections.head.plasticity.eta: must be >= 0"),
    (readout(gamma=1.0), "gamma"),
])
def test_bad_readout_rules_are_one_line_naming_the_field(table, needle):
    snn = tiny(2)
    with pytest.raises(ConfigError) as e:
        Learning(snn, table)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_a_glob_puts_the_readout_rule_on_the_readout_only():
    snn = tiny(2)
    st_ = LearnState(attach(snn.graph, Plasticity.from_dict(
        {"projections": {"*": {"plasticity": {"rule": "readout_error"}}}})))
    assert [snn.graph.projections[k].post for k, _, _ in st_.attached.readout] == [snn.graph.readout]
    assert st_.attached.projections == []


def test_a_model_folder_learned_at_the_readout_reads_back_as_learned(tmp_path):
    model = random_tiny_gpt(12, vocab=VOCAB, ctx=12, width=16, layers=1, heads=2)
    calib = token_ids(13, 40, VOCAB)
    snn = convert(model, calibration=calib, bits=6)
    run = Learning(snn, readout(eta=0.5, eta_bias=0.3, threshold=0.0))
    run.feed(token_ids(14, 10, VOCAB))
    back = convert(run.save_model(tmp_path / "learned"), calibration=calib, bits=6)
    k = run.state.readout_k
    assert np.array_equal(back.graph.projections[k].weights, run.state.weights(k))
    assert np.array_equal(back.graph.pops[back.graph.readout].params.bias, run.state.a["rb"])
    ids = token_ids(15, 6, VOCAB)
    run.set_enabled(False)  # the learned model runs as the learning one does with its rule off
    run.new_sequence()
    learned = run.feed(ids).logits
    assert np.array_equal(learned, back.simulate(ids).logits)
    assert not np.array_equal(learned, snn.simulate(ids).logits)


def test_state_saved_before_the_readout_rule_still_loads_and_a_missing_readout_state_is_refused():
    from spikelm.errors import CheckpointMismatchError

    snn = tiny(4)
    plain = LearnState(attach(snn.graph, Plasticity.from_dict(
        {"populations": {"h0.v": {"plasticity": {"rule": "target_spikes"}}}})))
    old = {k: v for k, v in plain.state_dict().items() if k not in ("rwm", "rb")}
    plain.load_state_dict(old)
    ro = LearnState(attach(snn.graph, Plasticity.from_dict(readout())))
    with pytest.raises(CheckpointMismatchError, match="learned state 'rwm' is missing"):
        ro.load_state_dict({k: v for k, v in ro.state_dict().items() if k != "rwm"})
