"""Brian2 side of spikelm's peer benchmark.

    python benchmarks/peers/brian2_net.py --net cuba|cuba40k|izhikevich|brunel \
        [--duration-ms D] [--threads 1] [--device cpp_standalone|cython|numpy] [--seed S]

Builds one of the benchmark networks, runs it, and prints one JSON line on stdout
(everything else Brian2 says goes to stderr). Runs in the peers venv made by
benchmarks/setup_peers.sh, not in spikelm's environment.

The parameters come from netparams.py, shared with nest_net.py. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netparams import NETS, brunel_poisson_rate_hz, spike_stats


def build(net: str, b2, duration_ms: float):
    """Create the network; returns (objects, {population: (spikemon, n)})."""
    p = NETS[net]
    ms, mV, Hz = b2.ms, b2.mV, b2.Hz
    objs = []
    pops = {}
    if net in ("cuba", "cuba40k"):
        n = p["n_exc"] + p["n_inh"]
        eqs = """
        dv/dt  = (ge + gi - (v - El)) / taum : volt (unless refractory)
        dge/dt = -ge / taue : volt
        dgi/dt = -gi / taui : volt
        """
        ns = {
            "El": p["e_l"] * mV,
            "taum": p["tau_m"] * ms,
            "taue": p["tau_e"] * ms,
            "taui": p["tau_i"] * ms,
            "Vt": p["v_th"] * mV,
            "Vr": p["v_reset"] * mV,
        }
        # spikelm's conventions: threshold v >= Vt; V held t_ref/dt steps after the spike step,
        # which is Brian2's refractory t_ref + dt
        P = b2.NeuronGroup(
            n, eqs, threshold="v >= Vt", reset="v = Vr", refractory=(p["t_ref"] + p["dt"]) * ms,
            method="exact", namespace=ns, name="P",
        )
        P.v = "Vr + rand() * (Vt - Vr)"
        Pe, Pi = P[: p["n_exc"]], P[p["n_exc"]:]
        # spikelm's delay of d steps is Brian2's (d - 1) dt: Brian2 adds on_pre in the spike's
        # step, after the update; spikelm delivers at the start of step t + d
        # (docs/coming-from-brian2-nest.md). Here: no delay, as in Brian2's CUBA example.
        delay = (p["delay"] - p["dt"]) * ms
        Ce = b2.Synapses(Pe, P, on_pre=f"ge += {p['w_e']!r}*mV", delay=delay, name="Ce")
        Ce.connect(p=p["p_connect"])
        Ci = b2.Synapses(Pi, P, on_pre=f"gi += {p['w_i']!r}*mV", delay=delay, name="Ci")
        Ci.connect(p=p["p_connect"])
        me, mi = b2.SpikeMonitor(Pe, name="spikes_exc"), b2.SpikeMonitor(Pi, name="spikes_inh")
        objs += [P, Ce, Ci, me, mi]
        pops = {"exc": (me, p["n_exc"]), "inh": (mi, p["n_inh"])}
    elif net == "izhikevich":
        n = p["n_exc"] + p["n_inh"]
        # No ODEs: Izhikevich's own update (two 0.5 ms half steps for v at dt = 1 ms),
        # written as a run_regularly operation in the 'groups' slot.
        eqs = """
        v : 1
        u : 1
        a : 1 (constant)
        b : 1 (constant)
        c : 1 (constant)
        d : 1 (constant)
        sigma : 1 (constant)
        r : 1 (constant)
        Isyn : 1
        """
        G = b2.NeuronGroup(n, eqs, threshold=f"v >= {p['v_peak']!r}", reset="v = c; u += d",
                           method=None, name="G")
        ne = p["n_exc"]
        Ge, Gi = G[:ne], G[ne:]
        # r ~ U(0, 1) per neuron: Izhikevich's (2003) re for exc, ri for inh
        G.r = "rand()"
        Ge.a = 0.02
        Ge.b = 0.2
        Ge.c = "-65 + 15 * r**2"
        Ge.d = "8 - 6 * r**2"
        Gi.a = "0.02 + 0.08 * r"
        Gi.b = "0.25 - 0.05 * r"
        Gi.c = -65.0
        Gi.d = 2.0
        Ge.sigma = p["thalamic_sigma_exc"]
        Gi.sigma = p["thalamic_sigma_inh"]
        G.v = p["v_init"]
        G.u = "b * v"
        G.run_regularly(
            """
            I = sigma * randn() + Isyn
            v = v + 0.5 * (0.04 * v**2 + 5 * v + 140 - u + I)
            v = v + 0.5 * (0.04 * v**2 + 5 * v + 140 - u + I)
            u = u + a * (b * v - u)
            Isyn = 0
            """,
            when="groups", name="izh_update",
        )
        # Brian2 runs groups -> thresholds -> synapses -> resets in a step: with delay 0
        # a spike detected at step t is added to Isyn after that step's update and is
        # used by the update of step t + 1: the one-step delay of Izhikevich's code (and
        # of NEST's minimum delay, which adds it to v at t + 1).
        Se = b2.Synapses(Ge, G, "w : 1 (constant)", on_pre="Isyn_post += w", name="Se")
        Se.connect()
        Se.w = f"{p['w_exc_scale']!r} * rand()"
        Si = b2.Synapses(Gi, G, "w : 1 (constant)", on_pre="Isyn_post += w", name="Si")
        Si.connect()
        Si.w = f"{p['w_inh_scale']!r} * rand()"
        me, mi = b2.SpikeMonitor(Ge, name="spikes_exc"), b2.SpikeMonitor(Gi, name="spikes_inh")
        objs += [G, Se, Si, me, mi]
        pops = {"exc": (me, ne), "inh": (mi, p["n_inh"])}
    elif net == "brunel":
        n = p["n_exc"] + p["n_inh"]
        ns = {
            "tau": p["tau_m"] * ms,
            "theta": p["theta"] * mV,
            "Vr": p["v_reset"] * mV,
            "J": p["j"] * mV,
            "JI": -p["g"] * p["j"] * mV,
        }
        P = b2.NeuronGroup(
            n, "dv/dt = -v / tau : volt (unless refractory)", threshold="v >= theta",
            reset="v = Vr", refractory=(p["t_ref"] + p["dt"]) * ms, method="exact", namespace=ns, name="P",
        )
        P.v = p["v_init"] * mV
        Pe, Pi = P[: p["n_exc"]], P[p["n_exc"]:]
        # iaf_psc_delta (NEST) drops input that arrives while refractory: do the same.
        delay = (p["delay"] - p["dt"]) * ms        # spikelm's d steps = Brian2's (d - 1) dt
        Ce = b2.Synapses(Pe, P, on_pre="v_post += J * int(not_refractory_post)",
                         delay=delay, namespace=ns, name="Ce")
        Ce.connect(i=f"k for k in sample(N_pre, size={p['c_exc']})")  # fixed in-degree
        Ci = b2.Synapses(Pi, P, on_pre="v_post += JI * int(not_refractory_post)",
                         delay=delay, namespace=ns, name="Ci")
        Ci.connect(i=f"k for k in sample(N_pre, size={p['c_inh']})")
        ext = b2.PoissonInput(P, "v", N=p["c_exc"], rate=brunel_poisson_rate_hz(p) * Hz,
                              weight="J * int(not_refractory)")
        me, mi = b2.SpikeMonitor(Pe, name="spikes_exc"), b2.SpikeMonitor(Pi, name="spikes_inh")
        objs += [P, Ce, Ci, ext, me, mi]
        pops = {"exc": (me, p["n_exc"]), "inh": (mi, p["n_inh"])}
    else:
        raise SystemExit(f"unknown net {net!r}")
    return objs, pops


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--net", required=True, choices=sorted(NETS))
    ap.add_argument("--duration-ms", type=float, default=None,
                    help="default: the net's duration_ms")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpp_standalone",
                    choices=["cpp_standalone", "cython", "numpy"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", default=None,
                    help="cpp_standalone project folder (default: a temporary one, removed)")
    args = ap.parse_args(argv)

    p = NETS[args.net]
    duration_ms = float(args.duration_ms if args.duration_ms is not None else p["duration_ms"])

    # Brian2 and its compilers talk on stdout; the one JSON line must be alone there.
    real_stdout = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    t0 = time.perf_counter()
    import brian2 as b2

    b2.prefs.logging.console_log_level = "WARNING"
    workdir, tmp = args.workdir, None
    if args.device == "cpp_standalone":
        if workdir is None:
            tmp = workdir = tempfile.mkdtemp(prefix="spikelm-brian2-")
            atexit.register(shutil.rmtree, tmp, ignore_errors=True)  # also on failure
        b2.set_device("cpp_standalone", directory=workdir, build_on_run=False)
        # threads == 1: plain serial code (no OpenMP); the loop time Brian2 reports is then
        # the process CPU time of the loop (std::clock); with OpenMP it is wall time.
        b2.prefs.devices.cpp_standalone.openmp_threads = 0 if args.threads <= 1 else args.threads
        b2.prefs.devices.cpp_standalone.extra_make_args_unix = ["-j2"]
    else:
        if args.threads != 1:
            print("brian2 runtime devices are single-threaded; ignoring --threads", file=sys.stderr)
        b2.prefs.codegen.target = args.device
    b2.defaultclock.dt = p["dt"] * b2.ms
    b2.seed(args.seed)
    # Izhikevich's re/ri and the CUBA/Brunel initial values draw from Brian2's RNG.
    objs, pops = build(args.net, b2, duration_ms)
    net = b2.Network(*objs)

    extra = {}
    if args.device == "cpp_standalone":
        net.run(duration_ms * b2.ms)
        b2.device.build(directory=workdir, compile=True, run=True, with_output=False)
        total = time.perf_counter() - t0
        loop_s = float(b2.device._last_run_time)
        run_binary = float(b2.device.timers["run_binary"])
        # everything but the loop: Python build, code generation, compilation, and inside
        # the binary the synapse creation, initialisation and writing results
        setup_s = total - loop_s
        extra["compile_s"] = float(b2.device.timers["compile"]["make"] or 0.0)
        extra["binary_s"] = run_binary
        extra["loop_clock"] = "cpu" if args.threads <= 1 else "wall"
    else:
        t1 = time.perf_counter()
        net.run(duration_ms * b2.ms)
        t2 = time.perf_counter()
        loop_s = float(b2.device._last_run_time)
        # build + code generation / compilation (inside run, before the loop)
        setup_s = (t2 - t0) - loop_s
        extra["before_run_s"] = (t2 - t1) - loop_s
        extra["loop_clock"] = "wall"

    rate_hz, cv = {}, {}
    for name, (mon, n) in pops.items():
        t_ms = mon.t[:] / b2.ms
        ids = mon.i[:]
        rate_hz[name], cv[name] = spike_stats(t_ms, ids, n, duration_ms)
    n_syn = sum(len(o) for o in objs if isinstance(o, b2.Synapses))
    cvs = [v for v in cv.values() if v is not None]
    cv_all = None
    if cvs:
        # neuron-weighted mean over populations
        w = [pops[k][1] for k, v in cv.items() if v is not None]
        cv_all = float(sum(a * b for a, b in zip(cvs, w)) / sum(w))

    out = {
        "peer": "brian2",
        "device": args.device,
        "net": args.net,
        "n_neurons": int(sum(n for _, n in pops.values())),
        "n_synapses": int(n_syn),
        "duration_ms": duration_ms,
        "dt_ms": p["dt"],
        "threads": args.threads,
        "seed": args.seed,
        "setup_s": round(setup_s, 6),
        "loop_s": round(loop_s, 6),
        "rate_hz": {k: round(v, 4) for k, v in rate_hz.items()},
        "cv_isi": None if cv_all is None else round(cv_all, 4),
        "cv_isi_by_pop": {k: (None if v is None else round(v, 4)) for k, v in cv.items()},
        "n_spikes": int(sum(m.num_spikes for m, _ in pops.values())),
        "version": b2.__version__,
        **{k: (round(v, 6) if isinstance(v, float) else v) for k, v in extra.items()},
    }
    os.write(real_stdout, (json.dumps(out) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
