"""The ``spikelm`` command.

``spikelm run SCENARIO.toml``  run a scenario, write spikes to HDF5, print a summary
``spikelm info FILE.h5``       summary of a run file (or of a NIR graph, FILE.nir)
``spikelm plot FILE.h5``       raster + rate plot, state traces (``--state``), weight histograms (``--weights``)
``spikelm repair FILE``        a killed run's ``.partial`` made readable by every HDF5 tool
``spikelm lm ...``             converted language models (generate, check, report)
``spikelm sweep SCENARIO.toml`` one run per point of a parameter grid, on Dask (docs/scale-out.md)
``spikelm nir ...``            NIR graphs in and out (export, import)

Errors a user can fix print one line (``spikelm: error: ...``) and exit with code 2.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time

from spikelm.errors import ConfigError, SpikelmError, UsageParser
from spikelm.io.outputs import OVERWRITE_HELP
from spikelm.timing import CompileClock


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
    p.add_argument("--compression", choices=["none", "scaleoffset", "deflate"], default="none",
                   help="filter of the spike datasets: none (default), scaleoffset (lossless, libsonata reads it), "
                        "deflate (smallest; libsonata's PyPI build cannot read it)")
    p.add_argument("--plot", help="write a raster + rate plot to this PNG file")
    p.add_argument("--checkpoint", help="save the final state to this checkpoint file")
    p.add_argument("--resume", help="start from this checkpoint (written for the same scenario)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="longest run allowed, in steps (default: the scenario's [run] max_steps, else "
                        "1,000,000,000); a longer run is refused before it starts")
    p.add_argument("--max-memory", type=float, default=None, metavar="GB",
                   help="memory the network may take, in GB (default: this machine's memory); a larger "
                        "network is refused before it is built")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="threads of the numba backend (default: $SPIKELM_THREADS, else every core, at most one "
                        "per 10,000 neurons); any N gives the spikes of one thread")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP + "; a --plot picture is always redrawn")
    p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                   help="override a scenario field, e.g. exc.tau_m=10 (docs/scale-out.md); repeatable")


def main(argv=None) -> int:
    """Entry point of the ``spikelm`` console command; returns the exit code."""
    from spikelm import __version__

    parser = UsageParser(prog="spikelm", description="Event-driven spiking neural network simulator.")
    parser.add_argument("--version", action="version", version=f"spikelm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    p = sub.add_parser("info", help="summary of a run file or of a NIR graph (.nir)",
                       description="Print what a run file holds: the run (dt, steps, backend, seed), each "
                                   "population's neurons, spikes and rate, SynOps per projection, state "
                                   "reports and weight snapshots. Rates cover this file's steps (after "
                                   "--resume: the resumed segment, as the run printed them). For a NIR "
                                   "graph: its nodes, and whether spikelm can import it.")
    p.add_argument("file", help="a run file (HDF5, SONATA layout) written by spikelm or another SONATA tool, "
                                "or a NIR graph")
    p = sub.add_parser("repair", help="make a run file a killed run left (.partial) readable by any HDF5 tool",
                       description="A run killed while writing leaves FILE.h5.partial marked open for writing: "
                                   "spikelm reads it, plain h5py, libsonata and HDFView refuse it. repair copies "
                                   "what it holds into a plain file (datasets cut to the entries they all hold) "
                                   "and puts it in place of FILE, or writes it to -o. Only for a file no run "
                                   "writes any more.")
    p.add_argument("file", help="a run file, e.g. run.h5.partial")
    p.add_argument("-o", "--out", help="write the repaired file here instead of replacing FILE")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p = sub.add_parser("plot", help="raster/rate plot, state traces or weight histograms of a run file",
                       description="Draw a run file as a PNG: by default a raster of every population over "
                                   "their rates; --state draws recorded state (e.g. membrane potential); "
                                   "--weights the weight distribution of a projection over time.")
    p.add_argument("file", help="a run file (HDF5, SONATA layout)")
    p.add_argument("--out", required=True, help="PNG file to write")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--weights", metavar="PROJECTION", help="plot weight histograms of this projection over time")
    what.add_argument("--state", metavar="POPULATION[.VARIABLE]",
                      help="plot recorded state traces, e.g. exc.v (default: the first recorded variable)")
    p.add_argument("--window", nargs=2, type=float, metavar=("START", "STOP"),
                   help="time window in ms (in steps for a converted LM's file); default: the whole run")
    p.add_argument("--max-neurons", type=int, default=1000,
                   help="raster rows at most; larger networks draw every k-th neuron and say so (default 1000)")
    from spikelm.scaleout.cli import add_sweep_parser

    add_sweep_parser(sub)
    from spikelm.io import nir_cli

    nir_cli.add_parser(sub)
    # the lm commands load numba kernels and model code: parse them in spikelm.lm.cli, only when asked for
    p = sub.add_parser("lm", help="converted language models: generate, check, report, evaluate (spikelm lm -h)",
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
            sys.stdout.flush()
            return 0
        if args.command == "plot":
            return _plot(args)
        if args.command == "repair":
            return _repair(args)
        if args.command == "sweep":
            from spikelm.scaleout.cli import run_sweep

            return run_sweep(args)
    except SpikelmError as e:
        print(f"spikelm: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spikelm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _broken_pipe()
    return 0


def _broken_pipe():
    """The reader of our output went away (``spikelm info F | head``): stop quietly, as Unix tools do."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())   # Python's exit flush would raise again otherwise
    except (OSError, ValueError):      # stdout is not a real file (captured in a test)
        pass
    return 141                          # 128 + SIGPIPE, what a shell reports for a killed writer


def _lm(rest):
    try:
        from spikelm.lm import cli as lm_cli
        from spikelm.scaleout import cli as scaleout_cli  # runs `lm evaluate` (scaleout imports lm)
    except ImportError as e:
        print(f"spikelm: error: spikelm lm cannot start ({e}); install the lm extra: pip install 'spikelm[lm]'",
              file=sys.stderr)
        return 2
    try:
        return lm_cli.main(["lm", *rest], evaluate=scaleout_cli)
    except KeyboardInterrupt:
        print("spikelm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # spikelm lm generate ... | head -1
        return _broken_pipe()


def _plot(args):
    from spikelm.io import plots
    from spikelm.io.outputs import PLOT_SUFFIXES, check_output
    from spikelm.io.sonata import validate

    validate(args.file)
    check_output(args.out, "--out", inputs={"FILE": args.file}, suffixes=PLOT_SUFFIXES, overwrite=True)  # redrawn
    if args.max_neurons < 1:
        raise ConfigError(f"--max-neurons: must be >= 1, got {args.max_neurons}")
    if args.weights and args.window:
        raise ConfigError("--window: applies to rasters and state plots; --weights draws every snapshot")
    if args.weights:
        plots.plot_weights(args.file, args.weights, args.out)
    elif args.state:
        population, _, variable = args.state.partition(".")
        plots.plot_state(args.file, population, args.out, variable or None, t_range=args.window)
    else:
        plots.plot_raster(args.file, args.out, t_range=args.window, max_neurons=args.max_neurons)
    print(f"wrote {args.out}")
    return 0


def _repair(args):
    from spikelm.io.outputs import check_output
    from spikelm.io.repair import repair

    if args.out is not None:
        check_output(args.out, "-o", inputs={"FILE": args.file}, overwrite=args.overwrite)
    done = repair(args.file, args.out)
    dropped = sum(done["cut"].values())
    print(f"wrote {done['path']}: " + ("it was marked open for writing (a killed run); " if done["was_open"] else "")
          + (f"{dropped:,} entries that not every dataset of their group held were dropped; " if dropped else "")
          + "plain h5py, libsonata and other HDF5 tools read it now")
    return 0


def _run_options(args, sc):
    """Check every option before any work; return (steps, memory limit in bytes or None)."""
    from spikelm.io.outputs import PLOT_SUFFIXES, check_output

    if args.seed is not None and not 0 <= args.seed < 2**63:
        raise ConfigError(f"--seed: must be an integer in [0, 2**63), got {args.seed}")
    if args.steps is not None and args.steps <= 0:
        raise ConfigError(f"--steps: must be > 0, got {args.steps}")
    if args.max_steps is not None and args.max_steps <= 0:
        raise ConfigError(f"--max-steps: must be > 0, got {args.max_steps}")
    if args.threads is not None:
        from spikelm.simulator.numba_backend import max_threads

        backend = args.backend or sc.backend
        if backend != "numba" and args.threads != 1:
            raise ConfigError(f"--threads: the {backend} backend runs on one thread; threads apply to numba")
        if not 1 <= args.threads <= max_threads():
            raise ConfigError(f"--threads: must be in [1, {max_threads()}] (this machine's Numba threads), "
                              f"got {args.threads}")
    limit = None
    if args.max_memory is not None:
        if not (math.isfinite(args.max_memory) and args.max_memory > 0):
            raise ConfigError(f"--max-memory: must be a finite number of GB > 0, got {args.max_memory}")
        limit = args.max_memory * 1e9
    if args.duration is not None:
        if not (math.isfinite(args.duration) and args.duration > 0):
            raise ConfigError(f"--duration: must be a finite number of ms > 0, got {args.duration}")
        ratio, source = args.duration / sc.dt, "--duration"
        if ratio < 0.5:
            raise ConfigError(f"--duration: {args.duration:g} ms is less than one step (dt = {sc.dt:g} ms)")
    elif args.steps is not None:
        ratio, source = args.steps, "--steps"
    else:
        ratio, source = sc.default_steps(), f"{sc.path}: run"
    if not ratio < 2**62:
        raise ConfigError(f"{source}: {ratio:.4g} steps of {sc.dt:g} ms; allowed: below 4.6e+18 steps "
                          "(step counters are int64)")
    cap = args.max_steps if args.max_steps is not None else sc.max_steps
    if not ratio <= cap:
        raise ConfigError(f"{source}: {ratio:.4g} steps of {sc.dt:g} ms ({ratio * sc.dt / 1000:.4g} s model time) "
                          f"exceed the limit of {cap:,} steps; allow them with --max-steps {ratio:.0f} "
                          "(or [run] max_steps in the scenario)")
    steps = round(ratio)
    inputs = {"scenario": args.scenario}
    if args.resume:
        inputs["--resume"] = args.resume
    outputs = {}
    for flag in ("out", "plot", "checkpoint"):
        v = getattr(args, flag)
        if v is not None:
            check_output(v, f"--{flag}", inputs={**inputs, **outputs},
                         suffixes=PLOT_SUFFIXES if flag == "plot" else None,
                         overwrite=args.overwrite or flag == "plot")   # a picture is redrawn, a result kept
            outputs[f"--{flag}"] = v
    if args.out is not None:    # what a killed run left is a record too (spikelm repair reads it)
        check_output(args.out + ".partial", "--out", inputs={**inputs, **outputs}, overwrite=args.overwrite)
    return steps, limit


def _run(args):
    # Numba's first compile of a kind of network is timed apart from the build and the run
    with CompileClock() as compiling:
        return _simulate(args, compiling)


def _with_sets(message: str, sets) -> str:
    """``message`` naming the ``--set`` values the run was given, where it does not already (the
    scenario file no longer holds the value an error names)."""
    if not sets or "--set" in message:
        return message
    return message + " (with " + ", ".join(f"--set {t[:60]!r}" for t in sets) + ")"


def _simulate(args, compiling):
    from spikelm.interrupt import deferred_interrupts
    from spikelm.io import checkpoint
    from spikelm.io.scenario import load_scenario
    from spikelm.simulator import Simulator

    sc = load_scenario(args.scenario)
    if args.set:
        from spikelm.scaleout.overrides import override

        sc = override(sc, args.set)
    steps, limit = _run_options(args, sc)
    if args.resume:
        checkpoint.check_file(args.resume)
    seed = sc.seed if args.seed is None else args.seed
    t0 = time.perf_counter()
    try:
        net = sc.build(seed, memory_limit=limit)
    except ConfigError as e:   # what only the built network tells, about a value --set may have given
        raise ConfigError(_with_sets(str(e), args.set)) from None
    backend = args.backend or sc.backend
    # the record goes to --out; only a --plot without --out needs the spikes in memory, so a
    # long run's memory stays flat
    try:
        sim = Simulator(net, backend=backend, record=sc.record_spikes(), state=sc.state_monitors,
                        weight_snapshots=sc.weight_snapshots(), in_memory=bool(args.plot and not args.out),
                        threads=args.threads if backend == "numba" else None)
    except ConfigError as e:   # what the built network tells (plasticity bounds, queue memory)
        raise ConfigError(_with_sets(f"{sc.path}: {e}", args.set)) from None
    if args.resume:
        checkpoint.load(sim, args.resume)
    first_step = sim.t
    build_s, build_compile_s = time.perf_counter() - t0, compiling.seconds
    totals0 = {name: sim.rates.total(name) for name in net.populations}
    writer = None
    if args.out:
        from spikelm.io.sonata import SpikeWriter

        recorded = [net.populations[name] for name in sim.spikes.populations]
        # populations whose spikes are not recorded are left out of /spikes (an empty group
        # would read as silent) and listed in the metadata
        skipped = {p.name: p.n for p in net.populations.values() if p.name not in sim.spikes.populations}
        writer = SpikeWriter(args.out, {p.name: p.n for p in recorded}, net.dt,
                             metadata={"seed": seed, "backend": backend, "scenario": sc.text,
                                       "scenario_path": sc.path, "network": json.dumps(net.summary()),
                                       "start_step": sim.t, "not_recorded": skipped,
                                       **({"overrides": sc.overrides} if args.set else {})},
                             signed={p.name: p.model.ternary for p in recorded},
                             compress=args.compression,
                             state_populations={p.name: p.n for p in net.populations.values()})
    try:
        with deferred_interrupts() as ctrl_c:
            result = sim.run(steps, progress=not args.no_progress, writer=writer, on_chunk=ctrl_c.check)
            ctrl_c.check()
            if writer is not None:
                # this file's steps and SynOps: after --resume, those of the resumed segment
                writer.finish({"steps": result.steps, "synops": result.synops, "wall_s": result.wall_s})
    except BaseException as exc:
        if writer is not None:
            writer._abort()
            if isinstance(exc, KeyboardInterrupt):
                print(f"spikelm: the record up to the interrupt is kept in {writer.partial_path}", file=sys.stderr)
        raise
    if args.checkpoint:
        checkpoint.save(sim, args.checkpoint)
    _print_summary(sc, net, sim, result, build_s, totals0, compiling, build_compile_s)
    if args.out:
        print(f"spikes: {args.out}")
    if args.plot:
        from spikelm.io import plots

        # this run's steps (after --resume: the resumed segment, not 0 .. its end)
        plots.plot_raster(args.out if args.out else sim.spikes_as_tables(), args.plot,
                          t_range=(first_step * net.dt, sim.t * net.dt))
        print(f"plot: {args.plot}")
    if args.checkpoint:
        print(f"checkpoint: {args.checkpoint}")
    return 0


def _print_summary(sc, net, sim, result, build_s, totals0, compiling=None, build_compile_s=0.0):
    """The run's table; Numba's compiling (or loading compiled code) is printed apart from build and run."""
    secs = result.steps * net.dt * 1e-3
    total = compiling.seconds if compiling is not None else 0.0
    build, run = max(build_s - build_compile_s, 0.0), max(result.wall_s - (total - build_compile_s), 0.0)
    what = ""
    if total >= 0.005:
        what = (f"compile {total:.2f} s (once per kind of network: cached for later runs), "
                if compiling.compiled > total / 2 else f"load compiled code {total:.2f} s, ")
    threads = f" ({sim.threads} thread{'s' if sim.threads > 1 else ''})" if sim.backend_name == "numba" else ""
    print(f"{sc.path}: {result.steps:,} steps of {net.dt} ms ({secs:g} s model time) on {sim.backend_name}{threads}")
    print(f"  build {build:.2f} s, {what}run {run:.2f} s wall ({run / max(secs, 1e-12):.3g} s per model s)")
    print(f"  {'population':<16}{'neurons':>10}{'spikes':>14}{'rate (Hz)':>12}")
    for name, pop in net.populations.items():
        # the rate monitor counts every population, recorded or not
        n_sp = sim.rates.total(name) - totals0[name]
        rate = f"{n_sp / pop.n / secs:.3f}" if secs > 0 else "-"
        note = "" if name in result.spikes else "   (spikes not recorded)"
        print(f"  {name:<16}{pop.n:>10,}{n_sp:>14,}{rate:>12}{note}")
    if result.synops:
        print(f"  {'projection':<26}{'synapses':>12}{'SynOps':>16}")
        for name, k in net.projections.items():
            print(f"  {name:<26}{k.n_syn:>12,}{result.synops[name]:>16,}")
        print(f"  {'total':<26}{sum(k.n_syn for k in net.projections.values()):>12,}{sum(result.synops.values()):>16,}")


if __name__ == "__main__":
    sys.exit(main())
