"""The tensors of a GPT-NeoX model (Hugging Face's names, weights [out, in]) and their map onto
the shared decoder builder's names."""

from __future__ import annotations

from spikelm.lm.tensors import TensorLayout


def expected_shapes(cfg) -> dict[str, tuple[int, ...]]:
    d, f, V = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    shapes = {"gpt_neox.embed_in.weight": (V, d), "gpt_neox.final_layer_norm.weight": (d,),
              "gpt_neox.final_layer_norm.bias": (d,)}
    for i in range(cfg.num_hidden_layers):
        p = f"gpt_neox.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (d,), p + "input_layernorm.bias": (d,),
            p + "post_attention_layernorm.weight": (d,), p + "post_attention_layernorm.bias": (d,),
            p + "attention.query_key_value.weight": (3 * d, d), p + "attention.dense.weight": (d, d),
            p + "mlp.dense_h_to_4h.weight": (f, d), p + "mlp.dense_h_to_4h.bias": (f,),
            p + "mlp.dense_4h_to_h.weight": (d, f), p + "mlp.dense_4h_to_h.bias": (d,),
        })
        if cfg.attention_bias:
            shapes.update({p + "attention.query_key_value.bias": (3 * d,), p + "attention.dense.bias": (d,)})
    if not cfg.tie_word_embeddings:
        shapes["lm_head.weight"] = (V, d)
    return shapes


#: old checkpoints carry the causal mask and the rotary table as buffers: no parameters
LAYOUT = TensorLayout(expected_shapes, prefix="gpt_neox.", blocks="layers", layers_field="num_hidden_layers",
                      ignored=(".attention.bias", ".attention.masked_bias", "rotary_emb.inv_freq"))

#: Pythia's checkpoints name the untied head ``embed_out``; transformers 5 calls it ``lm_head``
OLD_HEAD = "embed_out.weight"


def builder_weights(cfg, P: dict) -> dict:
    """The shared builder's weights: the fused query_key_value split per head ([heads, 3, head_dim]
    rows: each head's q, k, v in turn), the rest renamed."""
    H, dh, d = cfg.num_attention_heads, cfg.head_dim, cfg.hidden_size
    W = {"emb.weight": P["gpt_neox.embed_in.weight"], "normf.weight": P["gpt_neox.final_layer_norm.weight"],
         "normf.bias": P["gpt_neox.final_layer_norm.bias"],
         "head.weight": P["gpt_neox.embed_in.weight"] if cfg.tie_word_embeddings else P["lm_head.weight"]}
    for i in range(cfg.num_hidden_layers):
        p, n = f"gpt_neox.layers.{i}.", f"h{i}."
        qkv = P[p + "attention.query_key_value.weight"].reshape(H, 3, dh, d)
        for j, x in enumerate("qkv"):
            W[n + x + ".weight"] = qkv[:, j].reshape(H * dh, d)
        if cfg.attention_bias:
            b = P[p + "attention.query_key_value.bias"].reshape(H, 3, dh)
            for j, x in enumerate("qkv"):
                W[n + x + ".bias"] = b[:, j].reshape(H * dh)
            W[n + "o.bias"] = P[p + "attention.dense.bias"]
        W[n + "o.weight"] = P[p + "attention.dense.weight"]
        for mine, theirs in (("norm1", "input_layernorm"), ("norm2", "post_attention_layernorm"),
                             ("fc", "mlp.dense_h_to_4h"), ("down", "mlp.dense_4h_to_h")):
            W[n + mine + ".weight"], W[n + mine + ".bias"] = P[p + theirs + ".weight"], P[p + theirs + ".bias"]
    return W
