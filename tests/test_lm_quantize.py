"""Quantizers, the SignedIF neuron, operators (numpy vs numba), and the reference against an
independent fake-quantized torch forward (issue 4, 2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from test_lm_helpers import random_hf_gpt2, random_tiny_gpt, token_ids
from spikelm.lm import convert
from spikelm.lm.families.gpt2.forward import gelu
from spikelm.lm.neuron import requantize, signed_if_step, signed_if_step_nb
from spikelm.lm.ops.layernorm import layernorm, layernorm_row
from spikelm.lm.ops.softmax import softmax, softmax_row, tables
from spikelm.lm.quantize import quantize, round_half_up, weight_codes


def test_round_half_up_and_clamp():
    assert round_half_up([-1.5, -0.5, 0.5, 1.5, 2.49]).tolist() == [-1, 0, 1, 2, 2]
    assert quantize(np.array([-10.0, 0.26, 10.0]), 0.5, -3, 3).tolist() == [-3, 1, 3]


def test_weight_codes_per_output_channel():
    w = np.array([[1.0, -0.01], [-2.0, 0.02]])
    codes, s = weight_codes(w)
    assert codes.dtype == np.int8 and np.allclose(s, [2 / 127, 0.02 / 127])
    assert codes[:, 0].tolist() == [64, -127] and codes[:, 1].tolist() == [-64, 127]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(0, 30), st.integers(0, 2**32 - 1))
def test_signed_if_numba_matches_numpy_and_settles_to_code(n, shift, seed):
    rng = np.random.default_rng(seed)
    acc = rng.integers(-(2**20), 2**20, n).astype(np.int32)
    gain = rng.integers(-(2**12), 2**12, n).astype(np.int64)
    offset = rng.integers(-(2**30), 2**30, n).astype(np.int64)
    count = rng.integers(-7, 8, n).astype(np.int32)
    a = signed_if_step(acc, count, gain, offset, shift, -7, 7)
    b = signed_if_step_nb(acc, count, gain, offset, shift, -7, 7, 0)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    for _ in range(20):  # at most 14 steps from any count to any code
        s, count = signed_if_step(acc, count, gain, offset, shift, -7, 7)
    assert not s.any()
    assert np.array_equal(count, requantize(acc, gain, offset, shift, -7, 7))


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.int64, st.integers(1, 64), elements=st.integers(-127, 127)),
       st.floats(1e-3, 10), st.floats(1e-9, 1e3), st.integers(0, 2**32 - 1))
def test_layernorm_numba_equals_numpy(x, g, eps, seed):
    rng = np.random.default_rng(seed)
    gain = rng.normal(0, g, x.size)
    bias = rng.normal(0, g, x.size)
    out = np.zeros(x.size, np.int64)
    layernorm_row(x, gain, bias, eps, -127, 127, out)
    assert np.array_equal(out, layernorm(x, gain, bias, eps, -127, 127))
    assert np.array_equal(layernorm(x[None].repeat(3, 0), gain, bias, eps, -127, 127)[1], out)


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.int64, st.integers(1, 32), elements=st.integers(-(2**20), 2**20)),
       st.floats(1e-6, 1.0), st.integers(2, 8))
def test_softmax_numba_equals_numpy_and_approximates_float(S, c, bits):
    t = tables(c, 16, 2**20)
    hi, lo, shift = t.hi, t.lo, t.shift
    Q = 2**bits - 1
    out = np.zeros(S.size, np.int64)
    softmax_row(S, S.size - 1, hi, lo, shift, Q, out)
    ref = softmax(S, np.ones(S.size, bool), hi, lo, shift, Q)
    assert np.array_equal(out, ref)
    p = np.exp(-c * (S.max() - S))
    p /= p.sum()
    assert np.abs(ref / Q - p).max() <= 0.5 / Q + 1e-9


def fake_quant_forward(snn, model_params, ids):
    """An independent float64 torch forward that rounds at every quantizer point."""
    cfg = snn.config
    s = snn.graph.meta["scales"]
    P = {k: torch.tensor(v, dtype=torch.float64) for k, v in model_params.items()}
    prec = snn.bits
    # the point groups, written out here from docs/lm.md (independent of the builder's table)
    group = {"emb": "res", "ln1": "lin", "q": "oth", "k": "oth", "v": "oth", "att": "att", "ctx": "lin",
             "proj": "oth", "res1": "res", "ln2": "lin", "fc": "oth", "gelu": "act", "fc2": "oth",
             "res2": "res", "lnf": "lin"}

    def fq(x, name):
        g = group[name.rsplit(".", 1)[-1]]
        b = getattr(prec, g)
        lo, hi = (0, 2**b - 1) if g == "att" else (-(2 ** (b - 1) - 1), 2 ** (b - 1) - 1)
        return torch.clamp(torch.floor(x / s[name] + 0.5), lo, hi) * s[name]

    def fqw(w):  # [n_in, n_out], per output channel
        codes, sw = weight_codes(w.numpy())
        return torch.tensor(codes.astype(np.float64) * sw[None])

    def ln(x, w, b):
        return torch.nn.functional.layer_norm(x, (cfg.n_embd,), w, b, cfg.layer_norm_epsilon)

    L, d, H, dh = len(ids), cfg.n_embd, cfg.n_head, cfg.head_dim
    t = torch.tensor(ids)
    x = fq(P["transformer.wte.weight"][t] + P["transformer.wpe.weight"][:L], "emb")
    mask = torch.ones(L, L, dtype=torch.bool).tril()
    for i in range(cfg.n_layer):
        p, n = f"transformer.h.{i}.", f"h{i}."
        h = fq(ln(x, P[p + "ln_1.weight"], P[p + "ln_1.bias"]), n + "ln1")
        W, b = P[p + "attn.c_attn.weight"], P[p + "attn.c_attn.bias"]
        q, k, v = (fq(h @ fqw(W[:, j * d:(j + 1) * d]) + b[j * d:(j + 1) * d], n + nm) for j, nm in enumerate("qkv"))
        q, k, v = (z.reshape(L, H, dh).transpose(0, 1) for z in (q, k, v))
        a = torch.softmax((q @ k.transpose(1, 2) / math.sqrt(dh)).masked_fill(~mask, -torch.inf), -1)
        a = fq(a, n + "att")
        o = fq((a @ v).transpose(0, 1).reshape(L, d), n + "ctx")
        x = fq(x + fq(o @ fqw(P[p + "attn.c_proj.weight"]) + P[p + "attn.c_proj.bias"], n + "proj"), n + "res1")
        h = fq(ln(x, P[p + "ln_2.weight"], P[p + "ln_2.bias"]), n + "ln2")
        f = fq(h @ fqw(P[p + "mlp.c_fc.weight"]) + P[p + "mlp.c_fc.bias"], n + "fc")
        g = fq(gelu(f, cfg.activation_function), n + "gelu")
        y = fq(g @ fqw(P[p + "mlp.c_proj.weight"]) + P[p + "mlp.c_proj.bias"], n + "fc2")
        x = fq(x + y, n + "res2")
    h = fq(ln(x, P["transformer.ln_f.weight"], P["transformer.ln_f.bias"]), "lnf")
    wh = P["transformer.wte.weight"] if cfg.tie_word_embeddings else P["lm_head.weight"]
    return (h @ fqw(wh.T)).numpy()


@pytest.mark.parametrize("bits", [8, 6, 4, "lin=6,act=7,res=12,att=10,oth=5"])
@pytest.mark.parametrize("kind", ["tiny", "hf"])
def test_reference_matches_fake_quantized_torch_forward(bits, kind):
    make = random_tiny_gpt if kind == "tiny" else random_hf_gpt2
    model = make(11, vocab=50, ctx=16, width=32, layers=2, heads=4, std=0.3)
    snn = convert(model, calibration=token_ids(1, 64, 50), bits=bits)
    ids = token_ids(2, 16, 50)
    ref = snn.reference(ids).logits
    fq = fake_quant_forward(snn, snn.params, ids)
    assert np.abs(ref - fq).max() <= 1e-6 * np.abs(fq).max()
    # and the quantized model stays near the float one (coarser at fewer bits)
    flt = snn.float_logits(ids)
    assert np.abs(ref - flt).max() <= {8: 0.15, 6: 0.5, 4: 2.0}.get(bits, 1.0) * np.abs(flt).max()
