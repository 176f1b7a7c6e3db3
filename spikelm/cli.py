"""The ``spikelm`` command.

``spikelm run SCENARIO.toml``  run a scenario, write spikes to HDF5, print a summary
``spikelm info FILE.h5``       summary of a run file (or of a NIR graph, FILE.nir)
``spikelm plot FILE.h5``       raster + rate plot, or weight histograms (``--weights``)
``spikelm lm ...``             converted language models (generate, check, report)
``spikelm nir ...``            NIR graphs in and out (export, import)

Errors a user can fix print one line (``spikelm: error: ...``) and exit with code 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from spikelm.errors import ConfigError, SpikelmError


def _add_run(sub):
    p = sub.add_parser("run", help="run a scenario file (TOML)", description="Run a scenario file (TOML).")
    p.add_argument("scenario", help="scenario file, e.g. scenarios/cuba.toml")
    p.add_argument("--backend", choices=["numpy", "numba", "cupy"], default=None,
                   help="numpy (reference), numba (default), cupy (GPU)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="number of steps (default: the scenario's [run])")
    g.add_argument("--duration", type=float, help="model time in ms")
    p.add_argument("--seed", type=int, help="override the scenario's seed")
    p.add_argument("--out", help="write spikes and metadata to this HDF5 file (SONATA layout)")
    p.add_argument("--compress", action="store_true",
                   help="deflate-compress spike datasets (~30x smaller; libsonata's PyPI build cannot read them)")
    p.add_argument("--plot", help="write a raster + rate plot to this PNG file")
    p.add_argument("--checkpoint", help="save the final state to this checkpoint file")
    p.add_argument("--resume", help="start from this checkpoint (written for the same scenario)")
    p.add_argument("--threads", type=int, help="Numba threads (default: Numba's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(argv=None) -> int:
    """Entry point of the ``spikelm`` console command; returns the exit code."""
    parser = argparse.ArgumentParser(prog="spikelm", description="Event-driven spiking neural network simulator.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    p = sub.add_parser("info", help="summary of a run file or of a NIR graph (.nir)")
    p.add_argument("file")
    p = sub.add_parser("plot", help="raster/rate plot or weight histograms of a run file")
    p.add_argument("file")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--weights", metavar="PROJECTION", help="plot weight histograms of this projection over time")
    from spikelm.io import nir_cli

    nir_cli.add_parser(sub)
    # the lm commands import torch: parse them in spikelm.lm.cli, only when asked for
    p = sub.add_parser("lm", help="converted language models: generate, check, report (spikelm lm -h)",
                       add_help=False)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["lm"]:
        return _lm(argv[1:])
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "nir":
            return nir_cli.run(args)
        if args.command == "info":
            from spikelm.io.nir import describe, is_nir_file
            from spikelm.io.sonata import summary

            if is_nir_file(args.file):
                print(describe(args.file))
                return 0

            print(summary(args.file))
            return 0
        if args.command == "plot":
            return _plot(args)
    except SpikelmError as e:
        print(f"spikelm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spikelm: interrupted", file=sys.stderr)
        return 130
    return 0


def _lm(rest):
    try:
        from spikelm.lm import cli as lm_cli
    except ImportError as e:
        print(f"spikelm: error: spikelm lm needs torch ({e}); install with: pip install -e . -c constraints.txt",
              file=sys.stderr)
        return 2
    try:
        return lm_cli.main(["lm", *rest])
    except KeyboardInterrupt:
        print("spikelm: interrupted", file=sys.stderr)
        return 130


def _plot(args):
    from spikelm.io import plots
    from spikelm.io.sonata import validate

    validate(args.file)
    if args.weights:
        plots.plot_weights(args.file, args.weights, args.out)
    else:
        plots.plot_raster(args.file, args.out)
    print(f"wrote {args.out}")
    return 0


def _run(args):
    from spikelm.io import checkpoint
    from spikelm.io.scenario import load_scenario
    from spikelm.simulator import Simulator

    sc = load_scenario(args.scenario)
    for flag in ("steps", "duration", "seed", "threads"):
        v = getattr(args, flag)
        if v is not None and (v <= 0 if flag in ("steps", "duration", "threads") else v < 0):
            raise ConfigError(f"--{flag}: must be {'> 0' if flag != 'seed' else '>= 0'}, got {v}")
    for flag in ("out", "plot", "checkpoint"):
        v = getattr(args, flag)
        if v is not None:
            _check_writable(v, f"--{flag}")
    if args.threads:
        import numba

        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    seed = sc.seed if args.seed is None else args.seed
    t0 = time.perf_counter()
    net = sc.build(seed)
    backend = args.backend or sc.backend
    sim = Simulator(net, backend=backend, record=sc.record_spikes(), state=sc.state_monitors,
                    weight_snapshots=sc.weight_snapshots())
    if args.resume:
        checkpoint.load(sim, args.resume)
    build_s = time.perf_counter() - t0
    steps = args.steps if args.steps is not None else (
        int(round(args.duration / sc.dt)) if args.duration is not None else sc.default_steps())
    writer = None
    if args.out:
        from spikelm.io.sonata import SpikeWriter

        writer = SpikeWriter(args.out, {p.name: p.n for p in net.populations.values()}, net.dt,
                             metadata={"seed": seed, "backend": backend, "scenario": sc.text,
                                       "scenario_path": sc.path, "network": json.dumps(net.summary()),
                                       "start_step": sim.t},
                             signed={p.name: p.model.ternary for p in net.populations.values()},
                             compress=args.compress)
    try:
        result = sim.run(steps, progress=not args.no_progress, writer=writer)
        if writer is not None:
            writer.finish({"steps": int(sim.t), "synops": sim.synops, "wall_s": result.wall_s})
    except BaseException:
        if writer is not None:
            writer._abort()
        raise
    if args.checkpoint:
        checkpoint.save(sim, args.checkpoint)
    _print_summary(sc, net, sim, result, build_s)
    if args.out:
        print(f"spikes: {args.out}")
    if args.plot:
        from spikelm.io import plots

        plots.plot_raster(args.out if args.out else sim.spikes_as_tables(), args.plot)
        print(f"plot: {args.plot}")
    if args.checkpoint:
        print(f"checkpoint: {args.checkpoint}")
    return 0


def _check_writable(path, flag):
    import os

    d = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(d):
        raise ConfigError(f"{flag} {path}: directory {d} does not exist")
    if not os.access(d, os.W_OK):
        raise ConfigError(f"{flag} {path}: directory {d} is not writable")


def _print_summary(sc, net, sim, result, build_s):
    secs = result.steps * net.dt * 1e-3
    print(f"{sc.path}: {result.steps:,} steps of {net.dt} ms ({secs:g} s model time) on {sim.backend_name}")
    print(f"  build {build_s:.2f} s, run {result.wall_s:.2f} s wall ({result.wall_s / max(secs, 1e-12):.3g} s per model s)")
    print(f"  {'population':<16}{'neurons':>10}{'spikes':>14}{'rate (Hz)':>12}")
    for name, pop in net.populations.items():
        n_sp = result.spikes.get(name)
        rate = f"{n_sp / pop.n / secs:.3f}" if n_sp is not None and secs > 0 else "-"
        print(f"  {name:<16}{pop.n:>10,}{(n_sp if n_sp is not None else 0):>14,}{rate:>12}")
    if result.synops:
        print(f"  {'projection':<26}{'synapses':>12}{'SynOps':>16}")
        for name, k in net.projections.items():
            print(f"  {name:<26}{k.n_syn:>12,}{result.synops[name]:>16,}")
        print(f"  {'total':<26}{sum(k.n_syn for k in net.projections.values()):>12,}{sum(result.synops.values()):>16,}")


if __name__ == "__main__":
    sys.exit(main())
