"""BrainGPT section 3.2.3 on a running spiking LM: does online learning cut the steps per token,
and how far does the output move?

    python -m benchmarks.lm_plasticity                  # the demo model, 64 held-out tokens
    python -m benchmarks.lm_plasticity --tokens 128 --json out.json
    python -m benchmarks.lm_plasticity --model smollm2 --tokens 16    # a short SmolLM2 run
    python -m benchmarks.lm_plasticity --model smollm2 --adapt GPL-3  # learning that helps (lm_adapt.py)

For each rule and learning rate, the model reads the same held-out text token by token while
learning (greedy reading, teacher-forced: the text, not its own output, comes next), and the
run is compared position by position with the exact reference (the QANN; the exact spiking
run gives the reference steps and spikes):

- ``braingpt_stdp``: eqs. 11, 15, 16 on every synaptic projection (A+ = A- = 1 weight unit,
  tau+ = tau- = 20 steps, all-pairs, row sums kept), plain SignedIF neurons, unit coding
  (one ternary spike per step, as BrainGPT's neurons);
- ``braingpt_homeostasis``: every spiking population as EI-IF neurons (eq. 1) with eq. 12 on
  theta_base (s_target 0.1 spikes per step, averages over 20 steps; eqs. 13-14 at rate 0: with
  r = 1 the membrane after a step is 0, so they would only push alpha and r by constants);
- ``target_spikes``: every spiking population adapts its spike units toward 2 spikes per
  token per neuron (unit coding).

``--model smollm2`` (short): BrainGPT STDP on the seven projections of layer 0, and target spikes
(2 per token) on every neuron, in signed-digit coding (12-bit codes in unit coding would take
thousands of steps per population).

Columns: learning rate, steps per token (all tokens, and the last quarter, where learning has
acted longest) against the exact run's, spikes per token, perplexity of the text under the
learning run and under the exact model, top-1 agreement with the exact model (all, last
quarter), the largest logit difference, the main learned-state change, learning work per token.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

RULES = {
    "braingpt_stdp": ("unit", [1e-6, 1e-5, 1e-4, 1e-3, 1e-2], lambda eta: {"projections": {"*": {"plasticity": {
        "rule": "braingpt_stdp", "eta_w": eta, "a_plus": 1.0, "a_minus": 1.0, "tau_plus": 20.0, "tau_minus": 20.0}}}}),
    "braingpt_homeostasis": ("unit", [1e-4, 1e-3, 1e-2, 1e-1], lambda eta: {"populations": {"*": {
        "neuron": "eiif_exact", "plasticity": {"rule": "braingpt_homeostasis", "eta_theta": eta, "s_target": 0.1,
                                         "tau_avg": 20.0}}}}),
    "target_spikes": ("unit", [0.01, 0.03, 0.1], lambda eta, target=2.0: {"populations": {"*": {"plasticity": {
        "rule": "target_spikes", "target": target, "eta": eta}}}}),
}
SMOLLM2_RULES = {
    "braingpt_stdp": ("signed_digit", [1e-5, 1e-4, 1e-3, 1e-2], lambda eta: {"projections": {"h0.*": {"plasticity": {
        "rule": "braingpt_stdp", "eta_w": eta, "a_plus": 1.0, "a_minus": 1.0, "tau_plus": 20.0,
        "tau_minus": 20.0}}}}),
    "target_spikes": ("signed_digit", [0.03, 0.1, 0.3], lambda eta, target=2.0: {"populations": {"*": {
        "plasticity": {"rule": "target_spikes", "target": target, "eta": eta}}}}),
}
CHANGE = ("dw_mean", "theta_base_mean", "unit_mean")


def _model(name: str, context: int):
    if name == "demo":
        from spikelm.lm.convert import demo_model_path, load_demo

        snn, tok = load_demo(bits=8)
        text = tok.clean((demo_model_path() / "heldout.txt").read_text())
        return snn, tok, text
    from spikelm.lm import texts
    from spikelm.lm.models import open_for_cli

    path = name
    if name == "smollm2":
        path = "/work/models/smollm2-hf"
        from pathlib import Path

        if not Path(path).is_dir():
            from spikelm.lm.smollm2 import gguf_path

            path = str(gguf_path())
    snn, tok, _ = open_for_cli(path, context=context)
    return snn, tok, texts.heldout_text()


def run_rule(snn, ids, plasticity, backend):
    t0 = time.perf_counter()
    sim = snn.simulate(ids, backend=backend, plasticity=plasticity)
    seconds = time.perf_counter() - t0
    d = sim.drift
    s = d.summary()
    change = next((f"{k[:-5]} {s[k]:.3g}" for k in CHANGE if k in s), "-")
    return {**s, "change": change, "seconds": seconds, "learn_ops_per_token": s.get("learn_ops", 0) / len(ids)}


def target_check(snn, ids, rule_table, backend):
    """Mean spikes per token per neuron under the target-spikes rule, over the last half of the text."""
    from spikelm.lm.learn.session import Learning

    run = Learning(snn, rule_table, backend)
    sim = run.feed(ids, record=True, drift=False)
    g = run.graph
    steps, pops, nodes, vals = sim.events
    half = len(ids) // 2
    out = {}
    exact = snn.simulate(ids, backend=backend, record=True)
    e_steps, e_pops, e_nodes, _ = exact.events
    target = next(iter(run.state.token_rules))[1].target
    reach, got = [], []
    for p, pop in enumerate(g.pops):
        if not pop.spiking or pop.op == "softmax":  # attention probabilities: heads x (n + 1) live neurons
            continue
        pos = nodes[pops == p] // pop.size - g.n_prefix
        chan = nodes[pops == p] % pop.size
        m = pos >= half
        per = np.bincount(chan[m], minlength=pop.size) / (len(ids) - half)
        e_pos = e_nodes[e_pops == p] // pop.size - g.n_prefix
        e_chan = e_nodes[e_pops == p] % pop.size
        e_per = np.bincount(e_chan[e_pos >= half], minlength=pop.size) / (len(ids) - half)
        ok = e_per >= target  # neurons that fire at least the target when exact: the rule can reach it
        reach.append(per[ok])
        got.append(per)
    reach, got = np.concatenate(reach), np.concatenate(got)
    out["target"] = target
    out["neurons_that_can_reach_it"] = int(reach.size)
    out["their_mean_spikes_per_token"] = float(reach.mean()) if reach.size else float("nan")
    out["all_neurons_mean_spikes_per_token"] = float(got.mean())
    return out


def table(rows) -> str:
    head = (f"{'rule':<21}{'rate':>8}{'steps/tok':>10}{'last 1/4':>9}{'exact':>8}{'spikes/tok':>11}{'ppl':>10}"
            f"{'ppl exact':>10}{'top-1':>7}{'last 1/4':>9}{'max|dlogit|':>12}  {'change':<20}{'learn ops/tok':>14}")
    out = [head]
    for r in rows:
        out.append(f"{r['rule']:<21}{r['rate']:>8.0e}{r['steps_per_token']:>10.1f}{r['steps_last_quarter']:>9.1f}"
                   f"{r['steps_exact_per_token']:>8.1f}{r['spikes_per_token']:>11,.0f}{r['ppl']:>10.4g}"
                   f"{r['ppl_exact']:>10.3f}{100 * r['top1_agreement']:>6.1f}%"
                   f"{100 * r['top1_agreement_last_quarter']:>8.1f}%{r['max_dlogit']:>12.3g}  {r['change']:<20}"
                   f"{r['learn_ops_per_token']:>14,.0f}")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="demo", help="demo (default), smollm2, or a model folder")
    ap.add_argument("--tokens", type=int, default=None, help="held-out tokens read (default 64; SmolLM2 24)")
    ap.add_argument("--context", type=int, default=64, help="positions built for Llama-family models (default 64)")
    ap.add_argument("--rules", default=None, help="comma-separated subset of: " + ", ".join(RULES))
    ap.add_argument("--rates", default=None, help="comma-separated learning rates instead of each rule's sweep")
    ap.add_argument("--target", type=float, default=2.0, help="spikes per token of the target-spikes rule (default 2)")
    ap.add_argument("--backend", default="numba", choices=("numba", "numpy"))
    ap.add_argument("--json", default=None, help="also write every figure here")
    ap.add_argument("--adapt", default=None, metavar="TEXT",
                    help="learning that helps: read this text (a file, or GPL-3) with the readout rule; "
                         "see benchmarks/lm_adapt.py")
    ap.add_argument("--window", type=int, default=128, help="--adapt: tokens per window (default 128)")
    ap.add_argument("--check", type=int, default=0, help="--adapt: also run this many tokens spike by spike")
    ap.add_argument("--inside", action="store_true",
                    help="--adapt: the gated BrainGPT rule on every MLP down projection, spike by spike, instead")
    ap.add_argument("--sweep", default=None,
                    help="--adapt: settings eta/eta_bias/threshold/decay separated by commas (default: a sweep)")
    args = ap.parse_args(argv)
    if args.adapt:
        return _adapt(args)
    snn, tok, text = _model(args.model, args.context)
    rules = RULES if args.model == "demo" else SMOLLM2_RULES
    n = args.tokens or (64 if args.model == "demo" else 24)
    ids = tok.encode(text)[: min(n, snn.context)]
    chosen = [r.strip() for r in args.rules.split(",")] if args.rules else list(rules)
    print(f"model {args.model}: {snn.config.n_layer} layers, bits {snn.bits}; {len(ids)} held-out tokens; "
          f"backend {args.backend}", flush=True)
    rows, checks = [], {}
    for name in chosen:
        if name not in rules:
            print(f"--rules: unknown rule {name!r}; allowed: {', '.join(rules)}", file=sys.stderr)
            return 2
        coding, rates, make = rules[name]
        rates = [float(x) for x in args.rates.split(",")] if args.rates else rates
        if name == "target_spikes":
            make = (lambda f: lambda eta: f(eta, args.target))(make)
        model = snn.with_coding(coding)
        for eta in rates:
            r = run_rule(model, ids, make(eta), args.backend)
            rows.append({"rule": name, "coding": coding, "rate": eta, **r})
            print(table(rows[-1:]).splitlines()[-1], f"  ({r['seconds']:.1f} s)", flush=True)
        if name == "target_spikes":
            checks[name] = (rates[-1], target_check(model, ids, make(rates[-1]), args.backend))
    print()
    print(table(rows))
    for name, (rate, c) in checks.items():
        print(f"\n{name} at rate {rate}: target {c['target']} spikes per token per neuron; over the "
              f"last half of the text the {c['neurons_that_can_reach_it']:,} neurons that fire at least that when "
              f"exact fire {c['their_mean_spikes_per_token']:.3f} on average "
              f"({100 * (c['their_mean_spikes_per_token'] / c['target'] - 1):+.1f} %); all neurons "
              f"{c['all_neurons_mean_spikes_per_token']:.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "tokens": len(ids), "rows": rows, "checks": checks}, f, indent=1,
                      default=float)
    return 0


def _adapt(args) -> int:
    from benchmarks import lm_adapt

    text = lm_adapt.adapt_text(args.adapt)
    snn, tok, _ = _model(args.model, max(args.context, args.window))
    sweep = lm_adapt.SWEEP if not args.sweep else \
        [tuple(float(x) for x in s.split("/")) for s in args.sweep.split(",")]
    tokens = args.tokens or 4096
    if args.inside:
        sweep = lm_adapt.INSIDE if not args.sweep else \
            [tuple(float(x) for x in s.split("/")) for s in args.sweep.split(",")]
        info, rows = lm_adapt.inside_experiment(snn, tok, text, args.tokens or 1024, min(args.window, snn.context),
                                                sweep)
        print(lm_adapt.inside_table(info, rows))
        return 0
    print(f"model {args.model}: {snn.config.n_layer} layers, bits {snn.bits}; adapting on {args.adapt}", flush=True)
    info, rows = lm_adapt.experiment(snn, tok, text, tokens, min(args.window, snn.context), sweep, args.check)
    print(lm_adapt.table(info, rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "info": info, "rows": rows}, f, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
