"""Small random GPT-2-style models for the lm tests (no download, seeded); no tests here."""

from __future__ import annotations

import numpy as np
import torch

from spikelm.lm import GPTConfig, TinyGPT


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
