"""The tensors of a Phi-3 model (Hugging Face's names, weights [out, in]) and their map onto the
shared decoder builder's names."""

from __future__ import annotations

from spikelm.lm.tensors import TensorLayout


def expected_shapes(cfg) -> dict[str, tuple[int, ...]]:
    d, f, V = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    qd, kd = cfg.num_attention_heads * cfg.head_dim, cfg.num_key_value_heads * cfg.head_dim
    shapes = {"model.embed_tokens.weight": (V, d), "model.norm.weight": (d,)}
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (d,), p + "post_attention_layernorm.weight": (d,),
            p + "self_attn.qkv_proj.weight": (qd + 2 * kd, d), p + "self_attn.o_proj.weight": (d, qd),
            p + "mlp.gate_up_proj.weight": (2 * f, d), p + "mlp.down_proj.weight": (d, f),
        })
    if not cfg.tie_word_embeddings:
        shapes["lm_head.weight"] = (V, d)
    return shapes


#: rotary tables some checkpoints carry as buffers: no parameters
LAYOUT = TensorLayout(expected_shapes, prefix="model.", blocks="layers", layers_field="num_hidden_layers",
                      ignored=("rotary_emb.inv_freq",))


def builder_weights(cfg, P: dict) -> dict:
    """The shared builder's weights: ``qkv_proj`` split into the queries, keys and values (rows
    in that order), ``gate_up_proj`` into the gate and the up projection (views, no copies)."""
    qd, kd, f = cfg.num_attention_heads * cfg.head_dim, cfg.num_key_value_heads * cfg.head_dim, cfg.intermediate_size
    W = {"emb.weight": P["model.embed_tokens.weight"], "normf.weight": P["model.norm.weight"],
         "head.weight": P["model.embed_tokens.weight"] if cfg.tie_word_embeddings else P["lm_head.weight"]}
    for i in range(cfg.num_hidden_layers):
        p, n = f"model.layers.{i}.", f"h{i}."
        qkv, gate_up = P[p + "self_attn.qkv_proj.weight"], P[p + "mlp.gate_up_proj.weight"]
        W.update({n + "q.weight": qkv[:qd], n + "k.weight": qkv[qd : qd + kd], n + "v.weight": qkv[qd + kd :],
                  n + "o.weight": P[p + "self_attn.o_proj.weight"], n + "gate.weight": gate_up[:f],
                  n + "up.weight": gate_up[f:], n + "down.weight": P[p + "mlp.down_proj.weight"],
                  n + "norm1.weight": P[p + "input_layernorm.weight"],
                  n + "norm2.weight": P[p + "post_attention_layernorm.weight"]})
    return W
