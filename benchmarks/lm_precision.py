"""Perplexity against SynOps for a few precision settings on the demo model:
``python -m benchmarks.lm_precision [--chars 20000] [--sim-tokens 64]``.

For each setting (bits per point group, see spikelm/lm/precision.py): the float and QANN
perplexity on held-out text and the QANN's top-1 agreement with float, then, per spike
coding, SynOps / dense MACs, shift-add share, spikes per activation and steps per token of an
event-driven run on the first held-out tokens (counts, not times: they do not depend on the
machine). The SNN's logits equal the QANN's (checked on the simulated tokens).
"""

from __future__ import annotations

import argparse

import numpy as np

from spikelm.lm import convert, demo_model_path
from spikelm.lm.codings import CODINGS
from spikelm.lm.evaluate import evaluate
from spikelm.lm.report import coding_summary
from spikelm.lm.tokenizer import CharTokenizer

SETTINGS = ("8", "6", "4", "lin=6,act=8,res=8,att=8,oth=6", "lin=8,act=8,res=12,att=12,oth=8",
            "lin=6,act=8,res=12,att=12,oth=8", "12")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chars", type=int, default=20000, help="held-out characters scored")
    ap.add_argument("--sim-tokens", type=int, default=64, help="tokens simulated spike by spike per coding")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS))
    args = ap.parse_args(argv)
    folder = demo_model_path()
    tok = CharTokenizer.load(folder / "tokenizer.json")
    calib = tok.encode(tok.clean((folder / "calibration.txt").read_text())[:4000])
    ids = tok.encode(tok.clean((folder / "heldout.txt").read_text())[: args.chars])
    sim_ids = ids[: args.sim_tokens]
    print(f"demo model, {len(ids) - 1} scored characters; SynOps counted on {len(sim_ids)} tokens")
    print(f"{'bits':<34}{'QANN ppl':>9}{'vs float':>9}{'top-1':>7}  "
          + "  ".join(f"{c + ' SynOps/MACs':>24}" for c in CODINGS) + f"{'steps/token (sd)':>18}")
    for setting in args.settings:
        snn = convert(folder, calibration=calib, bits=setting, coding="signed_digit")
        r = evaluate(snn, ids)
        cells, steps = [], None
        for coding in CODINGS:
            s = snn.with_coding(coding)
            sim = s.simulate(sim_ids)
            assert np.array_equal(sim.logits, s.reference(sim_ids).logits)
            summ = coding_summary(sim, s.graph)
            cells.append(f"{summ['synops_over_macs']:>24.3f}")
            if coding == "signed_digit":
                steps = summ["steps_per_token"]
        print(f"{str(snn.bits):<34}{r['qann_ppl']:>9.3f}{100 * (r['qann_ppl'] / r['float_ppl'] - 1):>8.1f}%"
              f"{100 * r['top1_agreement']:>6.1f}%  " + "  ".join(cells) + f"{steps:>18.1f}", flush=True)
    print(f"float perplexity {r['float_ppl']:.3f}")


if __name__ == "__main__":
    main()
