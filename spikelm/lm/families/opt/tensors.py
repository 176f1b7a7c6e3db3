"""The tensors of an OPT model (Hugging Face's names, weights [out, in]) and their map onto the
shared decoder builder's names."""

from __future__ import annotations

import numpy as np

from spikelm.lm.families.opt.config import POSITION_OFFSET
from spikelm.lm.tensors import TensorLayout
from spikelm.lm.torch_optional import matmul

PREFIX = "model.decoder."


def expected_shapes(cfg) -> dict[str, tuple[int, ...]]:
    d, f, V, p = cfg.hidden_size, cfg.ffn_dim, cfg.vocab_size, cfg.word_embed_proj_dim
    shapes = {PREFIX + "embed_tokens.weight": (V, p),
              PREFIX + "embed_positions.weight": (cfg.max_position_embeddings + POSITION_OFFSET, d)}
    if cfg.projected:
        shapes.update({PREFIX + "project_in.weight": (d, p), PREFIX + "project_out.weight": (p, d)})
    norms = ["final_layer_norm"] if cfg.final_norm else []
    for i in range(cfg.num_hidden_layers):
        pre = f"{PREFIX}layers.{i}."
        for name, shape in (("self_attn.q_proj", (d, d)), ("self_attn.k_proj", (d, d)), ("self_attn.v_proj", (d, d)),
                            ("self_attn.out_proj", (d, d)), ("fc1", (f, d)), ("fc2", (d, f))):
            shapes[pre + name + ".weight"] = shape
            if cfg.enable_bias:
                shapes[pre + name + ".bias"] = shape[:1]
        norms += [f"layers.{i}.self_attn_layer_norm", f"layers.{i}.final_layer_norm"]
    if cfg.layer_norm_elementwise_affine:
        for name in norms:
            shapes.update({PREFIX + name + ".weight": (d,), PREFIX + name + ".bias": (d,)})
    if not cfg.tie_word_embeddings:
        shapes["lm_head.weight"] = (V, p)
    return shapes


LAYOUT = TensorLayout(expected_shapes, prefix=PREFIX, blocks="layers", layers_field="num_hidden_layers")


def builder_weights(cfg, P: dict) -> dict:
    """The shared builder's weights: ``project_in`` folded into the token embedding (a table:
    ``emb = embed_tokens project_in^T``, no MACs at run time), the position table whole (the
    builder reads it from the offset), LayerNorms without affine parameters as weight 1, bias 0."""
    d = cfg.hidden_size
    emb = P[PREFIX + "embed_tokens.weight"]
    W = {"emb.weight": matmul(emb, P[PREFIX + "project_in.weight"].T) if cfg.projected else emb,
         "pos.weight": P[PREFIX + "embed_positions.weight"],
         "head.weight": emb if cfg.tie_word_embeddings else P["lm_head.weight"]}
    if cfg.projected:
        W["proj_out.weight"] = P[PREFIX + "project_out.weight"]

    def norm(mine, theirs):
        if cfg.layer_norm_elementwise_affine:
            W[mine + ".weight"], W[mine + ".bias"] = P[PREFIX + theirs + ".weight"], P[PREFIX + theirs + ".bias"]
        else:
            W[mine + ".weight"], W[mine + ".bias"] = np.ones(d), np.zeros(d)

    if cfg.final_norm:
        norm("normf", "final_layer_norm")
    for i in range(cfg.num_hidden_layers):
        pre, n = f"{PREFIX}layers.{i}.", f"h{i}."
        for mine, theirs in (("q", "self_attn.q_proj"), ("k", "self_attn.k_proj"), ("v", "self_attn.v_proj"),
                             ("o", "self_attn.out_proj"), ("fc", "fc1"), ("down", "fc2")):
            W[n + mine + ".weight"] = P[pre + theirs + ".weight"]
            if cfg.enable_bias:
                W[n + mine + ".bias"] = P[pre + theirs + ".bias"]
        norm(n + "norm1", f"layers.{i}.self_attn_layer_norm")
        norm(n + "norm2", f"layers.{i}.final_layer_norm")
    return W
