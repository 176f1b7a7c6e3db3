"""Random transformers models of the Qwen3 and Gemma families and the features they share (no
tests here): builders seeded from a hypothesis case, their BOS-prefixed float logits, the
checks every family test makes, and a saved Hugging Face folder with spikelm's character
tokenizer for the command-line tests."""

from __future__ import annotations

import json

import numpy as np
import torch
from hypothesis import strategies as st

from test_lm_exact import independent_synops
from test_lm_helpers import assert_lm_agree, assert_matches_reference, token_ids
from spikelm.lm import convert
from spikelm.lm.codings import CODINGS
from spikelm.lm.precision import GROUPS

#: transformers' config and model classes per model type
CLASSES = {"qwen3": ("Qwen3Config", "Qwen3ForCausalLM"), "gemma": ("GemmaConfig", "GemmaForCausalLM"),
           "gemma2": ("Gemma2Config", "Gemma2ForCausalLM"), "gemma3_text": ("Gemma3TextConfig", "Gemma3ForCausalLM"),
           "llama": ("LlamaConfig", "LlamaForCausalLM"), "mistral": ("MistralConfig", "MistralForCausalLM"),
           "qwen2": ("Qwen2Config", "Qwen2ForCausalLM")}
BOS = 1


def rope_params(kind: str, theta: float, original: int, ctx: int = 0) -> dict:
    """A Hugging Face ``rope_parameters`` dict of the given type (``original``: the pretraining
    context; ``ctx``: the model's, whose ratio is yarn's factor)."""
    extra = {"default": {}, "linear": {"factor": 2.0}, "dynamic": {"factor": 2.0},
             "llama3": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                        "original_max_position_embeddings": original},
             "yarn": {"factor": ctx / original if ctx else 4.0, "original_max_position_embeddings": original}}[kind]
    return {"rope_type": kind, "rope_theta": theta, **extra}


def random_model(case: dict):
    """A transformers causal LM of ``case["model_type"]`` with large random weights.

    Keys: seed, vocab, ctx, layers, hidden, heads, kv_heads, head_dim, inner, tied, std, bias, window
    (None or the sliding window), rope (a rope type), softcap (Gemma 2: attention and final caps
    or None), scalar (query_pre_attn_scalar).
    """
    import transformers

    mt = case["model_type"]
    cfg_cls, model_cls = CLASSES[mt]
    kw = dict(vocab_size=case["vocab"], hidden_size=case.get("hidden", case["heads"] * case["head_dim"]),
              intermediate_size=case["inner"], num_hidden_layers=case["layers"], num_attention_heads=case["heads"],
              num_key_value_heads=case["kv_heads"], head_dim=case["head_dim"], max_position_embeddings=case["ctx"],
              tie_word_embeddings=case["tied"], bos_token_id=BOS, eos_token_id=2, pad_token_id=0, rms_norm_eps=1e-5)
    rope = rope_params(case.get("rope", "default"), 100.0, max(2, case["ctx"] // 4), case["ctx"])
    window = case.get("window")
    if mt in ("qwen3", "qwen2"):
        kw.update(attention_bias=case.get("bias", False), use_sliding_window=window is not None,
                  sliding_window=window or 4096, max_window_layers=case.get("first_window_layer", 0))
    if mt == "mistral":
        kw["sliding_window"] = window
    if mt in ("gemma", "gemma2", "gemma3_text"):
        kw["attention_bias"] = case.get("bias", False)
    if mt in ("gemma2", "gemma3_text"):
        kw.update(sliding_window=window or case["ctx"], query_pre_attn_scalar=case.get("scalar", case["head_dim"]))
        cap = case.get("softcap")
        kw.update(attn_logit_softcapping=cap[0] if cap else None, final_logit_softcapping=cap[1] if cap else None)
    if mt == "gemma3_text":
        kw["sliding_window_pattern"] = case.get("pattern", 3)
        kw["rope_parameters"] = {"full_attention": rope, "sliding_attention": rope_params("default", 10.0, 0)}
    else:
        kw["rope_parameters"] = rope
    torch.manual_seed(case["seed"])
    model = getattr(transformers, model_cls)(getattr(transformers, cfg_cls)(**kw)).eval()
    g = torch.Generator().manual_seed(case["seed"])
    offset = 0.0 if mt.startswith("gemma") else 1.0  # Gemma's norms hold w of the gains 1 + w
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(offset + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(case["std"] * torch.randn(p.shape, generator=g))
    return model


def hf_logits(model, ids) -> np.ndarray:
    """transformers' float logits of ``ids`` after the BOS the conversion prefixes (float64)."""
    with torch.no_grad():
        return model(torch.tensor(np.concatenate([[BOS], ids]))[None]).logits[0, 1:].double().numpy()


@st.composite
def cases(draw, model_types, features=True):
    """A random small model of one of ``model_types``, a coding and precision, a sequence length.

    ``features``: also draw sliding windows shorter than the sequence, RoPE scaling, biases,
    Gemma 2's soft-caps."""
    mt = draw(st.sampled_from(model_types))
    kv = draw(st.integers(1, 2))
    ctx = draw(st.integers(4, 14))
    coding = draw(st.sampled_from(CODINGS))
    top = 6 if coding == "unit" else 12
    bits = draw(st.one_of(st.integers(3, top), st.fixed_dictionaries({g: st.integers(3, top) for g in GROUPS})))
    case = dict(model_type=mt, seed=draw(st.integers(0, 2**16)), layers=draw(st.integers(1, 3)), kv_heads=kv,
                heads=kv * draw(st.integers(1, 3)), head_dim=draw(st.sampled_from([4, 8, 12])),
                hidden_per_head=draw(st.sampled_from([4, 8])),
                inner=draw(st.sampled_from([8, 24])), tied=draw(st.booleans()), std=draw(st.sampled_from([0.1, 0.3])),
                ctx=ctx, length=draw(st.integers(2, ctx - 1)), vocab=draw(st.integers(10, 80)), bits=bits,
                coding=coding, weight_bits=draw(st.sampled_from([8, 12])), sink=draw(st.booleans()))
    case["hidden"] = case["heads"] * case.pop("hidden_per_head")  # head_dim is explicit: not hidden / heads
    if features:
        case.update(window=draw(st.one_of(st.none(), st.integers(1, ctx - 1))), bias=draw(st.booleans()),
                    rope=draw(st.sampled_from(["default", "linear", "dynamic", "llama3", "yarn"])),
                    first_window_layer=draw(st.integers(0, 1)), pattern=draw(st.integers(1, 3)),
                    scalar=draw(st.sampled_from([4, 16, 64])))
        if mt == "gemma2":
            case["softcap"] = draw(st.one_of(st.none(), st.tuples(st.sampled_from([2.0, 5.0, 50.0]),
                                                                  st.sampled_from([1.0, 3.0, 30.0]))))
    return case


def convert_case(case, bits=None, coding=None):
    model = random_model(case)
    snn = convert(model, calibration=token_ids(case["seed"] + 1, 60, case["vocab"]),
                  bits=case["bits"] if bits is None else bits, coding=coding or case["coding"],
                  weight_bits=case["weight_bits"], sink=case["sink"])
    return model, snn


def check_exact(case):
    """The SNN on numba equals the reference, every count its code; SynOps in closed form."""
    _, snn = convert_case(case)
    ids = token_ids(case["seed"] + 2, case["length"], case["vocab"])
    ref = snn.reference(ids)
    run = snn.simulate(ids, backend="numba")
    assert_matches_reference(snn, ids, run, ref)
    assert (run.synops["total"], run.shift_adds["total"]) == independent_synops(snn, ref.codes, len(ids),
                                                                               start=snn.graph.n_prefix)
    return snn


def check_backends_agree(case):
    """NumPy and Numba runs agree bit for bit (short sequences: the NumPy runner is the slow oracle)."""
    case = {**case, "length": min(case["length"], 4)}
    if case["coding"] == "unit":
        case["bits"] = 4
    _, snn = convert_case(case)
    ids = token_ids(case["seed"] + 2, case["length"], case["vocab"])
    assert_lm_agree(snn.simulate(ids, backend="numpy", record=True), snn.simulate(ids, backend="numba", record=True))


def check_follows_transformers(case, tolerance=0.03):
    """At 12 bits the reference is within ``tolerance`` relative logit error of transformers'
    float forward (the same BOS-prefixed input); the float forward within 1e-4."""
    case = {**case, "sink": True, "weight_bits": 12}
    model, snn = convert_case(case, bits=12, coding="signed_digit")
    ids = token_ids(case["seed"] + 2, case["length"], case["vocab"])
    want = hf_logits(model, ids)
    top = np.abs(want).max()
    assert np.abs(snn.float_logits(ids) - want).max() <= 1e-4 * top
    err = np.abs(snn.reference(ids).logits - want).max() / top
    assert err <= tolerance, err
    return err


def save_folder(model, path, tokenizer=None, bin=False, **kw):
    """``save_pretrained`` of ``model`` into ``path`` (kw: e.g. max_shard_size), with spikelm's
    character tokenizer when given; ``bin``: the weights as a ``pytorch_model.bin`` pickle
    instead (transformers 5 writes only safetensors)."""
    model.save_pretrained(str(path), **kw)
    if bin:
        (path / "model.safetensors").unlink()
        torch.save(dict(model.state_dict()), path / "pytorch_model.bin")
    if tokenizer is not None:
        tokenizer.save(path / "tokenizer.json")
    return path


def read_config(path) -> dict:
    return json.loads((path / "config.json").read_text())
