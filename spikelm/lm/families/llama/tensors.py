"""The tensors of a Llama-family model: Hugging Face's names and shapes (weights [out, in]),
with those of the config's hooks (q/k norms, post norms, the output bias; :mod:`.config`)."""

from __future__ import annotations

from spikelm.lm.tensors import TensorLayout


def expected_shapes(cfg) -> dict[str, tuple[int, ...]]:
    d, f, V, dh = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size, cfg.head_dim
    qd, kd = cfg.num_attention_heads * dh, cfg.num_key_value_heads * dh
    shapes = {"model.embed_tokens.weight": (V, d), "model.norm.weight": (d,)}
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (d,), p + "post_attention_layernorm.weight": (d,),
            p + "self_attn.q_proj.weight": (qd, d), p + "self_attn.k_proj.weight": (kd, d),
            p + "self_attn.v_proj.weight": (kd, d), p + "self_attn.o_proj.weight": (d, qd),
            p + "mlp.gate_proj.weight": (f, d), p + "mlp.up_proj.weight": (f, d), p + "mlp.down_proj.weight": (d, f),
        })
        if cfg.attention_bias:
            shapes.update({p + "self_attn.q_proj.bias": (qd,), p + "self_attn.k_proj.bias": (kd,),
                           p + "self_attn.v_proj.bias": (kd,)})
        if cfg.o_bias:
            shapes[p + "self_attn.o_proj.bias"] = (d,)
        if cfg.qk_norm:
            shapes.update({p + "self_attn.q_norm.weight": (dh,), p + "self_attn.k_norm.weight": (dh,)})
        if cfg.post_norms:
            shapes.update({p + "pre_feedforward_layernorm.weight": (d,), p + "post_feedforward_layernorm.weight": (d,)})
    if not cfg.tie_word_embeddings:
        shapes["lm_head.weight"] = (V, d)
    return shapes


#: rotary tables some checkpoints carry as buffers, and Gemma's embedding scale: no parameters
LAYOUT = TensorLayout(expected_shapes, prefix="model.", blocks="layers", layers_field="num_hidden_layers",
                      ignored=("rotary_emb.inv_freq", "embed_tokens.embed_scale"))


def from_llama_cpp(arch: str, name: str, w, meta: dict):
    """A tensor of a GGUF file as transformers' loader hands it on: llama.cpp permuted the rows of
    a ``llama`` file's Q and K (each head's rotary pairs interleaved); they are permuted back per
    head (K: per KV head) when the file gives both head counts, as transformers does."""
    if arch != "llama" or not (".attn_q." in name or ".attn_k." in name):
        return w
    heads, kv = meta.get("llama.attention.head_count"), meta.get("llama.attention.head_count_kv")
    if heads is None or kv is None:
        return w
    n = heads if ".attn_q." in name else kv
    return w.reshape(n, w.shape[0] // n // 2, 2, *w.shape[1:]).swapaxes(2, 1).reshape(w.shape)
