"""How much each quantizer point matters: the empirical Fisher of a Llama-family model.

``fisher(cfg, params, windows, names)`` runs a torch twin of :func:`.forward.float_forward`
(float64 on the parameters' own memory, the same points under the same names, the config's
hooks of the families built on this decoder: Qwen3, Gemma) over calibration windows,
back-propagates the
next-token loss and returns, for each point in ``names``, the mean over positions of the
squared gradient per channel, ``F_j = E[(dL/dx_j)^2]``. A rounding error e_j at point x adds
about ``F_j e_j^2 / 2`` to the loss, so the steps of :mod:`spikelm.lm.methods.steps` are
chosen from F. Positions of the constant prefix are left out, as in calibration.

Torch is needed (the ``lm`` extra); the forward is checked against the NumPy one in the tests.
"""

from __future__ import annotations

import numpy as np

from spikelm.lm.families.llama import forward as F
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
    """:func:`.forward.float_forward` in torch (the config's hooks included), retaining the
    gradient at the points ``want``."""
    L, H, G, dh = len(ids), cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    half, grp, eps = dh // 2, H // G, cfg.rms_norm_eps
    act_name = F.ACT_POP[cfg.activation]

    def mark(name, x):
        if name in want:
            x.retain_grad()
            seen[name] = x
        return x

    def rms(x, name):
        w = P[name] + cfg.norm_offset
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w

    def softcap(x, cap):
        return x if cap is None else cap * torch.tanh(x / cap)

    def act(g):
        if cfg.activation == "silu":
            return torch.nn.functional.silu(g)
        return torch.nn.functional.gelu(g, approximate="tanh")

    x = P["model.embed_tokens.weight"][torch.from_numpy(ids)] * cfg.embed_scale
    x = mark("emb", x.clone().requires_grad_(True))
    for i in range(cfg.num_hidden_layers):
        p, n = f"model.layers.{i}.", f"h{i}."
        cos, sin = (torch.from_numpy(t)[:, None, :] for t in F.rope_tables(cfg, L, i))
        mask = torch.from_numpy(F.attention_mask(L, cfg.window(i)))

        def rope(x):
            x1, x2 = x[..., :half], x[..., half:]
            return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)

        def lin(h, name, bias=False):
            y = h @ P[p + name + ".weight"].T
            return y + P[p + name + ".bias"] if bias else y

        h = mark(n + "norm1", rms(x, p + "input_layernorm.weight"))
        b = cfg.attention_bias
        q = mark(n + "q", lin(h, "self_attn.q_proj", b)).reshape(L, H, dh)
        k = mark(n + "k", lin(h, "self_attn.k_proj", b)).reshape(L, G, dh)
        v = mark(n + "v", lin(h, "self_attn.v_proj", b)).reshape(L, G, dh)
        if cfg.qk_norm:
            q = mark(n + "qn", rms(q, p + "self_attn.q_norm.weight").reshape(L, H * dh)).reshape(L, H, dh)
            k = mark(n + "kn", rms(k, p + "self_attn.k_norm.weight").reshape(L, G * dh)).reshape(L, G, dh)
        q = mark(n + "qr", rope(q).reshape(L, H * dh)).reshape(L, H, dh).transpose(0, 1)
        k = mark(n + "kr", rope(k).reshape(L, G * dh)).reshape(L, G, dh).transpose(0, 1)
        k, v = k[torch.arange(H) // grp], v.transpose(0, 1)[torch.arange(H) // grp]
        s = softcap(q @ k.transpose(1, 2) / cfg.attn_divisor, cfg.attn_softcap).masked_fill(~mask, float("-inf"))
        o = mark(n + "ctx", (torch.softmax(s, -1) @ v).transpose(0, 1).reshape(L, H * dh))
        y = mark(n + "o", lin(o, "self_attn.o_proj", cfg.o_bias))
        if cfg.post_norms:
            y = mark(n + "onorm", rms(y, p + "post_attention_layernorm.weight"))
        x = mark(n + "res1", x + y)
        h = mark(n + "norm2", rms(x, p + ("pre_feedforward_layernorm" if cfg.post_norms
                                          else "post_attention_layernorm") + ".weight"))
        g = mark(n + "gate", lin(h, "mlp.gate_proj"))
        u = mark(n + "up", lin(h, "mlp.up_proj"))
        a = mark(n + "act", mark(n + act_name, act(g)) * u)
        y = mark(n + "down", lin(a, "mlp.down_proj"))
        if cfg.post_norms:
            y = mark(n + "dnorm", rms(y, p + "post_feedforward_layernorm.weight"))
        x = mark(n + "res2", x + y)
    h = mark("normf", rms(x, "model.norm.weight"))
    return softcap(h @ F.head_weight(cfg, P).T, cfg.final_softcap)
