"""Perplexities of the float model, the QANN and the SNN on held-out text, and top-1 agreement.

``python -m spikelm.lm.evaluate [--bits 8 6 4] [--snn-chars 1024]`` prints the table of
docs/lm.md for the shipped demo model. Text is cut into windows of the context length; each
window is scored from its second token on.
"""

from __future__ import annotations

import argparse
import math

import numpy as np


def _nll(logits: np.ndarray, targets: np.ndarray) -> float:
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return float(-logp[np.arange(len(targets)), targets].sum())


def windows(ids: np.ndarray, ctx: int):
    return [ids[s : s + ctx] for s in range(0, len(ids) - 1, ctx) if len(ids[s : s + ctx]) >= 2]


def evaluate(snn, ids: np.ndarray, snn_tokens: int = 0, backend: str = "numba") -> dict:
    """Float and QANN perplexity and agreement on ``ids``; SNN on the first ``snn_tokens``."""
    ctx = snn.config.n_positions
    out = {"float_nll": 0.0, "qann_nll": 0.0, "n": 0, "agree": 0, "snn_nll": 0.0, "snn_qann_nll": 0.0,
           "snn_n": 0, "snn_exact": True}
    for w in windows(ids, ctx):
        f = snn.float_logits(w)
        q = snn.reference(w).logits
        out["float_nll"] += _nll(f[:-1], w[1:])
        out["qann_nll"] += _nll(q[:-1], w[1:])
        out["agree"] += int((f[:-1].argmax(-1) == q[:-1].argmax(-1)).sum())
        out["n"] += len(w) - 1
    for w in windows(ids[:snn_tokens], ctx):
        s = snn.simulate(w, backend=backend).logits
        q = snn.reference(w).logits
        out["snn_exact"] &= bool(np.array_equal(s, q))
        out["snn_nll"] += _nll(s[:-1], w[1:])
        out["snn_qann_nll"] += _nll(q[:-1], w[1:])
        out["snn_n"] += len(w) - 1
    res = {
        "tokens": out["n"],
        "float_ppl": math.exp(out["float_nll"] / out["n"]),
        "qann_ppl": math.exp(out["qann_nll"] / out["n"]),
        "top1_agreement": out["agree"] / out["n"],
    }
    if out["snn_n"]:
        res.update(snn_tokens=out["snn_n"], snn_ppl=math.exp(out["snn_nll"] / out["snn_n"]),
                   qann_ppl_same_tokens=math.exp(out["snn_qann_nll"] / out["snn_n"]),
                   snn_logits_exact=out["snn_exact"])
    return res


def main(argv=None):
    from spikelm.lm.convert import demo_model_path, load_demo

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bits", type=int, nargs="+", default=[8, 6, 4])
    ap.add_argument("--chars", type=int, default=20000, help="held-out characters scored")
    ap.add_argument("--snn-chars", type=int, default=1024, help="of which simulated spike by spike")
    args = ap.parse_args(argv)
    for bits in args.bits:
        snn, tok = load_demo(bits=bits)
        text = tok.clean((demo_model_path() / "heldout.txt").read_text())[: args.chars]
        r = evaluate(snn, tok.encode(text), args.snn_chars)
        print(f"bits {bits}: tokens {r['tokens']}, float ppl {r['float_ppl']:.3f}, QANN ppl {r['qann_ppl']:.3f}, "
              f"top-1 agreement {100 * r['top1_agreement']:.2f}%; SNN on {r.get('snn_tokens', 0)} tokens: "
              f"ppl {r.get('snn_ppl', float('nan')):.3f} (QANN on the same tokens "
              f"{r.get('qann_ppl_same_tokens', float('nan')):.3f}, logits exact: {r.get('snn_logits_exact')})",
              flush=True)


if __name__ == "__main__":
    main()
