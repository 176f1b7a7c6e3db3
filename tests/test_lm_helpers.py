"""Shared helpers of the lm tests (no tests here): small random GPT-2 models (no
download, seeded), the run snapshot and the one agreement helper, and example counts that
scale with the hypothesis profile."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import settings

from helpers import assert_agree
from spikelm.lm import GPTConfig, TinyGPT


def scaled(n: int) -> int:
    """``n`` examples under the default hypothesis profile, proportionally more under
    ``HYPOTHESIS_PROFILE=thorough`` (its max_examples / the default's 100)."""
    return max(1, n * settings.default.max_examples // 100)


def lm_snapshot(sim) -> dict:
    """Everything an event-driven LM run produced that backends must agree on, as arrays."""
    snap = {"logits": sim.logits, "steps": sim.steps}
    for field in ("synops", "spikes_pos", "spikes_neg", "op_evals", "shift_adds"):
        d = getattr(sim, field)
        snap[field] = np.array([d[k] for k in sorted(d)], dtype=np.int64)
    for name, c in sim.counts.items():
        snap[f"counts/{name}"] = c
    if sim.events is not None:
        for name, a in zip(("steps", "pops", "nodes", "values"), sim.events):
            snap[f"events/{name}"] = a
    return snap


def assert_lm_agree(ref, got):
    """Two LM runs agree bit for bit (integers and the float64 logits alike)."""
    a, b = lm_snapshot(ref), lm_snapshot(got)
    assert a.keys() == b.keys(), f"different records: {sorted(a)} vs {sorted(b)}"
    for key in a:
        assert_agree(a[key], b[key], ulps=0, what=key)


def assert_matches_reference(snn, ids, run, ref=None):
    """Simulated logits equal the reference's bit for bit, and every spike count its code."""
    ref = snn.reference(ids) if ref is None else ref
    assert run.logits.dtype == np.float64 and run.logits.shape == (len(ids), snn.graph.vocab_size)
    assert np.array_equal(run.logits, ref.logits)
    for name, codes in ref.codes.items():
        assert np.array_equal(run.counts[name], codes), name


def random_tiny_gpt(seed, vocab=40, ctx=12, width=16, layers=1, heads=2, std=0.3, tied=True,
                    activation="gelu_new", inner=None):
    """A TinyGPT with large random weights (so that codes use their whole range)."""
    torch.manual_seed(seed)
    cfg = GPTConfig(vocab_size=vocab, n_positions=ctx, n_embd=width, n_layer=layers,
                    n_head=heads, tie_word_embeddings=tied, activation_function=activation, n_inner=inner)
    model = TinyGPT(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name.endswith("ln_f.weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))
    return model.eval()


def random_hf_gpt2(seed, vocab=40, ctx=12, width=16, layers=1, heads=2, std=0.3):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab, n_positions=ctx, n_embd=width, n_layer=layers, n_head=heads,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(cfg).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif not name.startswith("lm_head"):
                p.copy_(std * torch.randn(p.shape, generator=g))
    return model


def token_ids(seed, n, vocab):
    return np.random.default_rng(seed).integers(0, vocab, size=n)
