"""Tiny GGUF model files for tests, written with gguf's own writer (no download).

:func:`write_llama` writes a Llama model of a few thousand parameters with a byte-level BPE
tokenizer of 256 tokens (the GPT-2 byte alphabet, no merges), as llama.cpp lays them out
(``blk.N.attn_q.weight`` ..., metadata ``llama.block_count`` ...), which transformers reads
back. Its options break one thing at a time: metadata that disagrees with the tensors
(``block_count``, ``head_count``), a missing tensor, a missing field.
"""
from __future__ import annotations

import numpy as np

VOCAB = 256


def byte_alphabet() -> list[str]:
    """The 256 printable characters GPT-2's byte-level BPE stands for the bytes 0..255."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    chars, extra = dict(zip(keep, keep)), 0
    for b in range(256):
        if b not in chars:
            chars[b] = 256 + extra
            extra += 1
    return [chr(chars[b]) for b in range(256)]


def add_byte_tokenizer(w) -> None:
    """The byte-level tokenizer metadata of these files (a gpt2 tokenizer of the byte alphabet,
    no merges, BOS 0, EOS 1) on GGUF writer ``w``."""
    w.add_vocab_size(VOCAB)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(byte_alphabet())
    w.add_token_types([1] * VOCAB)
    w.add_token_scores([0.0] * VOCAB)
    w.add_token_merges([])
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)


def write_llama(path, layers=2, width=16, heads=2, kv_heads=1, inner=32, context=64, block_count="auto",
                head_count=None, skip=(), seed=0):
    """A tiny Llama GGUF file at ``path``.

    ``block_count``: the metadata value ("auto": ``layers``; None: left out); ``head_count``:
    the metadata value (default ``heads``, which shapes the tensors); ``skip``: tensor names
    left out.
    """
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny test llama")
    if block_count is not None:
        w.add_block_count(layers if block_count == "auto" else block_count)
    w.add_context_length(context)
    w.add_embedding_length(width)
    w.add_feed_forward_length(inner)
    w.add_head_count(heads if head_count is None else head_count)
    w.add_head_count_kv(kv_heads)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    add_byte_tokenizer(w)
    rng = np.random.default_rng(seed)
    hd = width // heads

    def tensor(name, *shape):
        if name not in skip:
            w.add_tensor(name, (0.2 * rng.standard_normal(shape)).astype(np.float32))

    tensor("token_embd.weight", VOCAB, width)
    for i in range(layers):
        tensor(f"blk.{i}.attn_norm.weight", width)
        tensor(f"blk.{i}.ffn_norm.weight", width)
        tensor(f"blk.{i}.attn_q.weight", width, width)
        tensor(f"blk.{i}.attn_k.weight", kv_heads * hd, width)
        tensor(f"blk.{i}.attn_v.weight", kv_heads * hd, width)
        tensor(f"blk.{i}.attn_output.weight", width, width)
        tensor(f"blk.{i}.ffn_gate.weight", inner, width)
        tensor(f"blk.{i}.ffn_up.weight", inner, width)
        tensor(f"blk.{i}.ffn_down.weight", width, inner)
    tensor("output_norm.weight", width)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
