"""Plasticity benchmark: Izhikevich's (2006) polychronization network with STDP.

    python -m benchmarks.plasticity [--duration-s 100] [--cost-s 10] [--out out/plasticity]
                                    [--no-brian2] [--seed 1]

Measures, on the numba backend with one thread:

1. cost: seconds of wall time per second of model time with STDP on and off,
   (a) from the same initial network (STDP-off = the network without rules; activity then
   differs as the weights evolve), and (b) at matched activity: after the long run, the
   rules are switched off and on in alternating segments from the same learned state;
2. a long run (``--duration-s``, default 100 s of model time) written to
   ``<out>/polychronization.h5`` with the excitatory weights recorded once per model
   second under /report/<projection>/weights; then ``polychronization_weights.png``
   (spikelm.io.plots.plot_weights), the bimodality of the final weights and the population
   spectra (spike counts per ms of exc, inh and both) of the first and the last 20 s
   (Welch, 1,024 ms Hann segments; peaks searched above 5 Hz);
3. the same 100 s run again with spikes kept in memory only, in one ``run`` call (the number
   to compare with Brian2's loop time, which also excludes building and file output);
4. Brian2 (cpp_standalone, 1 thread) on the same network with its standard event-driven
   STDP (on_pre/on_post with per-synapse delays, spnet's once-per-second weight update),
   when the peers venv (benchmarks/setup_peers.sh) has Brian2.

Prints one JSON document (also written to ``<out>/plasticity.json``).
The Brian2 part of this file runs in the peers venv: ``python benchmarks/plasticity.py
--brian2-child ...`` (it imports only the standard library, numpy and brian2 there).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")

EXC = ("exc_to_exc", "exc_to_inh")


# ------------------------------------------------------------------------------ spikelm side

def _wall_per_s(sim, seconds):
    t0 = time.perf_counter()
    r = sim.run(steps=int(seconds * 1000))
    return (time.perf_counter() - t0) / seconds, r


def cost_from_scratch(seconds, seed, reps=3):
    """STDP on vs the same network without rules, each from step 0; alternated, min and median."""
    import numpy as np

    from spikelm.plasticity.polychronization import build
    from spikelm.simulator import Simulator

    walls = {True: [], False: []}
    rates = {}
    for _ in range(reps):
        for on in (True, False):
            sim = Simulator(build(seed, stdp=on), backend="numba", record=["exc", "inh"])
            sim.run(steps=10)  # compile / load the cache outside the timing
            wall, r = _wall_per_s(sim, seconds)
            walls[on].append(wall)
            rates[on] = {p: r.spikes[p] / n / seconds for p, n in (("exc", 800), ("inh", 200))}
    out = {}
    for on in (True, False):
        out["stdp_on" if on else "stdp_off"] = {"wall_s_per_model_s": min(walls[on]),
                                                "median": float(np.median(walls[on])), "all": walls[on],
                                                "rate_hz": rates[on]}
    out["ratio"] = out["stdp_on"]["wall_s_per_model_s"] / out["stdp_off"]["wall_s_per_model_s"]
    out["ratio_of_medians"] = out["stdp_on"]["median"] / out["stdp_off"]["median"]
    return out


def cost_matched(sim, seconds, reps=5):
    """Alternate rules off/on from the learned state; min over repetitions."""
    on, off = [], []
    for _ in range(reps):
        for flag, acc in ((False, off), (True, on)):
            for p in EXC:
                sim.learn.set_enabled(p, flag)
            acc.append(_wall_per_s(sim, seconds)[0])
    for p in EXC:
        sim.learn.set_enabled(p, True)
    import numpy as np

    return {"stdp_on": min(on), "stdp_off": min(off), "ratio": min(on) / min(off),
            "ratio_of_medians": float(np.median(on) / np.median(off)), "segment_s": seconds,
            "all_on": on, "all_off": off}


def plain_run(duration_s, seed):
    """The same run with spikes kept in memory only, in one call: comparable to Brian2's loop time."""
    from spikelm.plasticity.polychronization import build
    from spikelm.simulator import Simulator

    sim = Simulator(build(seed), backend="numba", record=["exc", "inh"])
    sim.run(steps=1)
    t0 = time.perf_counter()
    sim.run(steps=int(duration_s * 1000) - 1)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "wall_s_per_model_s": wall / duration_s,
            "rate_hz": {p: sim.spikes.count(p) / n / duration_s for p, n in (("exc", 800), ("inh", 200))}}


def long_run(duration_s, seed, out_dir):
    from spikelm.io.plots import plot_weights
    from spikelm.io.sonata import SpikeWriter
    from spikelm.plasticity.polychronization import build
    from spikelm.simulator import Simulator

    net = build(seed)
    sim = Simulator(net, backend="numba", record=["exc", "inh"])
    path = out_dir / "polychronization.h5"
    meta = {"seed": seed, "backend": "numba", "network": net.summary()}
    t0 = time.perf_counter()
    with SpikeWriter(path, {"exc": 800, "inh": 200}, net.dt, metadata=meta) as w:
        for p in EXC:
            w.add_weights(p, 0, net.projections[p].w, units=net.projections[p].post.model.input_unit)
        for _ in range(int(duration_s)):
            sim.run(steps=1000, writer=w)
            for p in EXC:
                w.add_weights(p, sim.t, net.projections[p].w, units=net.projections[p].post.model.input_unit)
        wall = time.perf_counter() - t0
        w.finish({"steps": sim.t, "synops": sim.synops})
    png = plot_weights(path, "exc_to_exc", out_dir / "polychronization_weights.png")
    return sim, {"h5": str(path), "plot": png, "wall_s": wall, "wall_s_per_model_s": wall / duration_s}


def bimodality(w, w_max=10.0):
    w = w.astype(float)
    hist, edges = __import__("numpy").histogram(w, bins=10, range=(0.0, w_max))
    return {"frac_near_0": float((w < 0.1 * w_max).mean()), "frac_near_wmax": float((w > 0.9 * w_max).mean()),
            "frac_middle": float(((w >= 0.1 * w_max) & (w <= 0.9 * w_max)).mean()),
            "mean": float(w.mean()), "hist_10_bins": hist.tolist()}


def _psd(steps, t0, t1, seg=1024):
    """Welch PSD of the spike count per 1 ms bin in [t0, t1): Hann segments of ``seg`` ms, half overlap."""
    import numpy as np

    counts = np.bincount(steps[(steps >= t0) & (steps < t1)] - t0, minlength=t1 - t0).astype(float)
    win = np.hanning(seg)
    psd = np.zeros(seg // 2 + 1)
    k = 0
    for a in range(0, counts.size - seg + 1, seg // 2):
        x = counts[a:a + seg]
        psd += np.abs(np.fft.rfft((x - x.mean()) * win)) ** 2
        k += 1
    return np.fft.rfftfreq(seg, d=1e-3), psd / max(k, 1)


def spectrum(sim, window_s=20.0):
    """Population spectra (exc, inh, exc+inh) of the first and the last ``window_s`` seconds.

    ``peak_hz``: the largest peak above 5 Hz; ``gamma_ratio``: the largest power in 30-100 Hz
    over the largest power elsewhere above 5 Hz (> 1: the spectrum peaks in the gamma band).
    """
    import numpy as np

    steps = {p: sim.spikes.get(p)[0] for p in ("exc", "inh")}
    steps["all"] = np.concatenate([steps["exc"], steps["inh"]])
    n = int(window_s * 1000)
    out = {"window_s": window_s, "segment_ms": 1024}
    for label, (t0, t1) in (("first", (0, n)), ("last", (sim.t - n, sim.t))):
        for p, s in steps.items():
            f, psd = _psd(s, t0, t1)
            band = f >= 5.0
            g = (f >= 30.0) & (f <= 100.0)
            out[f"{label}_{p}"] = {"peak_hz": float(f[band][np.argmax(psd[band])]),
                                   "gamma_peak_hz": float(f[g][np.argmax(psd[g])]),
                                   "gamma_ratio": float(psd[g].max() / psd[band & ~g].max())}
    return out


# ------------------------------------------------------------------------------- Brian2 side

def brian2_child(duration_s, seed):
    """Runs in the peers venv: build the network in Brian2 cpp_standalone, print one JSON line."""
    import numpy as np
    import brian2 as b2

    real_stdout = os.dup(1)
    os.dup2(2, 1)  # Brian2's chatter goes to stderr
    workdir = tempfile.mkdtemp(prefix="b2_poly_")
    t0 = time.perf_counter()
    b2.set_device("cpp_standalone", directory=workdir, build_on_run=False)
    b2.prefs.devices.cpp_standalone.openmp_threads = 0
    b2.defaultclock.dt = 1 * b2.ms
    rng = np.random.default_rng(seed)
    Ne, Ni, M = 800, 200, 100
    G = b2.NeuronGroup(Ne + Ni, """v : 1
                                  u : 1
                                  I : 1
                                  a : 1 (constant)
                                  b : 1 (constant)
                                  c : 1 (constant)
                                  d : 1 (constant)""",
                       threshold="v >= 30", reset="v = c; u += d", method="euler")
    # spnet.cpp's update: two 0.5 ms half-steps for v, then u; input used for one step
    G.run_regularly("""v += 0.5 * (0.04 * v**2 + 5 * v + 140 - u + I)
                       v += 0.5 * (0.04 * v**2 + 5 * v + 140 - u + I)
                       u += a * (b * v - u)
                       I = 0""", when="before_thresholds")
    G.a = np.r_[np.full(Ne, 0.02), np.full(Ni, 0.1)]
    G.b = 0.2
    G.c = -65
    G.d = np.r_[np.full(Ne, 8.0), np.full(Ni, 2.0)]
    G.v = -65
    G.u = -13
    # excitatory: 100 distinct targets among the other 999 neurons, delays 1..20 ms
    pre_e, post_e = [], []
    for k in range(Ne):
        tg = rng.choice(Ne + Ni - 1, size=M, replace=False)
        post_e.append(tg + (tg >= k))
        pre_e.append(np.full(M, k))
    pre_e, post_e = np.concatenate(pre_e), np.concatenate(post_e)
    S = b2.Synapses(G, G, """w : 1
                             sd : 1
                             dapre/dt = -apre / (20*ms) : 1 (event-driven)
                             dapost/dt = -apost / (20*ms) : 1 (event-driven)""",
                    on_pre="""I_post += w
                              apre = 0.1
                              sd -= apost""",
                    on_post="""apost = 0.12
                               sd += apre""")
    S.connect(i=pre_e, j=post_e)
    S.w = 6.0
    S.delay = rng.integers(1, 21, size=pre_e.size) * b2.ms
    S.run_regularly("w = clip(w + 0.01 + sd, 0, 10)\nsd *= 0.9", dt=1 * b2.second, when="end")
    pre_i = np.repeat(np.arange(Ne, Ne + Ni), M)
    post_i = np.concatenate([rng.choice(Ne, size=M, replace=False) for _ in range(Ni)])
    Si = b2.Synapses(G, G, "w : 1 (constant)", on_pre="I_post += w", delay=1 * b2.ms)
    Si.connect(i=pre_i, j=post_i)
    Si.w = -5.0
    P = b2.PoissonGroup(Ne + Ni, 1 * b2.Hz)
    St = b2.Synapses(P, G, on_pre="I_post += 20", delay=1 * b2.ms)
    St.connect(j="i")
    mon = b2.SpikeMonitor(G)
    b2.run(duration_s * b2.second)
    b2.device.build(directory=workdir, compile=True, run=True, with_output=False)
    total = time.perf_counter() - t0
    loop_s = float(b2.device._last_run_time)
    spk_i = np.asarray(mon.i[:])
    w = np.asarray(S.w[:])
    out = {"peer": "brian2", "device": "cpp_standalone", "threads": 1, "duration_s": duration_s,
           "loop_s": loop_s, "loop_s_per_model_s": loop_s / duration_s, "total_s": total,
           "rate_hz": {"exc": float((spk_i < Ne).sum() / Ne / duration_s), "inh": float((spk_i >= Ne).sum() / Ni / duration_s)},
           "frac_near_0": float((w < 1).mean()), "frac_near_wmax": float((w > 9).mean()),
           "brian2": b2.__version__}
    os.write(real_stdout, (json.dumps(out) + "\n").encode())


def run_brian2(duration_s, seed, timeout=1800):
    from benchmarks.peers import peers_python

    py = peers_python()
    if not py.exists():
        print(f"brian2: peers venv not found ({py}); run: bash benchmarks/setup_peers.sh", file=sys.stderr)
        return None
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    cmd = [str(py), str(Path(__file__).resolve()), "--brian2-child", "--duration-s", str(duration_s),
           "--seed", str(seed)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        print("brian2: timed out", file=sys.stderr)
        return None
    if r.returncode != 0:
        print("brian2 failed:\n" + "\n".join(r.stderr.strip().splitlines()[-15:]), file=sys.stderr)
        return None
    for line in reversed(r.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return None


# -------------------------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration-s", type=float, default=100.0, help="model seconds of the long run")
    ap.add_argument("--cost-s", type=float, default=10.0, help="model seconds per cost measurement")
    ap.add_argument("--out", default="out/plasticity")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-brian2", action="store_true")
    ap.add_argument("--brian2-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.brian2_child:
        brian2_child(args.duration_s, args.seed)
        return 0
    import numpy as np

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    res = {"network": "polychronization (Izhikevich 2006), 1000 neurons, 100k synapses, dt 1 ms",
           "backend": "numba", "threads": os.environ.get("NUMBA_NUM_THREADS")}
    res["cost_from_scratch"] = cost_from_scratch(args.cost_s, args.seed)
    print(json.dumps({"cost_from_scratch": res["cost_from_scratch"]}), file=sys.stderr)
    sim, res["long_run"] = long_run(args.duration_s, args.seed, out_dir)
    w = np.concatenate([sim.network.projections[p].w for p in EXC])
    res["weights_final"] = bimodality(w)
    res["spectrum"] = spectrum(sim)
    res["rate_hz_last_s"] = {p: float(((sim.spikes.get(p)[0] >= sim.t - 1000).sum()) / n)
                             for p, n in (("exc", 800), ("inh", 200))}
    res["cost_matched"] = cost_matched(sim, min(args.cost_s, 5.0))
    res["plain_run"] = plain_run(args.duration_s, args.seed)
    if not args.no_brian2:
        res["brian2"] = run_brian2(args.duration_s, args.seed)
        if res["brian2"]:
            res["spikelm_over_brian2"] = res["plain_run"]["wall_s_per_model_s"] / res["brian2"]["loop_s_per_model_s"]
    text = json.dumps(res, indent=1)
    (out_dir / "plasticity.json").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
