"""Converted model families side by side on random models of one fixed shape:
``python -m benchmarks.lm_families [--families gpt_neox opt ...] [--tokens 32] [--codings ...]``.

Per family (the entries of :data:`FAMILIES`, one transformers model each) and coding: SynOps
per dense MAC, spikes per activation, steps per token on ``--tokens`` random tokens decoded
spike by spike (numba, each run checked bit for bit against the quantized reference), and the
conversion time (calibration on 256 random tokens, default precision; CPU time of this thread).

The shape (:data:`SHAPE`): width 128, 4 layers, 4 heads of 32, MLP 512, vocabulary 512,
context 64; each family's own defaults otherwise (Pythia's partial rotary 0.25 and parallel
residual, OPT's ReLU and learned positions, Phi-3's gated SiLU MLP), weights as transformers
initialises them (seed 0). A family is one entry: a function of the shape returning a module.
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

from spikelm.lm.codings import CODINGS
from spikelm.lm.report import coding_summary

SHAPE = dict(width=128, layers=4, heads=4, inner=512, vocab=512, context=64)
clock = time.thread_time


def _gpt_neox(s):
    import transformers

    return transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(
        vocab_size=s["vocab"], hidden_size=s["width"], num_hidden_layers=s["layers"], num_attention_heads=s["heads"],
        intermediate_size=s["inner"], max_position_embeddings=s["context"], bos_token_id=0, eos_token_id=0))


def _opt(s):
    import transformers

    return transformers.OPTForCausalLM(transformers.OPTConfig(
        vocab_size=s["vocab"], hidden_size=s["width"], num_hidden_layers=s["layers"], num_attention_heads=s["heads"],
        ffn_dim=s["inner"], max_position_embeddings=s["context"], word_embed_proj_dim=s["width"]))


def _phi3(s):
    import transformers

    return transformers.Phi3ForCausalLM(transformers.Phi3Config(
        vocab_size=s["vocab"], hidden_size=s["width"], num_hidden_layers=s["layers"], num_attention_heads=s["heads"],
        num_key_value_heads=s["heads"], intermediate_size=s["inner"], max_position_embeddings=s["context"],
        pad_token_id=0, bos_token_id=1, eos_token_id=2))


#: family name (spikelm's registry) -> the random transformers model of a shape
FAMILIES = {"gpt_neox": _gpt_neox, "opt": _opt, "phi3": _phi3}


def run_family(name: str, codings, n_tokens: int, shape=SHAPE) -> list[dict]:
    """One row per coding: the family's random model converted once per coding and run."""
    import torch

    from spikelm.lm import convert

    torch.manual_seed(0)
    model = FAMILIES[name](shape).eval()
    rng = np.random.default_rng(0)
    calib, ids = rng.integers(3, shape["vocab"], 256), rng.integers(3, shape["vocab"], n_tokens)
    rows = []
    for coding in codings:
        t0 = clock()
        snn = convert(model, calibration=calib, coding=coding)
        seconds = clock() - t0
        assert snn.family.name == name, f"{name}: converted as {snn.family.name}"
        run = snn.simulate(ids, backend="numba")
        if not np.array_equal(run.logits, snn.reference(ids).logits):
            raise AssertionError(f"{name}, {coding}: the spiking logits differ from the reference")
        rows.append({"family": name, "coding": coding, "convert_s": seconds, **coding_summary(run, snn.graph)})
    return rows


def table(rows) -> str:
    out = [f"{'family':<10}{'coding':<14}{'SynOps/MACs':>12}{'spikes/act':>11}{'steps/token':>12}{'convert s':>10}"]
    for r in rows:
        out.append(f"{r['family']:<10}{r['coding']:<14}{r['synops_over_macs']:>12.3f}"
                   f"{r['spikes_per_activation']:>11.3f}{r['steps_per_token']:>12.1f}{r['convert_s']:>10.2f}")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--codings", nargs="*", default=list(CODINGS), choices=list(CODINGS))
    ap.add_argument("--tokens", type=int, default=32, help="random tokens decoded spike by spike")
    args = ap.parse_args(argv)
    numba.set_num_threads(1)
    import torch

    torch.set_num_threads(1)
    print(f"shape: {SHAPE}; {args.tokens} tokens; default precision; numba, 1 thread; "
          "every run equal to its reference bit for bit")
    rows = [r for name in args.families for r in run_family(name, args.codings, args.tokens)]
    print(table(rows))


if __name__ == "__main__":
    main()
