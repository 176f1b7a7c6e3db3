"""Cost of each language-model family on a random model of one fixed shape:
``python -m benchmarks.lm_families [--types qwen3 gpt_neox ...] [--codings ...] [--tokens 32]``.

For every ``model_type`` of :data:`MODELS` whose family is registered
(:mod:`spikelm.lm.families`), a transformers model of the shape :data:`SHAPE` with random
weights (normal, std 0.3; norm gains near their identity, norm biases near 0) is converted
(calibration: 256 random tokens, default precision) and run spike by spike on one random
sequence in each coding (numba, one thread). One row per model type and coding: SynOps and
dense MACs per token, SynOps / MACs, spikes per activation, steps per token, and the
conversion time (CPU time of this thread). Every run is checked to give exactly the
reference's logits.

A family is one entry of :data:`MODELS`: its transformers config and model class and the
fields its row turns on (windows, soft-caps, RoPE scaling, partial rotary, ...); a field of
:data:`SHAPE` a config does not read is ignored by it.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

#: the fixed shape of every model (windows and soft-caps where the family has them)
SHAPE = dict(vocab_size=256, hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
             num_key_value_heads=2, head_dim=32, max_position_embeddings=128, bos_token_id=1, eos_token_id=2,
             pad_token_id=0, tie_word_embeddings=True)
#: model_type -> (transformers config class, model class, what the row turns on)
MODELS = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", dict(rope_parameters={
        "rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 32})),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(sliding_window=16)),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(use_sliding_window=True, sliding_window=16,
                                                      max_window_layers=2)),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {}),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", {}),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", dict(sliding_window=16, query_pre_attn_scalar=32)),
    "gemma3_text": ("Gemma3TextConfig", "Gemma3ForCausalLM", dict(sliding_window=16, sliding_window_pattern=2,
                                                                  query_pre_attn_scalar=32)),
    # Pythia's defaults: rotary on a quarter of each head, parallel residual
    "gpt_neox": ("GPTNeoXConfig", "GPTNeoXForCausalLM", dict(rotary_pct=0.25, use_parallel_residual=True)),
    # OPT: ReLU, learned positions; its MLP width is ffn_dim
    "opt": ("OPTConfig", "OPTForCausalLM", dict(ffn_dim=SHAPE["intermediate_size"],
                                                word_embed_proj_dim=SHAPE["hidden_size"])),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", {}),
}


def random_model(model_type: str, seed: int = 0):
    """A transformers causal LM of ``model_type`` in :data:`SHAPE` with random weights."""
    import torch
    import transformers

    cfg_cls, model_cls, extra = MODELS[model_type]
    torch.manual_seed(seed)
    model = getattr(transformers, model_cls)(getattr(transformers, cfg_cls)(**SHAPE, **extra)).eval()
    g = torch.Generator().manual_seed(seed)
    identity = 0.0 if model_type.startswith("gemma") else 1.0  # Gemma's norms hold w of 1 + w
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                base = identity if name.endswith("weight") else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    return model


def main(argv=None):
    import numba
    import torch

    from spikelm.lm import convert
    from spikelm.lm.codings import CODINGS
    from spikelm.lm.families.registry import all_families
    from spikelm.lm.report import coding_summary

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--types", nargs="*", default=list(MODELS), help="model types (default: all)")
    ap.add_argument("--codings", nargs="*", default=list(CODINGS), choices=list(CODINGS))
    ap.add_argument("--tokens", type=int, default=32, help="length of the random sequence")
    args = ap.parse_args(argv)
    numba.set_num_threads(1)
    torch.set_num_threads(1)
    known = {mt for fam in all_families() for mt in fam.model_types}
    print(f"shape: {SHAPE}; {args.tokens} tokens; default precision; numba, 1 thread; "
          "every run equal to its reference bit for bit")
    print(f"{'model_type':<13}{'family':<10}{'coding':<14}{'SynOps/token':>13}{'MACs/token':>12}{'SynOps/MACs':>12}"
          f"{'spikes/act':>11}{'steps/token':>12}{'convert s':>10}")
    rng = np.random.default_rng(0)
    calib, ids = rng.integers(3, SHAPE["vocab_size"], 256), rng.integers(3, SHAPE["vocab_size"], args.tokens)
    for mt in args.types:
        if mt not in MODELS or mt not in known:
            print(f"{mt:<13}(no family registered for it here)")
            continue
        model = random_model(mt)
        for coding in args.codings:
            t0 = time.thread_time()
            snn = convert(model, calibration=calib, coding=coding)
            took = time.thread_time() - t0
            run = snn.simulate(ids, backend="numba")
            if not np.array_equal(run.logits, snn.reference(ids).logits):
                raise AssertionError(f"{mt}, {coding}: the spiking logits differ from the reference")
            s = coding_summary(run, snn.graph)
            print(f"{mt:<13}{snn.family.name:<10}{coding:<14}{s['synops_per_token']:>13,.0f}"
                  f"{s['macs_per_token']:>12,.0f}{s['synops_over_macs']:>12.2f}{s['spikes_per_activation']:>11.3f}"
                  f"{s['steps_per_token']:>12.1f}{took:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
