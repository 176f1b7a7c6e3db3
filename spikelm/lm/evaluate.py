"""Perplexities of the float model, the QANN and the SNN on a text, top-1 agreement, and what
the spiking run cost.

Text is cut into windows of ``window`` tokens (default: the model's context, at most 512);
each window is scored from its second token on. The SNN runs spike by spike on the first
``snn_tokens`` tokens (in windows as well), with its logits checked equal to the QANN's;
its SynOps are compared with the dense model's MACs on the same tokens.

``python -m spikelm.lm.evaluate [--bits 8 6 4] [--snn-chars 1024]`` prints the demo model's
table of docs/lm.md.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np


#: logit rows normalised at a time (the temporaries of a [rows, vocab] block)
NLL_ROWS = 64


def _nll(logits: np.ndarray, targets: np.ndarray) -> float:
    """Summed negative log-likelihood of ``targets``; rows are independent, so blocks of
    NLL_ROWS give each row's log-probability as one pass would, summed once at the end."""
    picked = np.empty(len(targets))
    for lo in range(0, len(targets), NLL_ROWS):
        rows = logits[lo : lo + NLL_ROWS]
        z = rows - rows.max(-1, keepdims=True)
        picked[lo : lo + NLL_ROWS] = z[np.arange(len(z)), targets[lo : lo + NLL_ROWS]] - np.log(np.exp(z).sum(-1))
    return float(-picked.sum())


def windows(ids: np.ndarray, size: int):
    return [ids[s : s + size] for s in range(0, len(ids) - 1, size) if len(ids[s : s + size]) >= 2]


def evaluate(snn, ids: np.ndarray, snn_tokens: int = 0, backend: str = "numba", window: int | None = None,
             max_steps: int | None = None, progress: bool = False) -> dict:
    """Float and QANN perplexity and agreement on ``ids``; the SNN on the first ``snn_tokens``.

    Returns tokens, float_ppl, qann_ppl, top1_agreement (and the NLL sums), and, when the SNN
    ran: snn_tokens, snn_ppl, qann_ppl_same_tokens and float_ppl_same_tokens (the QANN and the
    float model on the SNN's tokens: the figures to compare snn_ppl with), snn_logits_exact, synops, macs,
    synops_over_macs, shift_adds, spikes, spikes_per_activation, steps.
    """
    from tqdm import tqdm

    from spikelm.lm.report import activations

    size = min(snn.context, 512) if window is None else min(int(window), snn.context)
    out = {"float_nll": 0.0, "qann_nll": 0.0, "tokens": 0, "agree": 0}
    ws = windows(np.asarray(ids), size)
    bar = tqdm(total=len(ws), desc="float + QANN", unit="window", file=sys.stderr, disable=not progress)
    for w in ws:
        f = snn.float_logits(w)
        out["float_nll"] += _nll(f[:-1], w[1:])
        f_top = f[:-1].argmax(-1)
        del f  # one [window, vocab] array at a time
        q = snn.reference(w, codes=False).logits
        out["qann_nll"] += _nll(q[:-1], w[1:])
        out["agree"] += int((f_top == q[:-1].argmax(-1)).sum())
        del q
        out["tokens"] += len(w) - 1
        bar.update()
    bar.close()
    n = max(out["tokens"], 1)
    res = {"tokens": out["tokens"], "float_ppl": math.exp(out["float_nll"] / n),
           "qann_ppl": math.exp(out["qann_nll"] / n), "top1_agreement": out["agree"] / n,
           "float_nll": out["float_nll"], "qann_nll": out["qann_nll"]}
    sw = windows(np.asarray(ids)[:snn_tokens], size) if snn_tokens else []
    if not sw:
        return res
    s = {"snn_nll": 0.0, "qann_nll": 0.0, "float_nll": 0.0, "n": 0, "exact": True, "synops": 0, "macs": 0, "shift_adds": 0,
         "spikes": 0, "act": 0, "steps": 0, "positions": 0}
    bar = tqdm(total=sum(len(w) for w in sw), desc="SNN", unit="token", file=sys.stderr, disable=not progress)
    for w in sw:
        sim = snn.simulate(w, backend=backend, max_steps=max_steps, on_token=lambda *a: bar.update())
        q = snn.reference(w, codes=False).logits
        s["exact"] &= bool(np.array_equal(sim.logits, q))
        s["snn_nll"] += _nll(sim.logits[:-1], w[1:])
        s["qann_nll"] += _nll(q[:-1], w[1:])
        s["float_nll"] += _nll(snn.float_logits(w)[:-1], w[1:])  # the float model on the SNN's tokens too
        s["n"] += len(w) - 1
        for key in ("synops", "macs", "shift_adds", "spikes"):
            s[key] += int(getattr(sim, key)["total"])
        s["act"] += activations(snn.graph, len(w), snn.graph.n_prefix)
        s["steps"] += int(sim.steps.sum())
        s["positions"] += len(w)
    bar.close()
    res.update(snn_tokens=s["n"], snn_ppl=math.exp(s["snn_nll"] / s["n"]),
               qann_ppl_same_tokens=math.exp(s["qann_nll"] / s["n"]), snn_logits_exact=s["exact"],
               float_ppl_same_tokens=math.exp(s["float_nll"] / s["n"]), float_nll_same_tokens=s["float_nll"],
               snn_nll=s["snn_nll"], qann_nll_same_tokens=s["qann_nll"],
               synops=s["synops"], macs=s["macs"], synops_over_macs=s["synops"] / max(s["macs"], 1),
               shift_adds=s["shift_adds"], spikes=s["spikes"], spikes_per_activation=s["spikes"] / max(s["act"], 1),
               steps=s["steps"], steps_per_token=s["steps"] / s["positions"])
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
