"""NEST side of the microcircuit benchmark: PD14 as the reference implementation builds it.

    python benchmarks/peers/microcircuit_nest.py --params P.json --spikes-out S.npz \
        [--duration-ms 1000] [--presim-ms 500] [--threads 1] [--seed S]

``P.json`` is the model at its scale, written by ``python -m benchmarks.microcircuit`` from
spikelm's scenarios/microcircuit.toml (neurons, synapse counts, mean weights in pA, external
input, DC, delays, initial potentials), so NEST and spikelm run the same numbers. Built as the
INM-6 microcircuit-PD14-model's network.py builds it: iaf_psc_exp, fixed_total_number
connections, weights and delays from nest.math.redraw(nest.random.normal(...)), Poisson
generators or DC. Runs ``presim`` then ``duration`` ms (timed apart), writes every spike to
``S.npz`` (per population: times in ms, local neuron ids) and prints one JSON line.
Runs in the peers venv (benchmarks/setup_peers.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def build(nest, P):
    nrn = P["neuron"]
    dt = P["dt"]
    pops = []
    for i, _ in enumerate(P["populations"]):
        nodes = nest.Create("iaf_psc_exp", int(P["n"][i]))
        nodes.set(C_m=nrn["c_m"], tau_m=nrn["tau_m"], tau_syn_ex=nrn["tau_syn"], tau_syn_in=nrn["tau_syn"],
                  E_L=nrn["e_l"], V_th=nrn["v_th"], V_reset=nrn["v_reset"], t_ref=nrn["t_ref"],
                  I_e=float(P["dc_pA"][i]))
        nodes.set(V_m=nest.random.normal(P["v0_mean"][i], P["v0_std"][i]))
        pops.append(nodes)
    for i, target in enumerate(pops):
        for j, source in enumerate(pops):
            n_syn = int(P["synapses"][i][j])
            if n_syn == 0:
                continue
            w = P["weight_pA"][i][j]
            d = P["delay_exc"] if j % 2 == 0 else P["delay_inh"]
            lo, hi = (0.0, np.inf) if w >= 0 else (-np.inf, 0.0)
            syn = {"synapse_model": "static_synapse",
                   "weight": nest.math.redraw(nest.random.normal(mean=w, std=abs(w) * P["weight_rel_std"]),
                                              min=lo, max=hi),
                   "delay": nest.math.redraw(nest.random.normal(mean=d, std=d * P["delay_rel_std"]),
                                             min=0.5 * dt, max=np.inf)}
            nest.Connect(source, target, {"rule": "fixed_total_number", "N": n_syn}, syn)
    n_syn = nest.GetKernelStatus("num_connections")
    if P["background"] == "poisson":
        for i, target in enumerate(pops):
            gen = nest.Create("poisson_generator", params={"rate": P["bg_rate"] * P["k_ext"][i]})
            nest.Connect(gen, target, "all_to_all",
                         {"synapse_model": "static_synapse", "weight": P["weight_ext_pA"], "delay": 1.5})
    recs = []
    for nodes in pops:
        rec = nest.Create("spike_recorder")
        nest.Connect(nodes, rec)
        recs.append(rec)
    return pops, recs, int(n_syn)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", required=True)
    ap.add_argument("--spikes-out", required=True)
    ap.add_argument("--duration-ms", type=float, default=1000.0)
    ap.add_argument("--presim-ms", type=float, default=500.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    with open(args.params) as f:
        P = json.load(f)

    # NEST prints a banner and progress on stdout; the one JSON line must be alone there.
    real_stdout = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    os.environ.setdefault("PYNEST_QUIET", "1")
    t0 = time.perf_counter()
    import nest

    if hasattr(nest, "VerbosityLevel"):  # NEST >= 3.9
        nest.verbosity = nest.VerbosityLevel.ERROR
    nest.ResetKernel()
    nest.SetKernelStatus({"resolution": P["dt"], "local_num_threads": args.threads, "rng_seed": args.seed,
                          "print_time": False})
    pops, recs, n_syn = build(nest, P)
    nest.Prepare()   # NEST builds its presynaptic structures here: part of the set-up
    nest.Cleanup()
    t1 = time.perf_counter()
    if args.presim_ms > 0:
        nest.Simulate(args.presim_ms)
    t2, c2 = time.perf_counter(), time.process_time()
    nest.Simulate(args.duration_ms)
    t3, c3 = time.perf_counter(), time.process_time()
    spikes = {}
    for name, nodes, rec in zip(P["populations"], pops, recs):
        ev = rec.get("events")
        spikes[f"{name}_t"] = np.asarray(ev["times"], dtype=np.float64)
        spikes[f"{name}_i"] = np.asarray(ev["senders"], dtype=np.int64) - nodes[0].global_id
    np.savez(args.spikes_out, **spikes)
    out = {"peer": "nest", "device": "nest", "net": "microcircuit", "n_neurons": int(sum(len(p) for p in pops)),
           "n_synapses": n_syn, "duration_ms": args.duration_ms, "presim_ms": args.presim_ms,
           "threads": args.threads, "seed": args.seed, "setup_s": round(t1 - t0, 3), "presim_s": round(t2 - t1, 3),
           "loop_s": round(t3 - t2, 3), "loop_cpu_s": round(c3 - c2, 3), "loop_clock": "wall",
           "version": str(getattr(nest, "__version__", "?"))}
    os.write(real_stdout, (json.dumps(out) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
