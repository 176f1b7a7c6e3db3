"""NEST side of spikelm's peer benchmark.

    python benchmarks/peers/nest_net.py --net cuba|cuba40k|izhikevich|brunel \
        [--duration-ms D] [--threads 1] [--seed S]

Builds one of the benchmark networks, runs it, and prints one JSON line on stdout
(everything else NEST says goes to stderr). Runs in the peers venv made by
benchmarks/setup_peers.sh, not in spikelm's environment.

The parameters come from netparams.py, shared with brian2_net.py. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netparams import NETS, brunel_poisson_rate_hz, spike_stats


def build(net: str, nest, seed: int):
    """Create the network; returns ({population: (nodes, spike_recorder)}, n_synapses)."""
    import numpy as np

    p = NETS[net]
    pops = {}
    if net in ("cuba", "cuba40k"):
        # iaf_psc_exp: C_m dV/dt = -(C_m/tau_m)(V - E_L) + I_ex + I_in, exponential currents
        # that jump by the weight (pA). With C_m = tau_m (pF = ms numerically) a weight of
        # w pA is Brian2's ge += w mV in dv/dt = (ge + gi - (v - El)) / taum.
        params = {
            "C_m": p["tau_m"],
            "tau_m": p["tau_m"],
            "tau_syn_ex": p["tau_e"],
            "tau_syn_in": p["tau_i"],
            "t_ref": p["t_ref"],
            "E_L": p["e_l"],
            "V_th": p["v_th"],
            "V_reset": p["v_reset"],
            "I_e": 0.0,
        }
        n = p["n_exc"] + p["n_inh"]
        nodes = nest.Create("iaf_psc_exp", n, params=params)
        nodes.V_m = nest.random.uniform(min=p["v_reset"], max=p["v_th"])
        exc, inh = nodes[: p["n_exc"]], nodes[p["n_exc"]:]
        # spikelm's d steps on an exponential synapse = NEST's (d - 1) dt; CUBA's d = 1 would be
        # 0 ms, below NEST's minimum of one step, so NEST's CUBA runs one step later than
        # spikelm's and Brian2's (docs/coming-from-brian2-nest.md)
        conn = {"rule": "pairwise_bernoulli", "p": p["p_connect"], "allow_autapses": True}
        nest.Connect(exc, nodes, conn,
                     {"synapse_model": "static_synapse", "weight": p["w_e"], "delay": p["delay"]})
        nest.Connect(inh, nodes, conn,
                     {"synapse_model": "static_synapse", "weight": p["w_i"], "delay": p["delay"]})
        n_syn = nest.GetKernelStatus("num_connections")
        pops = {"exc": exc, "inh": inh}
    elif net == "izhikevich":
        rng = np.random.default_rng(seed)
        ne, ni = p["n_exc"], p["n_inh"]
        re, ri = rng.random(ne), rng.random(ni)
        a = np.concatenate([np.full(ne, 0.02), 0.02 + 0.08 * ri])
        b = np.concatenate([np.full(ne, 0.2), 0.25 - 0.05 * ri])
        c = np.concatenate([-65 + 15 * re**2, np.full(ni, -65.0)])
        d = np.concatenate([8 - 6 * re**2, np.full(ni, 2.0)])
        # consistent_integration False: Izhikevich's own scheme, two 0.5 ms half steps
        # for V at h = 1 ms, then U.
        nodes = nest.Create("izhikevich", ne + ni,
                            params={"V_th": p["v_peak"], "consistent_integration": False,
                                    "I_e": 0.0})
        nodes.set(a=a.tolist(), b=b.tolist(), c=c.tolist(), d=d.tolist(),
                  V_m=[p["v_init"]] * (ne + ni), U_m=(b * p["v_init"]).tolist())
        exc, inh = nodes[:ne], nodes[ne:]
        n = ne + ni
        # S(i, j) from j to i: NEST's all_to_all takes weights as [n_post, n_pre].
        we = p["w_exc_scale"] * rng.random((n, ne))
        wi = p["w_inh_scale"] * rng.random((n, ni))
        nest.Connect(exc, nodes, {"rule": "all_to_all", "allow_autapses": True},
                     {"synapse_model": "static_synapse", "weight": we, "delay": p["delay"]})
        nest.Connect(inh, nodes, {"rule": "all_to_all", "allow_autapses": True},
                     {"synapse_model": "static_synapse", "weight": wi, "delay": p["delay"]})
        n_syn = nest.GetKernelStatus("num_connections")
        # Thalamic input: one noise_generator per population; it gives every target its own
        # Gaussian current, drawn anew every dt = 1 ms.
        ng_e = nest.Create("noise_generator",
                           params={"mean": 0.0, "std": p["thalamic_sigma_exc"], "dt": p["dt"]})
        ng_i = nest.Create("noise_generator",
                           params={"mean": 0.0, "std": p["thalamic_sigma_inh"], "dt": p["dt"]})
        nest.Connect(ng_e, exc, syn_spec={"delay": p["dt"]})
        nest.Connect(ng_i, inh, syn_spec={"delay": p["dt"]})
        pops = {"exc": exc, "inh": inh}
    elif net == "brunel":
        params = {
            "C_m": 1.0,
            "tau_m": p["tau_m"],
            "t_ref": p["t_ref"],
            "E_L": 0.0,
            "V_reset": p["v_reset"],
            "V_m": p["v_init"],
            "V_th": p["theta"],
        }
        n = p["n_exc"] + p["n_inh"]
        nodes = nest.Create("iaf_psc_delta", n, params=params)
        exc, inh = nodes[: p["n_exc"]], nodes[p["n_exc"]:]
        # one poisson_generator feeds every neuron an independent train of rate
        # C_E * eta * nu_thr (NEST's brunel_delta_nest.py)
        noise = nest.Create("poisson_generator", params={"rate": p["c_exc"] * brunel_poisson_rate_hz(p)})
        syn_e = {"synapse_model": "static_synapse", "weight": p["j"], "delay": p["delay"]}
        syn_i = {"synapse_model": "static_synapse", "weight": -p["g"] * p["j"], "delay": p["delay"]}
        # fixed in-degree without multapses (as Brian2's sample(N_pre, size=C)); autapses allowed
        nest.Connect(exc, nodes, {"rule": "fixed_indegree", "indegree": p["c_exc"],
                                  "allow_autapses": True, "allow_multapses": False}, syn_e)
        nest.Connect(inh, nodes, {"rule": "fixed_indegree", "indegree": p["c_inh"],
                                  "allow_autapses": True, "allow_multapses": False}, syn_i)
        n_syn = nest.GetKernelStatus("num_connections")
        nest.Connect(noise, nodes, syn_spec=syn_e)
        pops = {"exc": exc, "inh": inh}
    else:
        raise SystemExit(f"unknown net {net!r}")
    out = {}
    for name, nodes_ in pops.items():
        rec = nest.Create("spike_recorder")
        nest.Connect(nodes_, rec)
        out[name] = (nodes_, rec)
    return out, int(n_syn)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", required=True, choices=sorted(NETS))
    ap.add_argument("--duration-ms", type=float, default=None,
                    help="default: the net's duration_ms")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default=None, help="ignored (NEST has one)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    p = NETS[args.net]
    duration_ms = float(args.duration_ms if args.duration_ms is not None else p["duration_ms"])

    # NEST prints a banner and progress on stdout; the one JSON line must be alone there.
    real_stdout = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    os.environ.setdefault("PYNEST_QUIET", "1")

    t0 = time.perf_counter()
    import nest

    if hasattr(nest, "VerbosityLevel"):  # NEST >= 3.9
        nest.verbosity = nest.VerbosityLevel.ERROR
    else:
        nest.set_verbosity("M_ERROR")
    nest.ResetKernel()
    nest.SetKernelStatus({"resolution": p["dt"], "local_num_threads": args.threads,
                          "rng_seed": args.seed, "print_time": False})
    pops, n_syn = build(args.net, nest, args.seed)
    t1, c1 = time.perf_counter(), time.process_time()
    # nest.Simulate == Prepare + Run + Cleanup; timed in parts to show what Prepare costs.
    nest.Prepare()
    t2 = time.perf_counter()
    nest.Run(duration_ms)
    t3 = time.perf_counter()
    nest.Cleanup()
    t4, c4 = time.perf_counter(), time.process_time()

    rate_hz, cv = {}, {}
    for name, (nodes_, rec) in pops.items():
        ev = rec.get("events")
        first = nodes_[0].global_id
        rate_hz[name], cv[name] = spike_stats(ev["times"], ev["senders"] - first, len(nodes_),
                                              duration_ms)
    cvs = {k: v for k, v in cv.items() if v is not None}
    cv_all = None
    if cvs:
        w = {k: len(pops[k][0]) for k in cvs}
        cv_all = float(sum(cvs[k] * w[k] for k in cvs) / sum(w.values()))

    out = {
        "peer": "nest",
        "device": "nest",
        "net": args.net,
        "n_neurons": int(sum(len(nd) for nd, _ in pops.values())),
        "n_synapses": n_syn,
        "duration_ms": duration_ms,
        "dt_ms": p["dt"],
        "threads": args.threads,
        "seed": args.seed,
        "setup_s": round(t1 - t0, 6),
        "loop_s": round(t4 - t1, 6),
        "rate_hz": {k: round(v, 4) for k, v in rate_hz.items()},
        "cv_isi": None if cv_all is None else round(cv_all, 4),
        "cv_isi_by_pop": {k: (None if v is None else round(v, 4)) for k, v in cv.items()},
        "n_spikes": int(sum(rec.get("n_events") for _, rec in pops.values())),
        "version": str(getattr(nest, "__version__", "?")),
        # process CPU time of Prepare + Run + Cleanup: with 1 thread, the loop time net of
        # other processes on a busy machine
        "loop_cpu_s": round(c4 - c1, 6),
        "prepare_s": round(t2 - t1, 6),
        "run_s": round(t3 - t2, 6),
        "loop_clock": "wall",
    }
    os.write(real_stdout, (json.dumps(out) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
