"""One network, exactly as spikelm built it, on Brian2 or NEST (the peers venv).

    python benchmarks/peers/identical_net.py --peer brian2|nest --network NET.npz --spikes-out OUT.npz \
        [--duration-ms D] [--convention mapped|naive]

NET.npz is written by ``benchmarks/peers/identical.py`` from a spikelm network of LIF neurons
with exponential current synapses (CUBA): the parameters, every neuron's initial V, and
every synapse (pre, post, weight, delay in spikelm steps, target). This script builds the
same neurons and synapses, runs them, saves the spikes as steps of spikelm's clock and
prints one JSON line.

``--convention mapped`` applies what docs/coming-from-brian2-nest.md says:

- threshold ``v >= v_th`` (Brian2 models usually write ``>``; NEST uses ``>=``);
- Brian2: refractory ``t_ref + dt`` (Brian2 frees a neuron one step earlier than spikelm
  and NEST for the same t_ref);
- delays: spikelm's d steps = Brian2 ``(d - 1) dt`` = NEST ``(d - 1) dt`` (NEST's minimum
  is one step, so NEST needs d >= 2);
- spike times: NEST stamps a spike at the end of its step, ``(s + 1) dt``.

``--convention naive`` writes the network as a newcomer would: ``v > v_th``, refractory
``t_ref``, delay ``d dt``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _brian2(net, duration_ms, mapped, device):
    import brian2 as b2
    import numpy as np

    b2.prefs.codegen.target = device      # "cython" (compiles once, cached) or "numpy" (no compiler)
    b2.prefs.logging.console_log_level = "WARNING"
    dt = float(net["dt"])
    b2.defaultclock.dt = dt * b2.ms
    ms, mV = b2.ms, b2.mV
    ns = {"El": float(net["e_l"]) * mV, "taum": float(net["tau_m"]) * ms, "taue": float(net["tau_e"]) * ms,
          "taui": float(net["tau_i"]) * ms, "Vt": float(net["v_th"]) * mV, "Vr": float(net["v_reset"]) * mV}
    eqs = """
    dv/dt  = (ge + gi - (v - El)) / taum : volt (unless refractory)
    dge/dt = -ge / taue : volt
    dgi/dt = -gi / taui : volt
    """
    t_ref = float(net["t_ref"]) + (dt if mapped else 0.0)
    n = int(net["v0"].size)
    group = b2.NeuronGroup(n, eqs, threshold="v >= Vt" if mapped else "v > Vt", reset="v = Vr",
                           refractory=t_ref * ms, method="exact", namespace=ns, name="P")
    group.v = net["v0"] * mV
    objs = [group]
    for k in range(int(net["n_proj"])):
        target = "ge" if int(net[f"target_{k}"]) == 0 else "gi"
        syn = b2.Synapses(group, group, "w : volt", on_pre=f"{target}_post += w", name=f"S{k}")
        syn.connect(i=net[f"pre_{k}"], j=net[f"post_{k}"])
        syn.w = net[f"w_{k}"] * mV
        steps = net[f"delay_{k}"] - (1 if mapped else 0)
        syn.delay = steps * dt * ms
        objs.append(syn)
    mon = b2.SpikeMonitor(group)
    objs.append(mon)
    b2.Network(*objs).run(duration_ms * ms)
    # Brian2 stamps a spike with the time of its step: step = t / dt
    steps = np.rint(np.asarray(mon.t / ms) / dt).astype(np.int64)
    return steps, np.asarray(mon.i[:], dtype=np.int64), b2.__version__


def _nest(net, duration_ms, mapped, device):
    import nest
    import numpy as np

    if hasattr(nest, "VerbosityLevel"):
        nest.verbosity = nest.VerbosityLevel.ERROR
    else:
        nest.set_verbosity("M_ERROR")
    nest.ResetKernel()
    dt = float(net["dt"])
    nest.SetKernelStatus({"resolution": dt, "print_time": False})
    # C_m = tau_m (pF, ms): a weight of w pA moves V as Brian2's ge += w mV does
    params = {"C_m": float(net["tau_m"]), "tau_m": float(net["tau_m"]), "tau_syn_ex": float(net["tau_e"]),
              "tau_syn_in": float(net["tau_i"]), "t_ref": float(net["t_ref"]), "E_L": float(net["e_l"]),
              "V_th": float(net["v_th"]), "V_reset": float(net["v_reset"]), "I_e": 0.0}
    nodes = nest.Create("iaf_psc_exp", int(net["v0"].size), params=params)
    nodes.V_m = net["v0"].tolist()
    first = nodes[0].global_id
    for k in range(int(net["n_proj"])):
        steps = net[f"delay_{k}"] - (1 if mapped else 0)
        if steps.min() < 1:
            raise SystemExit(f"NEST's minimum delay is one step; spikelm delays of {int(steps.min()) + 1} "
                             "steps cannot be mapped (use --delay-steps 2 or more)")
        # arrays of node ids with one_to_one: one connection per (pre, post) pair, repeats allowed
        pre = (net[f"pre_{k}"] + first).astype(np.int64)
        post = (net[f"post_{k}"] + first).astype(np.int64)
        nest.Connect(pre, post, {"rule": "one_to_one"},
                     {"synapse_model": "static_synapse", "weight": net[f"w_{k}"], "delay": steps * dt})
    rec = nest.Create("spike_recorder")
    nest.Connect(nodes, rec)
    nest.Simulate(duration_ms)
    ev = rec.get("events")
    # NEST stamps a spike at the end of its step: (s + 1) dt
    steps = np.rint(np.asarray(ev["times"]) / dt).astype(np.int64) - 1
    order = np.lexsort((ev["senders"], steps))
    return steps[order], (np.asarray(ev["senders"], dtype=np.int64) - first)[order], str(nest.__version__)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer", required=True, choices=["brian2", "nest"])
    ap.add_argument("--network", required=True, help="the .npz that identical.py wrote")
    ap.add_argument("--spikes-out", required=True, help="where to save the spikes (.npz: steps, ids)")
    ap.add_argument("--duration-ms", type=float, required=True)
    ap.add_argument("--convention", choices=["mapped", "naive"], default="mapped")
    ap.add_argument("--device", choices=["cython", "numpy"], default="cython", help="Brian2's code target")
    args = ap.parse_args(argv)

    real_stdout = os.dup(1)        # the peers talk on stdout; the JSON line must be alone there
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    os.environ.setdefault("PYNEST_QUIET", "1")
    import numpy as np

    net = dict(np.load(args.network))
    t0 = time.perf_counter()
    run = _brian2 if args.peer == "brian2" else _nest
    steps, ids, version = run(net, args.duration_ms, args.convention == "mapped", args.device)
    np.savez(args.spikes_out, steps=steps, ids=ids)
    out = {"peer": args.peer, "convention": args.convention, "n_spikes": int(steps.size),
           "wall_s": round(time.perf_counter() - t0, 3), "version": version}
    os.write(real_stdout, (json.dumps(out) + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
