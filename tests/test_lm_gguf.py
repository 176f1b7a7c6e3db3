"""The lean GGUF reader (spikelm.lm.gguf_file.read_tensors) against transformers' own loader.

transformers builds a torch model and dequantizes the whole file into it; spikelm reads the
same tensors one at a time with gguf's reader. Both must give the same float32 values bit for
bit, under the same names, and the same config: on small files written here with gguf's writer
(Llama, whose Q/K rows llama.cpp permutes; Qwen2, with q/k/v biases; GPT-2, whose Conv1D weights
are stored transposed; F32, F16 and Q8_0 tensors), and on the SmolLM2 file where it is cached.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from spikelm.errors import FileFormatError

gguf = pytest.importorskip("gguf", reason="GGUF files are written and read with gguf (the lm extra)")

VOCAB = 256


def _writer(path, arch, layers, width, heads, kv_heads, inner, context=64):
    from gguf_files import add_byte_tokenizer

    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(f"tiny test {arch}")
    w.add_block_count(layers)
    w.add_context_length(context)
    w.add_embedding_length(width)
    w.add_feed_forward_length(inner)
    w.add_head_count(heads)
    if kv_heads is not None:
        w.add_head_count_kv(kv_heads)
    if arch == "gpt2":
        w.add_layer_norm_eps(1e-5)
    else:
        w.add_rope_freq_base(10000.0)
        w.add_layer_norm_rms_eps(1e-5)
    add_byte_tokenizer(w)
    return w


def write(path, arch="llama", kind="F32", layers=2, width=64, heads=4, kv_heads=2, inner=96, untied=True, seed=0,
          extra=(), context=64):
    """A tiny ``arch`` GGUF file: 2-D weights as ``kind`` (F32, F16 or Q8_0; rows of 32 values per
    Q8_0 block), 1-D tensors as F32 (as llama.cpp writes them). ``extra``: (name, array) pairs added."""
    w = _writer(path, arch, layers, width, heads, kv_heads, inner, context)
    rng = np.random.default_rng(seed)
    kv = (kv_heads or heads) * (width // heads)

    def tensor(name, *shape):
        a = (0.2 * rng.standard_normal(shape)).astype(np.float32)
        if len(shape) == 1 or kind == "F32":
            w.add_tensor(name, a)
        elif kind == "F16":
            w.add_tensor(name, a.astype(np.float16))
        else:
            q = gguf.quants.quantize(a, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(name, q, raw_dtype=gguf.GGMLQuantizationType.Q8_0)

    tensor("token_embd.weight", VOCAB, width)
    if arch == "gpt2":
        tensor("position_embd.weight", context, width)
    for i in range(layers):
        b = f"blk.{i}."
        if arch == "gpt2":  # llama.cpp stores Conv1D's [in, out] weights as [out, in]
            for part, rows, cols in (("attn_qkv", 3 * width, width), ("attn_output", width, width),
                                     ("ffn_up", inner, width), ("ffn_down", width, inner)):
                tensor(b + part + ".weight", rows, cols)
                tensor(b + part + ".bias", rows)
            for norm in ("attn_norm", "ffn_norm"):
                tensor(b + norm + ".weight", width)
                tensor(b + norm + ".bias", width)
            continue
        tensor(b + "attn_norm.weight", width)
        tensor(b + "ffn_norm.weight", width)
        tensor(b + "attn_q.weight", width, width)
        tensor(b + "attn_k.weight", kv, width)
        tensor(b + "attn_v.weight", kv, width)
        if arch == "qwen2":
            tensor(b + "attn_q.bias", width)
            tensor(b + "attn_k.bias", kv)
            tensor(b + "attn_v.bias", kv)
        tensor(b + "attn_output.weight", width, width)
        tensor(b + "ffn_gate.weight", inner, width)
        tensor(b + "ffn_up.weight", inner, width)
        tensor(b + "ffn_down.weight", width, inner)
    tensor("output_norm.weight", width)
    if arch == "gpt2":
        tensor("output_norm.bias", width)
    if untied:
        tensor("output.weight", VOCAB, width)
    for name, array in extra:
        w.add_tensor(name, array)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def lean(path):
    """``(family config, {name: float32 array})`` through spikelm's reader."""
    from spikelm.lm import families
    from spikelm.lm.weights import read_gguf

    raw, _, tensors = read_gguf(path)
    fam = families.of_config(raw, str(path))
    cfg = fam.config(raw, str(path))
    return fam, cfg, tensors(fam.tensors(cfg).shapes(cfg), fam.gguf_tensor)


def through_transformers(path):
    """``(config dict, {name: float32 array})`` as transformers' own loader builds them."""
    transformers = pytest.importorskip("transformers", reason="the reference is transformers' GGUF loader")
    pytest.importorskip("accelerate", reason="transformers reads GGUF files with accelerate (the lm extra)")
    model = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    return model.config.to_dict(), {k: v.detach().numpy() for k, v in model.state_dict().items()}


def assert_same(path):
    fam, cfg, mine = lean(path)
    raw, theirs = through_transformers(path)
    assert fam.config(raw, str(path)) == cfg
    for name, a in mine.items():
        assert a.dtype == np.float32 and a.flags.c_contiguous, name
        assert a.shape == theirs[name].shape, name
        assert np.array_equal(a.view(np.uint32), theirs[name].view(np.uint32)), name  # bit for bit
    # every parameter transformers holds is read (a tied head is the embedding's copy)
    held = {k for k in theirs if not (cfg.tie_word_embeddings and k == "lm_head.weight")}
    assert held - {k for k in held if k.endswith((".attn.bias", ".attn.masked_bias"))} == set(mine)
    return mine


@pytest.mark.parametrize("kind", ["F32", "F16", "Q8_0"])
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_the_lean_reader_equals_transformers(tmp_path, arch, kind, monkeypatch):
    from spikelm.lm import gguf_file

    # block types dequantized 10 rows at a time (64 values: 2 Q8_0 blocks of 34 bytes per row)
    monkeypatch.setattr(gguf_file, "CHUNK_BYTES", 680)
    assert_same(write(tmp_path / "m.gguf", arch, kind, untied=kind != "F16"))


def test_llama_q_and_k_rows_are_permuted_back(tmp_path):
    """The permutation is the one transformers applies (not the identity): a Llama file's Q
    differs from its stored rows, a Qwen2 file's (same bytes) does not."""
    mine = assert_same(write(tmp_path / "l.gguf", "llama", seed=3))
    other = assert_same(write(tmp_path / "q.gguf", "qwen2", seed=3))
    q = "model.layers.0.self_attn.q_proj.weight"
    assert not np.array_equal(mine[q], other[q])
    assert np.array_equal(np.sort(mine[q], axis=0), np.sort(other[q], axis=0))  # the same rows, reordered


def test_a_llama_file_without_a_kv_head_count_is_read_as_transformers_reads_it(tmp_path):
    assert_same(write(tmp_path / "m.gguf", "llama", kv_heads=None))


def test_gpt2_conv1d_weights_are_transposed_back(tmp_path):
    # (transformers' GPT-2 config takes neither the file's context nor its FFN width: 1,024 and 4x)
    assert_same(write(tmp_path / "g.gguf", "gpt2", kv_heads=None, inner=256, context=1024, untied=False))


def test_tensors_no_name_asks_for_are_left_unread(tmp_path):
    """Like transformers, the reader skips tensors no parameter maps to (Llama 3's rope_freqs)."""
    path = write(tmp_path / "m.gguf", extra=[("rope_freqs.weight", np.ones(8, np.float32))])
    assert "rope_freqs.weight" not in assert_same(path)


def test_a_missing_tensor_is_one_line_naming_both_names(tmp_path):
    from spikelm.lm.gguf_file import check, read_tensors

    path = write(tmp_path / "m.gguf")
    names = ["model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.zz_proj.weight"]
    with pytest.raises(FileFormatError, match=r"m\.gguf: lacks tensors for model\.layers\.0\.mlp\.zz_proj\.weight "
                                              r"\(no llama\.cpp name\)$"):
        read_tensors(path, names, check(path))


def test_a_tensor_type_gguf_cannot_dequantize_is_one_line(tmp_path):
    from spikelm.lm.gguf_file import check, read_tensors

    path = write(tmp_path / "m.gguf", untied=False, extra=[("output.weight", np.ones((VOCAB, 64)))])  # F64
    with pytest.raises(FileFormatError, match=r"m\.gguf: tensor output\.weight: type F64 cannot be dequantized"):
        read_tensors(path, ["lm_head.weight"], check(path))


def test_the_reader_builds_no_torch_model_and_holds_one_tensor_at_a_time(tmp_path, monkeypatch):
    """Read a file of 12 Q8_0 weights of 1 MiB of float32 each: no torch module is made (transformers'
    loader builds one), and the reader's peak beyond the result stays under 4 such tensors
    (gguf's dequantize makes two float32 temporaries of its own; all of them at once would be 12)."""
    from spikelm.lm.gguf_file import check, read_tensors

    path = write(tmp_path / "big.gguf", "qwen2", "Q8_0", layers=4, width=512, heads=4, kv_heads=4, inner=512,
                 untied=False)
    torch = pytest.importorskip("torch", reason="checks that no torch module is made")

    def refuse(*a, **k):
        raise AssertionError("the GGUF reader built a torch module")

    monkeypatch.setattr(torch.nn.Module, "__init__", refuse)
    meta = check(path)
    names = [f"model.layers.{i}.{p}.weight" for i in range(4)
             for p in ("self_attn.q_proj", "self_attn.o_proj", "mlp.up_proj")]
    tracemalloc.start()
    try:
        out = read_tensors(path, names, meta)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    one = 512 * 512 * 4
    result = sum(a.nbytes for a in out.values())
    assert result == 12 * one
    assert peak - result < 4 * one, f"peak {peak / 2**20:.1f} MiB for a result of {result / 2**20:.1f} MiB"


@pytest.mark.slow
def test_smollm2_gguf_equals_transformers():
    """The cached SmolLM2-135M file (Q4_1 blocks, Llama's permuted Q/K) read both ways."""
    from spikelm.lm.smollm2 import gguf_path

    path = gguf_path()
    if path is None:
        pytest.skip("the SmolLM2 wheel is not downloaded (python -m spikelm.lm.smollm2 says how)")
    assert_same(path)


@pytest.mark.parametrize("untied", [True, False])
def test_the_benchmarks_torch_model_equals_transformers(tmp_path, untied):
    """benchmarks.lm_llama fills a transformers model made on the meta device with the lean
    reader's tensors (the embedding shared with the SNN's): the same model as transformers' loader."""
    torch = pytest.importorskip("torch", reason="the benchmark's float model is a torch module")
    from benchmarks.lm_llama import gguf_header, torch_model
    from spikelm.lm.gguf_file import check, read_tensors

    path = write(tmp_path / "m.gguf", "qwen2", "Q8_0", untied=untied)
    embed = read_tensors(path, ["model.embed_tokens.weight"], check(path))
    mine = torch_model(str(path), embed, gguf_header(str(path)) if untied else None)  # the header read before, or here
    _, theirs = through_transformers(path)
    assert mine.get_parameter("model.embed_tokens.weight").data_ptr() == embed["model.embed_tokens.weight"].ctypes.data
    got = {k: v.detach().numpy() for k, v in mine.state_dict().items()}
    assert set(got) == set(theirs)
    for k, v in theirs.items():
        assert np.array_equal(got[k].view(np.uint32), v.view(np.uint32)), k
    ids = torch.tensor([[0, 5, 17, 250, 3]])
    import transformers

    reference = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    with torch.no_grad():
        assert torch.equal(mine(ids).logits, reference(ids).logits)


def test_the_header_is_parsed_once_for_the_config_and_the_tokenizer(tmp_path, monkeypatch):
    """transformers makes the config and the tokenizer each through a gguf reader of its own; the
    one :func:`check` parsed is handed to both (the same config and tokenizer as from fresh ones),
    and gguf's own reader class is back in place afterwards."""
    from spikelm.lm.gguf_file import read_header

    path = write(tmp_path / "m.gguf", "llama")
    made = []
    real_init = gguf.GGUFReader.__init__

    def counted(self, *args, **kwargs):
        made.append(args[0] if args else kwargs.get("path"))
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(gguf.GGUFReader, "__init__", counted)
    _, config, tok = read_header(path)
    assert len(made) == 1
    assert gguf.GGUFReader.__name__ == "GGUFReader" and isinstance(gguf.GGUFReader, type)
    fresh = through_transformers_header(path)
    assert len(made) == 3  # (transformers alone: one reader for each)
    drop = {"_name_or_path"}  # (the folder each was read from)
    assert {k: v for k, v in config.items() if k not in drop} == {k: v for k, v in fresh[0].items() if k not in drop}
    text = "a tiny test"
    assert tok.encode(text) == fresh[1].encode(text)


def through_transformers_header(path):
    """``(config dict, tokenizer)`` as transformers makes them from the file on its own."""
    transformers = pytest.importorskip("transformers", reason="the reference is transformers' GGUF reader")
    return (transformers.AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name).to_dict(),
            transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name))
