"""The tensors of a GPT-2 model: Hugging Face's names and shapes (``Conv1D`` weights are [in, out])."""

from __future__ import annotations

from spikelm.lm.tensors import TensorLayout


def expected_shapes(cfg) -> dict[str, tuple[int, ...]]:
    d, f, V = cfg.n_embd, cfg.inner, cfg.vocab_size
    shapes = {"transformer.wte.weight": (V, d), "transformer.wpe.weight": (cfg.n_positions, d)}
    for i in range(cfg.n_layer):
        p = f"transformer.h.{i}."
        shapes.update({
            p + "ln_1.weight": (d,), p + "ln_1.bias": (d,),
            p + "attn.c_attn.weight": (d, 3 * d), p + "attn.c_attn.bias": (3 * d,),
            p + "attn.c_proj.weight": (d, d), p + "attn.c_proj.bias": (d,),
            p + "ln_2.weight": (d,), p + "ln_2.bias": (d,),
            p + "mlp.c_fc.weight": (d, f), p + "mlp.c_fc.bias": (f,),
            p + "mlp.c_proj.weight": (f, d), p + "mlp.c_proj.bias": (d,),
        })
    shapes["transformer.ln_f.weight"] = (d,)
    shapes["transformer.ln_f.bias"] = (d,)
    if not cfg.tie_word_embeddings:
        shapes["lm_head.weight"] = (V, d)
    return shapes


#: buffers that old GPT-2 checkpoints carry and that hold no parameters
LAYOUT = TensorLayout(expected_shapes, prefix="transformer.", blocks="h", layers_field="n_layer",
                      ignored=(".attn.bias", ".attn.masked_bias"))
