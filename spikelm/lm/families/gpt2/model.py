"""spikelm's small GPT-2 decoder (PyTorch): the model ``scripts/train_tiny_lm.py`` trains into the demo.

The module keeps the parameter names and layouts of Hugging Face's ``GPT2LMHeadModel``
(``transformer.h.0.attn.c_attn.weight`` is ``[n_embd, 3 n_embd]``, applied as ``x @ W + b``),
so its state dict converts, saves and loads exactly like a GPT-2 checkpoint.

torch is optional (the ``lm`` extra): only building a :class:`TinyGPT` needs it.
"""

from __future__ import annotations

import math

from spikelm.lm.families.gpt2.config import GPTConfig
from spikelm.lm.torch_optional import require_torch, torch

nn = torch.nn if torch is not None else None
# without torch the classes below still define; TinyGPT() refuses, naming the extra to install
_Module = nn.Module if nn is not None else object


class _Conv1D(_Module):
    """y = x @ weight + bias with weight [n_in, n_out] (GPT-2's layout)."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):
        return x @ self.weight + self.bias


class _Attention(_Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.c_attn = _Conv1D(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = _Conv1D(cfg.n_embd, cfg.n_embd)

    def forward(self, x):
        B, L, D = x.shape
        H, dh = self.cfg.n_head, self.cfg.head_dim
        q, k, v = self.c_attn(x).split(D, dim=2)
        q, k, v = (t.view(B, L, H, dh).transpose(1, 2) for t in (q, k, v))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(dh)
        mask = torch.ones(L, L, dtype=torch.bool, device=x.device).tril()
        scores = scores.masked_fill(~mask, float("-inf"))
        y = torch.softmax(scores, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).reshape(B, L, D))


class _MLP(_Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.act = cfg.activation
        self.c_fc = _Conv1D(cfg.n_embd, cfg.inner)
        self.c_proj = _Conv1D(cfg.inner, cfg.n_embd)

    def forward(self, x):
        return self.c_proj(self.act(self.c_fc(x)))


class _Block(_Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.attn = _Attention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        self.mlp = _MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class _Transformer(_Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.n_positions, cfg.n_embd)
        self.h = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=cfg.layer_norm_epsilon)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.01)


class TinyGPT(_Module):
    """A GPT-2 decoder with Hugging Face parameter names.

    ``forward(ids)`` takes token ids ``[batch, length]`` (or ``[length]``) and returns logits
    ``[batch, length, vocab]``.
    """

    def __init__(self, config: GPTConfig):
        require_torch("TinyGPT")
        super().__init__()
        self.config = config
        self.transformer = _Transformer(config)
        if not config.tie_word_embeddings:
            self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
            nn.init.normal_(self.lm_head.weight, std=0.02)

    def head_weight(self):
        if self.config.tie_word_embeddings:
            return self.transformer.wte.weight
        return self.lm_head.weight

    def forward(self, ids):
        if ids.dim() == 1:
            ids = ids[None]
        t = self.transformer
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = t.wte(ids) + t.wpe(pos)[None]
        for block in t.h:
            x = block(x)
        return t.ln_f(x) @ self.head_weight().T
