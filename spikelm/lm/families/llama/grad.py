"""How much each quantizer point matters: the empirical Fisher of a Llama-family model.

``fisher(cfg, params, windows, names)`` runs a torch twin of :func:`.forward.float_forward`
(float64 on the parameters' own memory, the same points under the same names) over
calibration windows, back-propagates the
next-token loss and returns, for each point in ``names``, the mean over positions of the
squared gradient per channel, ``F_j = E[(dL/dx_j)^2]``. A rounding error e_j at point x adds
about ``F_j e_j^2 / 2`` to the loss, so the steps of :mod:`spikelm.lm.methods.steps` are
chosen from F. Positions of the constant prefix are left out, as in calibration.

Torch is needed (the ``lm`` extra); the forward is checked against the NumPy one in the tests.
"""

from __future__ import annotations

import math

import numpy as np

from spikelm.lm.torch_optional import require_torch


def fisher(cfg, params: dict, windows, names, skip: int = 0) -> dict:
    """Mean squared loss gradient per channel at the points ``names`` (float64 arrays)."""
    torch = require_torch("the fisher method (on by default; --methods row-exponents converts without torch)")
    P = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in params.items()}  # no copy
    want = set(names)
    total = {n: 0.0 for n in want}
    count = 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for ids in windows:
            seen = {}
            with torch.enable_grad():
                logits = _forward(torch, cfg, P, np.asarray(ids, dtype=np.int64), want, seen)
                lp = torch.log_softmax(logits[skip:-1], -1)
                target = torch.from_numpy(np.asarray(ids[skip + 1:], dtype=np.int64))
                loss = -lp.gather(1, target[:, None]).sum()
                loss.backward()
            for n, x in seen.items():
                g = x.grad[skip:].double()
                total[n] = total[n] + (g * g).reshape(g.shape[0], -1).sum(0).numpy()
            count += len(ids) - skip
    finally:
        torch.set_num_threads(threads)
    return {n: np.asarray(v, dtype=np.float64) / max(count, 1) for n, v in total.items()}


def _forward(torch, cfg, P, ids, want, seen):
    """The float forward of :mod:`.forward` in torch, retaining the gradient at the points ``want``."""
    L, H, G, dh = len(ids), cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    half = dh // 2
    inv = 1.0 / (cfg.rope_theta ** (torch.arange(half, dtype=torch.float64) * 2 / dh))
    ang = torch.arange(L, dtype=torch.float64)[:, None] * inv[None, :]
    cos, sin = ang.cos()[:, None, :], ang.sin()[:, None, :]
    eps = cfg.rms_norm_eps

    def mark(name, x):
        if name in want:
            x.retain_grad()
            seen[name] = x
        return x

    def rms(x, w):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w

    def rope(x):
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)

    x = P["model.embed_tokens.weight"][torch.from_numpy(ids)].clone().requires_grad_(True)
    x = mark("emb", x)
    mask = torch.ones(L, L, dtype=torch.bool).tril()
    group = torch.arange(H) // (H // G)
    for i in range(cfg.num_hidden_layers):
        p, n = f"model.layers.{i}.", f"h{i}."

        def lin(h, name, bias=False):
            y = h @ P[p + name + ".weight"].T
            return y + P[p + name + ".bias"] if bias else y

        h = mark(n + "norm1", rms(x, P[p + "input_layernorm.weight"]))
        b = cfg.attention_bias
        q = mark(n + "q", lin(h, "self_attn.q_proj", b)).reshape(L, H, dh)
        k = mark(n + "k", lin(h, "self_attn.k_proj", b)).reshape(L, G, dh)
        v = mark(n + "v", lin(h, "self_attn.v_proj", b)).reshape(L, G, dh)
        q = mark(n + "qr", rope(q).reshape(L, H * dh)).reshape(L, H, dh).transpose(0, 1)
        k = mark(n + "kr", rope(k).reshape(L, G * dh)).reshape(L, G, dh).transpose(0, 1)
        k, v = k[group], v.transpose(0, 1)[group]
        s = (q @ k.transpose(1, 2) / math.sqrt(dh)).masked_fill(~mask, float("-inf"))
        a = torch.softmax(s, -1)
        o = mark(n + "ctx", (a @ v).transpose(0, 1).reshape(L, H * dh))
        x = mark(n + "res1", x + mark(n + "o", lin(o, "self_attn.o_proj")))
        h = mark(n + "norm2", rms(x, P[p + "post_attention_layernorm.weight"]))
        g = mark(n + "gate", lin(h, "mlp.gate_proj"))
        u = mark(n + "up", lin(h, "mlp.up_proj"))
        sg = mark(n + "silu", torch.nn.functional.silu(g))
        act = mark(n + "act", sg * u)
        x = mark(n + "res2", x + mark(n + "down", lin(act, "mlp.down_proj")))
    h = mark("normf", rms(x, P["model.norm.weight"]))
    head = P["model.embed_tokens.weight"] if cfg.tie_word_embeddings else P["lm_head.weight"]
    return h @ head.T
