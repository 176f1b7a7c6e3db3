"""The ``rotate`` method: an orthogonal rotation of the residual stream folded into the weights.

For an orthogonal Q (d x d), a Llama-family model computes the same function on the rotated
stream x' = x Q once every RMSNorm gain is folded into the rows that read the norm (then
RMSNorm(x Q) = RMSNorm(x) Q): the embedding becomes E Q, the layers' input projections
W diag(g) Q, the projections that write the stream (o, down) Q^T W, and the head
W diag(g_f) Q (untied: the embedding and the head no longer share a matrix). The float
logits are unchanged up to rounding (tested to 1e-5 relative); the quantized model changes:
every linear input is a mixture of all residual channels (QuaRot, SpinQuant).

Not built for models with post norms (Gemma 2 and 3): refused in one line.

Q is a Hadamard matrix where one of order d is built here (d = 2^a 12^b), else a seeded
random orthogonal matrix (QR of a Gaussian matrix).
"""

from __future__ import annotations

import math

import numpy as np

from spikelm.errors import ConfigError


def paley12() -> np.ndarray:
    """A Hadamard matrix of order 12 (Paley's construction over GF(11))."""
    q = 11
    residues = {(i * i) % q for i in range(1, q)}
    chi = np.array([0] + [1 if i in residues else -1 for i in range(1, q)])
    S = np.zeros((12, 12))
    S[0, 1:] = 1
    S[1:, 0] = -1
    S[1:, 1:] = chi[(np.arange(q)[None, :] - np.arange(q)[:, None]) % q]
    return S + np.eye(12)


def hadamard(n: int) -> np.ndarray | None:
    """A normalized Hadamard matrix of order n = 2^a 12^b, or None."""
    B = np.ones((1, 1))
    k = n
    while k % 12 == 0 and k & (k - 1):
        B = np.kron(B, paley12())
        k //= 12
    if k & (k - 1):
        return None
    H = np.ones((1, 1))
    while H.shape[0] < k:
        H = np.block([[H, H], [H, -H]])
    return np.kron(B, H) / math.sqrt(n)


def rotation(n: int, seed: int = 0) -> np.ndarray:
    """The rotation the method uses for width n (see the module docstring)."""
    H = hadamard(n)
    if H is not None:
        return H
    Q, R = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return Q * np.sign(np.diag(R))[None, :]


def rotate(cfg, params: dict, Q: np.ndarray | None = None) -> tuple[object, dict]:
    """``(cfg', params')``: the model with its residual stream rotated by Q (default
    :func:`rotation`); cfg' is cfg with an untied head."""
    import dataclasses

    if cfg.post_norms:
        raise ConfigError(f"methods: 'rotate' is not built for {cfg.model_type} models (their RMSNorm of each "
                          "sublayer's output does not commute with a rotation of the residual stream); leave it out")
    Q = rotation(cfg.hidden_size) if Q is None else Q
    off = cfg.norm_offset  # stored weights w, gains off + w (Gemma: 1 + w)
    P = dict(params)
    P["model.embed_tokens.weight"] = params["model.embed_tokens.weight"] @ Q
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        for norm, names in (("input_layernorm", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")),
                            ("post_attention_layernorm", ("mlp.gate_proj", "mlp.up_proj"))):
            g = params[p + norm + ".weight"] + off
            for nm in names:
                P[p + nm + ".weight"] = (params[p + nm + ".weight"] * g[None, :]) @ Q
            P[p + norm + ".weight"] = np.full_like(g, 1.0 - off)  # gains of 1
        for nm in ("self_attn.o_proj", "mlp.down_proj"):
            P[p + nm + ".weight"] = Q.T @ params[p + nm + ".weight"]
        if cfg.o_bias:  # it is written to the stream too
            P[p + "self_attn.o_proj.bias"] = params[p + "self_attn.o_proj.bias"] @ Q
    head = params["model.embed_tokens.weight"] if cfg.tie_word_embeddings else params["lm_head.weight"]
    gf = params["model.norm.weight"] + off
    P["lm_head.weight"] = (head * gf[None, :]) @ Q
    P["model.norm.weight"] = np.full_like(gf, 1.0 - off)
    return dataclasses.replace(cfg, tie_word_embeddings=False), P
