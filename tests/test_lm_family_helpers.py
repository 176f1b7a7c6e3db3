"""Shared helpers of the GPT-NeoX, OPT and Phi-3 tests (no tests here): random transformers
models with large weights, the transformers forward on the converted model's input, the
exactness and counting checks every family runs, and model folders in every layout."""

from __future__ import annotations

import json

import numpy as np
import torch
from hypothesis import HealthCheck

from test_lm_exact import independent_synops
from test_lm_helpers import assert_lm_agree, assert_matches_reference
from spikelm.lm.tokenizer import CharTokenizer

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
CLASSES = {"gpt_neox": ("GPTNeoXConfig", "GPTNeoXForCausalLM"), "opt": ("OPTConfig", "OPTForCausalLM"),
           "phi3": ("Phi3Config", "Phi3ForCausalLM")}
#: the transformers forward and the quantized reference at 12 bits may differ by this much (issue 21)
TOLERANCE = 0.03
TEXT = "Return the value of the attribute.\nIf the file does not exist, raise an error.\n" * 20


def random_model(family: str, seed: int, std: float = 0.3, **config):
    """A transformers causal LM of ``family`` with large random weights (norm weights near 1),
    so that codes use their whole range; dropout off."""
    import transformers

    cfg_cls, model_cls = CLASSES[family]
    torch.manual_seed(seed)
    model = getattr(transformers, model_cls)(getattr(transformers, cfg_cls)(**config)).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))
    return model


def transformers_logits(model, snn, ids) -> np.ndarray:
    """The transformers forward (float64) on the input the converted model reads: its constant
    prefix (the BOS sink), then ``ids``; the prefix's rows dropped."""
    g = snn.graph
    full = np.concatenate([g.prefix.ids, ids]) if g.prefix is not None else np.asarray(ids)
    with torch.no_grad():
        out = model.double()(torch.tensor(full, dtype=torch.long)[None]).logits[0, g.n_prefix :].numpy()
    model.float()
    return out


def relative_error(got, want) -> float:
    """max |got - want| / max |want|: the relative logit error."""
    return float(np.abs(got - want).max() / np.abs(want).max())


def closed_form_macs(snn, L: int, d: int, heads: int, kv_heads: int, head_dim: int, inner: int, gated: bool,
                     vocab: int, final_norm: bool = True, proj_out: int | None = None) -> dict:
    """Dense MACs per layer of decoding L text tokens with a KV cache, from the shape alone: per
    position n (after the prefix) and layer, the projections d (H + 2 G) dh + H dh d, the MLP
    (2 or 3) d f, Q·K^T and A·V 2 (n + 1) H dh, a gated MLP's product f; proj_out d p; the head
    (p or d) V."""
    start = snn.graph.n_prefix
    per_layer = d * (heads + 2 * kv_heads) * head_dim + heads * head_dim * d + (3 if gated else 2) * d * inner
    per_layer += inner if gated else 0
    out = {"emb": 0}
    for i in range(snn.config.n_layer):
        out[f"h{i}"] = sum(per_layer + 2 * (n + 1) * heads * head_dim for n in range(start, start + L))
    if final_norm:
        out["normf"] = 0
    if proj_out:
        out["proj_out"] = L * d * proj_out
    out["head"] = L * (proj_out or d) * vocab
    out["total"] = sum(out.values())
    return out


def assert_exact_and_counted(snn, ids, macs: dict, backend: str = "numba"):
    """The run equals the reference bit for bit; SynOps and shift-adds have their closed forms
    from the codes, MACs the shape's, the energy estimate the defaults' product."""
    from spikelm.lm.report import E_AC_PJ, E_MAC_PJ, sim_energy

    ref = snn.reference(ids)
    run = snn.simulate(ids, backend=backend)
    assert_matches_reference(snn, ids, run, ref)
    assert (run.synops["total"], run.shift_adds["total"]) == independent_synops(snn, ref.codes, len(ids),
                                                                               start=snn.graph.n_prefix)
    assert run.macs == macs
    e = sim_energy(run)
    assert np.isclose(e["snn_j"], run.synops["total"] * E_AC_PJ * 1e-12)
    assert np.isclose(e["ann_j"], macs["total"] * E_MAC_PJ * 1e-12)
    return ref, run


def assert_backends_agree(snn, ids):
    """numpy and numba each equal the reference, and each other bit for bit (spikes included)."""
    ref = snn.reference(ids)
    runs = {b: snn.simulate(ids, backend=b, record=True) for b in ("numpy", "numba")}
    for run in runs.values():
        assert_matches_reference(snn, ids, run, ref)
    assert_lm_agree(runs["numpy"], runs["numba"])


def save(model, folder, layout: str = "safetensors"):
    """``save_pretrained`` of ``model`` into ``folder``: ``safetensors``, ``sharded`` (several
    safetensors files and their index) or ``bin`` (pytorch_model.bin, a plain state dict)."""
    if layout == "sharded":
        model.save_pretrained(folder, max_shard_size="4KB")
        assert (folder / "model.safetensors.index.json").is_file()
    else:
        model.save_pretrained(folder)
    if layout == "bin":
        (folder / "model.safetensors").unlink()
        torch.save({k: v.clone() for k, v in model.state_dict().items()}, folder / "pytorch_model.bin")
    return folder


def edit_config(folder, **changes):
    """Change fields of a saved folder's config.json (None deletes one)."""
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    path.write_text(json.dumps(cfg))


def cli_folder(model, folder):
    """A model folder the commands read: the weights, spikelm's character tokenizer (the model's
    vocabulary must be its 96 tokens) and sample texts."""
    tok = CharTokenizer()
    assert model.config.vocab_size == tok.vocab_size
    save(model, folder)
    tok.save(folder / "tokenizer.json")
    (folder / "heldout.txt").write_text(TEXT)
    (folder / "calibration.txt").write_text(TEXT[::-1])
    return folder


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """``spikelm ARGV`` in this process: (exit code, stdout, stderr)."""
    from spikelm.cli import main

    capsys.readouterr()  # what came before (transformers' progress bars) is not the command's
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err
