"""The float forward of a :class:`~spikelm.lm.families.decoder.arch.Decoder`, NumPy float64: the
model the quantized one is measured against and the pass that calibrates it.

Its weights have the shared builder's names (a family maps its checkpoint's names to these,
weights [out, in] as torch's ``Linear``; a missing bias is none): ``emb.weight`` [vocab, d]
(an input projection folded in), ``pos.weight`` (learned positions), per layer ``hI.norm1``,
``hI.q``, ``hI.k``, ``hI.v``, ``hI.o``, ``hI.norm2``, ``hI.fc`` (or ``hI.gate`` and ``hI.up``),
``hI.down``, then ``normf``, ``proj_out`` and ``head``. Per layer (pre-norm)::

    h = norm1(x) ; q, k, v = h Wq + bq, h Wk + bk, h Wv + bv ; q, k = RoPE(q, n), RoPE(k, n)
    a = softmax(q k^T / sqrt(head_dim), causal) ; o = (a v) Wo + bo      (key/value head h // group)
    sequential: r = x + o ; x = r + mlp(norm2(r))      parallel: x = x + o + mlp(norm2(x))
    post-norm:  x = norm1(x + o) ; x = norm2(x + mlp(x))
    mlp(h) = act(h Wfc + bfc) Wdown + bdown,  or gated: (act(h Wgate) * (h Wup)) Wdown

RoPE rotates the first ``rotary_dim`` channels of each head (pairs i, i + rotary_dim / 2, angles
n / theta^(2i / rotary_dim)); the rest pass through.
"""

from __future__ import annotations

import math

import numpy as np

from spikelm.lm.activations import activation
from spikelm.lm.torch_optional import matmul


def rope_tables(arch, n_positions: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin [n_positions, rotary_dim / 2] of the angles n / theta^(2i / rotary_dim)."""
    r = arch.rotary_dim
    inv = 1.0 / (arch.rope_theta ** (np.arange(r // 2, dtype=np.float64) * 2 / r))
    ang = np.arange(n_positions, dtype=np.float64)[:, None] * inv[None, :]
    return np.cos(ang), np.sin(ang)


def rope(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotate the first 2 cos.shape[1] channels of [L, heads, head_dim] (rotate_half pairs)."""
    h = cos.shape[1]
    a, b = x[..., :h], x[..., h : 2 * h]
    c, s = cos[:, None, :], sin[:, None, :]
    return np.concatenate([a * c - b * s, b * c + a * s, x[..., 2 * h :]], axis=-1)


def norm(arch, x, W: dict, name: str):
    w = W[name + ".weight"]
    if arch.norm == "rmsnorm":
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + arch.norm_eps) * w
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + arch.norm_eps) * w + W[name + ".bias"]


def linear(W: dict, name: str, x):
    y = matmul(x, W[name + ".weight"].T)
    b = W.get(name + ".bias")
    return y if b is None else y + b


def float_forward(arch, W: dict, ids: np.ndarray, record=None, skip: int = 0) -> np.ndarray:
    """Float64 logits [L, vocab] of one sequence; ``record(name, x)`` sees every quantizer point
    (rows from ``skip`` on), named as the graph's populations."""
    def seen(name, x):
        if record is not None:
            record(name, x[skip:])
        return x

    L, H, G, dh = len(ids), arch.heads, arch.kv_heads, arch.head_dim
    x = W["emb.weight"][ids]
    if arch.learned_positions:
        x = x + W["pos.weight"][arch.position_offset : arch.position_offset + L]
    x = seen("emb", x)
    cos, sin = rope_tables(arch, L) if arch.rotary_dim else (None, None)
    mask = np.tril(np.ones((L, L), dtype=bool))
    act = activation(arch.activation)
    for i in range(arch.n_layer):
        n = f"h{i}."

        def attention(h):
            q = seen(n + "q", linear(W, n + "q", h))
            k = seen(n + "k", linear(W, n + "k", h))
            v = seen(n + "v", linear(W, n + "v", h)).reshape(L, G, dh).transpose(1, 0, 2)
            if arch.rotary_dim:
                q = seen(n + "qr", rope(q.reshape(L, H, dh), cos, sin).reshape(L, H * dh))
                k = seen(n + "kr", rope(k.reshape(L, G, dh), cos, sin).reshape(L, G * dh))
            q = q.reshape(L, H, dh).transpose(1, 0, 2)
            grp = np.arange(H) // (H // G)
            k, vh = k.reshape(L, G, dh).transpose(1, 0, 2)[grp], v[grp]
            s = np.where(mask, matmul(q, k.transpose(0, 2, 1)) / math.sqrt(dh), -np.inf)
            a = np.exp(s - s.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            o = seen(n + "ctx", matmul(a, vh).transpose(1, 0, 2).reshape(L, H * dh))
            return seen(n + "o", linear(W, n + "o", o))

        def mlp(h):
            if arch.gated:
                g = seen(n + "gate", linear(W, n + "gate", h))
                u = seen(n + "up", linear(W, n + "up", h))
                a = seen(n + "act", seen(n + "gate_act", act(g)) * u)
            else:
                a = seen(n + "act", act(seen(n + "fc", linear(W, n + "fc", h))))
            return seen(n + "down", linear(W, n + "down", a))

        if not arch.norm_before:
            x = seen(n + "norm1", norm(arch, seen(n + "res1", x + attention(x)), W, n + "norm1"))
            x = seen(n + "norm2", norm(arch, seen(n + "res2", x + mlp(x)), W, n + "norm2"))
        elif arch.parallel_residual:
            o = attention(seen(n + "norm1", norm(arch, x, W, n + "norm1")))
            x = seen(n + "res", x + o + mlp(seen(n + "norm2", norm(arch, x, W, n + "norm2"))))
        else:
            r = seen(n + "res1", x + attention(seen(n + "norm1", norm(arch, x, W, n + "norm1"))))
            x = seen(n + "res2", r + mlp(seen(n + "norm2", norm(arch, r, W, n + "norm2"))))
    if arch.final_norm:
        x = seen("normf", norm(arch, x, W, "normf"))
    if arch.proj_out:
        x = seen("proj_out", linear(W, "proj_out", x))
    return matmul(x, W["head.weight"].T)
