"""The cost frontier of a Llama-family model: perplexity against SynOps per dense MAC, one row
per conversion method / setting:
``python -m benchmarks.lm --model PATH_OR_GGUF --frontier [--calibration FILE] [--chars 4000]``.

Every row converts the model once (calibrated on ``--calibration``, default the built-in
calibration text) and evaluates its QANN on three texts the calibration never saw: the
built-in held-out text (Python's reference topics, first half), the GNU GPL-3 and the Apache
License 2.0 (``/usr/share/common-licenses``), in windows of 512 tokens. SynOps come from the
QANN's codes in closed form (:func:`spikelm.lm.report.synops_of_codes`, equal to the spiking
run's count: tests/test_lm_cost.py), against the dense model's MACs on the same positions.
For the default row, ``--snn-tokens`` tokens of the held-out text also run spike by spike:
their logits must equal the QANN's bit for bit; steps per token, spikes per activation and
the energy estimate come from that run. One thread for torch and numba.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

#: (label, convert options): what each row of the table changes from the default conversion
ROWS = (  # the most telling first: on a busy machine a partial table still answers the question
    ("default: row-exponents", {}),
    ("no methods (range steps)", dict(methods="none")),
    ("last round's clamps lin=32,act=64,res=8,oth=8", dict(clamp="lin=32,act=64,res=8,oth=8")),
    ("first default: clamp 8, no methods", dict(clamp=8, methods="none")),
    ("8-bit weights, row-exponents", dict(weight_bits=8)),
    ("8-bit weights, no methods", dict(weight_bits=8, methods="none")),
    ("fisher, row-exponents (the bits' mean step)", dict(methods="fisher,row-exponents")),
    ("fisher budget 1.6, row-exponents", dict(budget=1.6)),
    ("fisher budget 1.3, row-exponents", dict(budget=1.3)),
    ("fisher budget 1.0, row-exponents", dict(budget=1.0)),
    ("no methods, lin=act=7", dict(methods="none", bits="lin=7,act=7,res=12,att=12,oth=12")),
    ("no methods, lin=act=6", dict(methods="none", bits="lin=6,act=6,res=12,att=12,oth=12")),
    ("rotate, row-exponents", dict(methods="rotate,row-exponents")),
)
LICENSES = Path("/usr/share/common-licenses")


def texts_of(chars: int) -> dict:
    from spikelm.lm import texts

    out = {"held-out": texts.heldout_text(chars)}
    for name in ("GPL-3", "Apache-2.0"):
        if (LICENSES / name).is_file():
            out[name] = (LICENSES / name).read_text(encoding="utf-8")[:chars]
    return out


def windows(ids, size=512):
    return [ids[s : s + size] for s in range(0, len(ids) - 1, size) if len(ids[s : s + size]) >= 2]


def nll(logits, targets) -> float:
    z = logits - logits.max(-1, keepdims=True)
    return float(-(z - np.log(np.exp(z).sum(-1, keepdims=True)))[np.arange(len(targets)), targets].sum())


def qann_row(snn, ids) -> tuple[float, float]:
    """(QANN mean NLL, SynOps / dense MACs) over the windows of ``ids``."""
    from spikelm.lm.report import macs_per_layer, synops_of_codes

    g, total, n, synops, macs = snn.graph, 0.0, 0, 0, 0
    for w in windows(ids):
        ref = snn.reference(w)
        total += nll(ref.logits[:-1], w[1:])
        n += len(w) - 1
        synops += synops_of_codes(g, ref.codes, len(w), g.n_prefix)
        macs += macs_per_layer(g, len(w), g.n_prefix)["total"]
    return total / n, synops / macs


def float_nll(snn, ids) -> float:
    ws = windows(ids)
    return sum(nll(snn.float_logits(w)[:-1], w[1:]) for w in ws) / sum(len(w) - 1 for w in ws)


def spike_check(snn, ids) -> dict:
    """Run ``ids`` spike by spike; the logits against the QANN's and the per-token figures."""
    from spikelm.lm.report import coding_summary

    sim = snn.simulate(ids, backend="numba")
    out = coding_summary(sim, snn.graph)
    out["exact"] = bool(np.array_equal(sim.logits, snn.reference(ids).logits))
    return out


def main(argv=None) -> int:
    import numba
    import torch

    from spikelm.errors import ConfigError
    from spikelm.lm import texts as builtin
    from spikelm.lm.convert import convert
    from spikelm.lm.load import open_model
    from spikelm.lm.models import HFTokenizer, encode_loose, read_calibration, resolve, tokenizer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--frontier", action="store_true", required=True)
    ap.add_argument("--calibration", default=None, help="calibration text file (default: the built-in one)")
    ap.add_argument("--chars", type=int, default=4000, help="characters of each evaluation text")
    ap.add_argument("--snn-tokens", type=int, default=16, help="held-out tokens run spike by spike (default row)")
    ap.add_argument("--rows", default=None, help="comma-separated row numbers (1-based) to run; default all")
    args = ap.parse_args(argv)
    numba.set_num_threads(1)
    torch.set_num_threads(1)

    path = resolve(args.model)
    loaded = open_model(path)
    tok = HFTokenizer(loaded.tokenizer) if loaded.tokenizer is not None else tokenizer(path)
    calib_text = read_calibration(args.calibration) if args.calibration else builtin.calibration_text()
    calib = encode_loose(tok, calib_text)
    evals = {k: encode_loose(tok, v) for k, v in texts_of(args.chars).items()}
    pick = None if args.rows is None else {int(r) for r in args.rows.split(",")}
    print(f"{path.name}: calibration {args.calibration or 'built-in'} ({calib.size} tokens); texts "
          + ", ".join(f"{k} ({v.size} tokens)" for k, v in evals.items()), flush=True)
    head = f"{'#':>2} {'conversion':<58}" + "".join(f"{k + ' ppl (+%)':>24}{'SynOps/MAC':>11}" for k in evals)
    base, lines = None, []
    for r, (label, opts) in enumerate(ROWS, 1):
        if pick is not None and r not in pick:
            continue
        t = time.perf_counter()
        try:
            snn = convert(loaded, calibration=calib, **opts)
        except ConfigError as e:  # e.g. a budget below what the model reaches: the refusal is the row
            lines.append(f"{r:>2} {label:<58}refused: {e}")
            print(lines[-1], flush=True)
            continue
        if base is None:
            base = {k: float_nll(snn, ids) for k, ids in evals.items()}
            print("   float: " + ", ".join(f"{k} {math.exp(v):.3f}" for k, v in base.items()), flush=True)
            print(head, flush=True)
        cells = ""
        for k, ids in evals.items():
            q, cost = qann_row(snn, ids)
            ppl = math.exp(q)
            cells += f"{ppl:>13.3f} ({100 * (ppl / math.exp(base[k]) - 1):+6.2f}%){cost:>11.3f}"
        line = f"{r:>2} {label:<58}{cells}"
        lines.append(line)
        print(line + f"   [{time.perf_counter() - t:.0f} s]", flush=True)
        if not opts and args.snn_tokens:
            s = spike_check(snn, evals["held-out"][: args.snn_tokens])
            print(f"   spike by spike, {args.snn_tokens} held-out tokens: SNN logits == QANN logits: {s['exact']}; "
                  f"SynOps/MAC {s['synops_over_macs']:.3f}, steps/token {s['steps_per_token']:.1f}, spikes/activation "
                  f"{s['spikes_per_activation']:.3f}, energy estimate SNN/dense {s['energy_ratio']:.3f} "
                  "(0.9 pJ per AC vs 4.6 pJ per MAC; synaptic operations only); with data movement (weights in "
                  f"SRAM) SNN/QANN {s['data_movement_vs_qann']:.3f}, SNN/float {s['data_movement_vs_float']:.3f}",
                  flush=True)
    print("\n" + head + "\n" + "\n".join(lines))
    return 0
