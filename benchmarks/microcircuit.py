"""The Potjans-Diesmann microcircuit on spikelm, NEST and Brian2: time, memory and statistics.

    python -m benchmarks.microcircuit [--scale 1.0] [--duration 1000] [--presim 500]
        [--threads 1,2] [--peers nest,brian2] [--peer-scale S] [--peer-threads 1]
        [--background dc|poisson]
        [--seed 1] [--plot docs/img/microcircuit_rates.png] [--json out.json]

One model file, scenarios/microcircuit.toml at ``--scale``: spikelm builds it, and the peers
get the same numbers (neurons, synapse counts, mean weights, DC, delays, initial potentials)
as a JSON file (benchmarks/peers/microcircuit_*.py). Each simulator runs in its own process,
one after the other: ``presim`` ms (the initial transient, discarded as the reference does),
then ``duration`` ms timed, once per thread count. Printed: build time, compile time (first
call of the compiled loop, apart from the run), peak memory, the real-time factor (wall time
/ model time) per thread count, and per population the mean rate, the mean CV of
inter-spike intervals and the mean pairwise correlation of spike counts (2 ms bins, 200
neurons per population), against the reference rates (INM-6 microcircuit-PD14-model,
``full_mean_rates``) and against NEST's in the same run. ``--peer-scale`` runs the peers
smaller (NEST at full scale takes about 14 GB and many minutes on one thread).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SCENARIO = REPO / "scenarios" / "microcircuit.toml"
#: statistics of spike trains as the reference analysis takes them (PyNEST/reference_data/params.py)
BIN_MS = 2.0
CC_NEURONS = 200

_SPIKELM = r"""
import json, resource, sys, time
import numpy as np
t0 = time.perf_counter()
from benchmarks.microcircuit import scenario_text
from spikelm.io.scenario import loads_scenario
from spikelm.simulator import Simulator
scale, background, seed, presim, duration, threads, out = sys.argv[1:8]
sc = loads_scenario(scenario_text(float(scale), background), "microcircuit.toml")
t = time.perf_counter(); net = sc.build(int(seed)); build = time.perf_counter() - t
sim = Simulator(net, threads=1, in_memory=True)
build_sim = time.perf_counter() - t
t = time.perf_counter(); sim.run(1); first = time.perf_counter() - t
sim.run(duration=float(presim) - net.dt)
runs = []
for k, th in enumerate(int(x) for x in threads.split(",")):
    sim.set_threads(th)
    if k:   # a thread count's first call compiles its loop: keep it out of the timing
        t = time.perf_counter(); sim.run(1); runs_first = time.perf_counter() - t
    t = time.perf_counter(); c = time.process_time(); r = sim.run(duration=float(duration))
    runs.append({"threads": th, "loop_s": time.perf_counter() - t, "cpu_s": time.process_time() - c,
                 "synops": sum(r.synops.values()), "first_call_s": first if k == 0 else runs_first})
    if k == 0:
        spikes = {}
        for p in net.populations:
            st, ids, _ = sim.spikes.get(p)
            keep = st >= int(round(float(presim) / net.dt))
            spikes[p + "_t"] = st[keep] * net.dt
            spikes[p + "_i"] = ids[keep].astype(np.int64)
        np.savez(out, **spikes)
print(json.dumps({"n_neurons": net.n_neurons, "n_synapses": int(sum(k.n_syn for k in net.projections.values())),
                  "n": {p: net.populations[p].n for p in net.populations}, "import_s": 0.0,
                  "build_s": build, "build_with_simulator_s": build_sim, "runs": runs,
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}))
"""


def scenario_text(scale, background):
    """scenarios/microcircuit.toml at ``scale`` with ``background``."""
    text = SCENARIO.read_text()
    for key, value in (("scale", repr(float(scale))), ("background", json.dumps(background))):
        lines = [ln for ln in text.splitlines() if ln.startswith(f"{key} = ")]
        assert len(lines) == 1, f"{SCENARIO}: one '{key} = ' line expected"
        text = text.replace(lines[0], f"{key} = {value}", 1)
    return text


def peer_params(scale, background):
    """The model at ``scale`` as the peers take it (JSON-able): spikelm's own derived numbers."""
    from spikelm.io.scenario import loads_scenario
    from spikelm.network import microcircuit as mc

    sc = loads_scenario(scenario_text(scale, background), "microcircuit.toml")
    p = mc.MicrocircuitParams.from_table(sc.data["microcircuit"])
    d = mc.derived(p)
    v0 = (list(p.v0_mean), list(p.v0_std)) if p.v0 == "optimized" else ([p.v0_original[0]] * len(p.n),
                                                                       [p.v0_original[1]] * len(p.n))
    return {"populations": list(p.populations), "n": [int(max(x, 1)) for x in d["n"]],
            "synapses": d["synapses"].tolist(), "weight_pA": d["weight"].tolist(), "weight_ext_pA": d["weight_ext"],
            "weight_rel_std": p.weight_rel_std, "k_ext": d["k_ext"].tolist(), "bg_rate": p.bg_rate,
            "background": p.background, "dc_pA": d["dc"].tolist(), "delay_exc": p.delay_exc,
            "delay_inh": p.delay_inh, "delay_rel_std": p.delay_rel_std, "v0_mean": v0[0], "v0_std": v0[1],
            "neuron": vars(p.neuron), "dt": sc.dt, "reference_rates": list(p.full_mean_rates)}


def spike_stats(spikes, n, t0_ms, t1_ms, seed=0):
    """Per population: mean rate (Hz, every neuron), mean CV of ISIs (neurons with >= 3 spikes),
    mean pairwise correlation of spike counts in BIN_MS bins (CC_NEURONS random neurons that fired)."""
    rng = np.random.default_rng(seed)
    out = {}
    T = (t1_ms - t0_ms) * 1e-3
    for pop, n_pop in n.items():
        t, i = np.asarray(spikes[f"{pop}_t"]), np.asarray(spikes[f"{pop}_i"])
        keep = (t >= t0_ms) & (t < t1_ms)
        t, i = t[keep], i[keep]
        rate = t.size / n_pop / T
        order = np.lexsort((t, i))
        t, i = t[order], i[order]
        cvs = []
        bounds = np.flatnonzero(np.diff(i)) + 1
        for seg_t in np.split(t, bounds):
            if seg_t.size >= 3:
                isi = np.diff(seg_t)
                cvs.append(isi.std() / isi.mean())
        fired = np.unique(i)
        cc = math.nan
        if fired.size >= 2:
            pick = rng.choice(fired, size=min(CC_NEURONS, fired.size), replace=False)
            nb = int(round((t1_ms - t0_ms) / BIN_MS))
            counts = np.zeros((pick.size, nb))
            where = {int(x): k for k, x in enumerate(pick)}
            sel = np.isin(i, pick)
            rows = np.array([where[int(x)] for x in i[sel]], dtype=np.int64)
            cols = np.minimum(((t[sel] - t0_ms) / BIN_MS).astype(np.int64), nb - 1)
            np.add.at(counts, (rows, cols), 1)
            c = np.corrcoef(counts)
            cc = float(c[np.triu_indices_from(c, 1)].mean())
        out[pop] = {"rate_hz": rate, "cv_isi": float(np.mean(cvs)) if cvs else math.nan, "cc": cc}
    return out


def run_spikelm(scale, background, seed, presim, duration, threads, out):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    r = subprocess.run([sys.executable, "-c", _SPIKELM, str(scale), background, str(seed), str(presim),
                        str(duration), ",".join(map(str, threads)), str(out)], capture_output=True, text=True,
                       env=env, cwd=REPO)
    if r.returncode != 0:
        print(r.stderr[-3000:], file=sys.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--peer-scale", type=float, default=None, help="scale of the peers' runs (default: --scale)")
    ap.add_argument("--duration", type=float, default=1000.0, help="timed model time, ms")
    ap.add_argument("--presim", type=float, default=500.0, help="model time before it (discarded), ms")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--peer-threads", default=None, help="the peers' thread counts (default: --threads)")
    ap.add_argument("--peers", default="nest,brian2", help="comma-separated; '' for none")
    ap.add_argument("--background", default="dc", choices=["dc", "poisson"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--plot", help="write rates per population (spikelm, NEST, reference) to this PNG")
    ap.add_argument("--json", help="also write every figure to this file")
    args = ap.parse_args(argv)
    threads = [int(x) for x in args.threads.split(",") if x.strip()]
    peer_threads = [int(x) for x in (args.peer_threads or args.threads).split(",") if x.strip()]
    peer_scale = args.peer_scale or args.scale
    peers = [p for p in args.peers.split(",") if p.strip()]
    t0, t1 = args.presim, args.presim + args.duration
    results = {"scale": args.scale, "peer_scale": peer_scale, "background": args.background,
               "duration_ms": args.duration, "presim_ms": args.presim, "omp_wait_policy":
               os.environ.get("OMP_WAIT_POLICY", "(default)"), "stats": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"microcircuit: scale {args.scale} (peers {peer_scale}), {args.background} background, "
              f"{args.presim:g} ms presim + {args.duration:g} ms timed, threads {threads}", flush=True)
        sp = run_spikelm(args.scale, args.background, args.seed, args.presim, args.duration, threads,
                         tmp / "spikelm.npz")
        results["spikelm"] = sp
        n = sp["n"] if sp else None
        if sp:
            results["stats"]["spikelm"] = spike_stats(np.load(tmp / "spikelm.npz"), n, t0, t1)
        if peers:
            from benchmarks.peers import run_microcircuit

            P = peer_params(peer_scale, args.background)
            (tmp / "params.json").write_text(json.dumps(P))
            n_peer = dict(zip(P["populations"], P["n"]))
            for peer in peers:
                rows = []
                for k, th in enumerate(peer_threads):
                    out = tmp / f"{peer}_{th}.npz"
                    r = run_microcircuit(peer, tmp / "params.json", out, args.duration, args.presim, threads=th,
                                         seed=args.seed)
                    rows.append(r)
                    if r is not None and k == 0:
                        results["stats"][peer] = spike_stats(np.load(out), n_peer, t0, t1)
                results[peer] = rows
    _print(results, threads, peers)
    if args.plot and results["stats"]:
        plot_rates(results, args.plot)
        print(f"plot: {args.plot}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float))
    return 0


def _print(results, threads, peers):
    from spikelm.network.microcircuit import MicrocircuitParams
    from spikelm.io.scenario import loads_scenario

    sp = results["spikelm"]
    model_s = results["duration_ms"] / 1000
    if sp:
        print(f"\nspikelm: {sp['n_neurons']:,} neurons, {sp['n_synapses']:,} synapses; build {sp['build_s']:.1f} s "
              f"(with the simulator {sp['build_with_simulator_s']:.1f} s); peak memory {sp['peak_rss_gb']:.2f} GB")
    print(f"\n  {'simulator':<22}{'threads':>8}{'compile s':>11}{'setup s':>9}{'loop s':>9}{'CPU s':>9}{'RTF':>8}"
          f"{'vs 1 thread':>13}")
    base = {}
    for r in (sp["runs"] if sp else []):
        base.setdefault("spikelm", r["loop_s"])
        print(f"  {'spikelm numba':<22}{r['threads']:>8}{r['first_call_s']:>11.2f}{'':>9}{r['loop_s']:>9.2f}"
              f"{r['cpu_s']:>9.2f}{r['loop_s'] / model_s:>8.2f}{base['spikelm'] / r['loop_s']:>13.2f}")
    for peer in peers:
        for r in results.get(peer) or []:
            if r is None:
                print(f"  {peer:<22}{'(not available)':>30}")
                continue
            base.setdefault(peer, r["loop_s"])
            scale = f" @{results['peer_scale']:g}" if results["peer_scale"] != results["scale"] else ""
            print(f"  {peer + scale:<22}{r['threads']:>8}{'':>11}{r['setup_s']:>9.1f}{r['loop_s']:>9.2f}"
                  f"{r.get('loop_cpu_s', float('nan')):>9.2f}{r['loop_s'] / model_s:>8.2f}{base[peer] / r['loop_s']:>13.2f}")
    stats = results["stats"]
    if not stats:
        return
    ref = MicrocircuitParams.from_table(loads_scenario(SCENARIO.read_text()).data["microcircuit"]).full_mean_rates
    names = list(next(iter(stats.values())))
    sims = list(stats)
    print(f"\n  statistics of [{results['presim_ms']:g}, {results['presim_ms'] + results['duration_ms']:g}) ms")
    head = "".join(f"{s + ' Hz':>12}" for s in sims) + f"{'reference':>11}" + "".join(f"{s + ' CV':>12}" for s in sims) \
        + "".join(f"{s + ' CC':>12}" for s in sims)
    print(f"  {'population':<11}{head}")
    for k, pop in enumerate(names):
        row = "".join(f"{stats[s][pop]['rate_hz']:>12.3f}" for s in sims) + f"{ref[k]:>11.3f}"
        row += "".join(f"{stats[s][pop]['cv_isi']:>12.3f}" for s in sims)
        row += "".join(f"{stats[s][pop]['cc']:>12.5f}" for s in sims)
        print(f"  {pop:<11}{row}")


def plot_rates(results, path):
    """Bars of the mean rate per population: each simulator of this run and the reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spikelm.io.scenario import loads_scenario
    from spikelm.network.microcircuit import MicrocircuitParams

    stats = results["stats"]
    names = list(next(iter(stats.values())))
    ref = MicrocircuitParams.from_table(loads_scenario(SCENARIO.read_text()).data["microcircuit"]).full_mean_rates
    series = [(f"{s} (scale {results['scale'] if s == 'spikelm' else results['peer_scale']:g})",
               [stats[s][p]["rate_hz"] for p in names]) for s in stats]
    series.append(("reference (INM-6, NEST, full scale)", list(ref)))
    fig, ax = plt.subplots(figsize=(7.5, 3.2), dpi=120)
    width = 0.8 / len(series)
    x = np.arange(len(names))
    for k, (label, vals) in enumerate(series):
        ax.bar(x + (k - (len(series) - 1) / 2) * width, vals, width, label=label)
    ax.set_xticks(x, names)
    ax.set_ylabel("mean rate (Hz)")
    ax.set_title(f"Potjans-Diesmann microcircuit, {results['background']} background, "
                 f"{results['duration_ms'] / 1000:g} s after {results['presim_ms']:g} ms")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
