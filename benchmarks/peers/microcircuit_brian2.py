"""Brian2 side of the microcircuit benchmark: PD14 from the same model file as spikelm and NEST.

    python benchmarks/peers/microcircuit_brian2.py --params P.json --spikes-out S.npz \
        [--duration-ms 1000] [--presim-ms 500] [--threads 1] [--seed S] [--device cpp_standalone|cython]

``P.json`` as for microcircuit_nest.py. LIF neurons with exponential currents integrated
exactly (NEST's iaf_psc_exp): threshold v >= V_th, V held t_ref + dt (spikelm's and NEST's
refractory period in Brian2's terms, docs/coming-from-brian2-nest.md); fixed total numbers of
synapses drawn with numpy (pre and post uniform, multapses), weights and delays normal,
redrawn outside their bounds, delays rounded to steps as NEST does (a NEST delay is a Brian2
delay); Poisson background as PoissonInput (k_ext inputs at bg_rate) or DC. Writes every
spike to ``S.npz`` and prints one JSON line. Runs in the peers venv.
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

import numpy as np


def _truncated_normal(rng, mean, std, lo, hi, n):
    x = rng.normal(mean, std, n)
    bad = np.flatnonzero((x < lo) | (x > hi))
    while bad.size:
        x[bad] = rng.normal(mean, std, bad.size)
        bad = bad[(x[bad] < lo) | (x[bad] > hi)]
    return x


def build(b2, P, rng):
    nrn, dt = P["neuron"], P["dt"]
    ms, mV, pF, pA = b2.ms, b2.mV, b2.pF, b2.pA
    eqs = """
    dv/dt = (E_L - v) / tau_m + (I_e + I_ex + I_in) / C_m : volt (unless refractory)
    dI_ex/dt = -I_ex / tau_syn : amp
    dI_in/dt = -I_in / tau_syn : amp
    I_e : amp (constant)
    """
    ns = {"E_L": nrn["e_l"] * mV, "tau_m": nrn["tau_m"] * ms, "C_m": nrn["c_m"] * pF, "tau_syn": nrn["tau_syn"] * ms,
          "V_th": nrn["v_th"] * mV, "V_reset": nrn["v_reset"] * mV}
    objs, groups, mons = [], [], []
    for i, name in enumerate(P["populations"]):
        G = b2.NeuronGroup(int(P["n"][i]), eqs, threshold="v >= V_th", reset="v = V_reset",
                           refractory=(nrn["t_ref"] + dt) * ms, method="exact", namespace=ns, name=name)
        G.v = rng.normal(P["v0_mean"][i], P["v0_std"][i], int(P["n"][i])) * mV
        G.I_e = float(P["dc_pA"][i]) * pA
        groups.append(G)
        mons.append(b2.SpikeMonitor(G, name=f"spikes_{name}"))
        if P["background"] == "poisson" and P["k_ext"][i] > 0:
            objs.append(b2.PoissonInput(G, "I_ex", N=int(P["k_ext"][i]), rate=P["bg_rate"] * b2.Hz,
                                        weight=P["weight_ext_pA"] * pA))
    n_syn = 0
    for i, post in enumerate(groups):
        for j, pre in enumerate(groups):
            n = int(P["synapses"][i][j])
            if n == 0:
                continue
            w = P["weight_pA"][i][j]
            d = P["delay_exc"] if j % 2 == 0 else P["delay_inh"]
            var = "I_ex" if j % 2 == 0 else "I_in"
            S = b2.Synapses(pre, post, "w : amp (constant)", on_pre=f"{var}_post += w",
                            name=f"{pre.name}_to_{post.name}")
            S.connect(i=rng.integers(0, len(pre), n), j=rng.integers(0, len(post), n))
            lo, hi = (0.0, np.inf) if w >= 0 else (-np.inf, 0.0)
            S.w = _truncated_normal(rng, w, abs(w) * P["weight_rel_std"], lo, hi, n) * pA
            steps = np.maximum(np.rint(_truncated_normal(rng, d, d * P["delay_rel_std"], 0.5 * dt, np.inf, n) / dt), 1)
            S.delay = steps * dt * ms
            objs.append(S)
            n_syn += n
    return groups + mons + objs, groups, mons, n_syn


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", required=True)
    ap.add_argument("--spikes-out", required=True)
    ap.add_argument("--duration-ms", type=float, default=1000.0)
    ap.add_argument("--presim-ms", type=float, default=500.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--device", default="cpp_standalone", choices=["cpp_standalone", "cython"])
    args = ap.parse_args(argv)
    with open(args.params) as f:
        P = json.load(f)
    real_stdout = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    t0 = time.perf_counter()
    import brian2 as b2

    b2.prefs.logging.console_log_level = "WARNING"
    if args.device == "cpp_standalone":
        workdir = tempfile.mkdtemp(prefix="spikelm-brian2-mc-")
        atexit.register(shutil.rmtree, workdir, ignore_errors=True)
        b2.set_device("cpp_standalone", directory=workdir, build_on_run=False)
        b2.prefs.devices.cpp_standalone.openmp_threads = 0 if args.threads <= 1 else args.threads
        b2.prefs.devices.cpp_standalone.extra_make_args_unix = ["-j2"]
    else:
        b2.prefs.codegen.target = args.device
    b2.defaultclock.dt = P["dt"] * b2.ms
    b2.seed(args.seed)
    objs, groups, mons, n_syn = build(b2, P, np.random.default_rng(args.seed))
    net = b2.Network(*objs)
    if args.device == "cpp_standalone":
        if args.presim_ms > 0:
            net.run(args.presim_ms * b2.ms)
        net.run(args.duration_ms * b2.ms)
        b2.device.build(directory=workdir, compile=True, run=True, with_output=False)
        runs = [float(x) for x in (b2.device._last_run_time,)]
        loop_s = runs[-1]
        setup_s = time.perf_counter() - t0 - loop_s
    else:
        if args.presim_ms > 0:
            net.run(args.presim_ms * b2.ms)
        t1 = time.perf_counter()
        net.run(args.duration_ms * b2.ms)
        loop_s = float(b2.device._last_run_time)
        setup_s = t1 - t0
    spikes = {}
    for G, mon in zip(groups, mons):
        spikes[f"{G.name}_t"] = np.asarray(mon.t[:] / b2.ms, dtype=np.float64)
        spikes[f"{G.name}_i"] = np.asarray(mon.i[:], dtype=np.int64)
    np.savez(args.spikes_out, **spikes)
    out = {"peer": "brian2", "device": args.device, "net": "microcircuit",
           "n_neurons": int(sum(len(G) for G in groups)), "n_synapses": n_syn, "duration_ms": args.duration_ms,
           "presim_ms": args.presim_ms, "threads": args.threads, "seed": args.seed, "setup_s": round(setup_s, 3),
           "loop_s": round(loop_s, 3), "loop_clock": "cpu" if args.threads <= 1 and args.device == "cpp_standalone"
           else "wall", "version": b2.__version__}
    os.write(real_stdout, (json.dumps(out) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
