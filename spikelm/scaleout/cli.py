"""Command-line parts of scale-out: ``spikelm sweep`` and the options of ``spikelm lm evaluate``.

The top-level command (``spikelm/cli.py``) and ``spikelm/lm/cli.py`` call only
:func:`add_sweep_parser` / :func:`run_sweep` and :func:`add_evaluate_options` /
:func:`run_evaluate`; nothing here imports Dask, h5py or torch until a command runs.
"""
from __future__ import annotations

import math

from spikelm.errors import ConfigError

SET_HELP = ("PATH=VALUES: a scenario field and its values, e.g. exc.tau_m=10,20,30, seed=0..9, "
            "ee.connect.p=0.01,0.02 (docs/scale-out.md); repeat for a grid")


def add_sweep_parser(sub):
    """Add ``spikelm sweep`` to the top-level sub-parsers."""
    from spikelm.scaleout.cluster import SCHEDULER_HELP
    from spikelm.scaleout.sweep import FIGURE_HELP

    p = sub.add_parser("sweep", help="one run per point of a parameter grid, on a Dask cluster",
                       description="Run SCENARIO once per combination of the --set values, each run on a "
                                   "Dask worker, with its own SONATA file in --out; then a summary table "
                                   "(OUT/summary.h5) and a plot. Finished points are skipped on a rerun.")
    p.add_argument("scenario", help="scenario file, e.g. scenarios/cuba.toml")
    p.add_argument("--set", action="append", default=[], metavar="PATH=VALUES", help=SET_HELP)
    p.add_argument("--out", required=True, metavar="DIR",
                   help="directory of the point files and the summary (on several machines: a shared file system)")
    p.add_argument("--scheduler", default="local", help=SCHEDULER_HELP)
    p.add_argument("--backend", choices=["numpy", "numba", "cupy"], default=None,
                   help="numpy (reference), numba (default), cupy (GPU)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--steps", type=int, help="steps per point (default: the scenario's [run])")
    g.add_argument("--duration", type=float, help="model time per point, ms")
    p.add_argument("--compress", action="store_true", help="deflate-compress spike datasets")
    p.add_argument("--plot", metavar="FIGURE", help=f"figure to plot: {FIGURE_HELP} (default: rate of the first population)")
    p.add_argument("--against", metavar="PATH", help="parameter of the x axis (default: the first swept one)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_sweep(args) -> int:
    """``spikelm sweep``: exit 0 when every point finished, 1 when some failed (each is listed)."""
    from spikelm.scaleout.cluster import parse_scheduler
    from spikelm.scaleout.sweep import RunOptions, choose_plot, plot, prepare, sweep, write_summary
    from spikelm.scaleout.table import format_table

    if args.steps is not None and args.steps <= 0:
        raise ConfigError(f"--steps: must be > 0, got {args.steps}")
    if args.duration is not None and not (math.isfinite(args.duration) and args.duration > 0):
        raise ConfigError(f"--duration: must be > 0, got {args.duration}")
    parse_scheduler(args.scheduler)
    sc, settings, _ = prepare(args.scenario, args.set)
    figure, against = choose_plot(sc.data, settings, args.plot, args.against)
    opts = RunOptions(args.steps, args.duration, args.backend, args.compress)
    res = sweep(args.scenario, args.set, args.out, args.scheduler, opts, progress=not args.no_progress)
    table = write_summary(args.out, res, args.scheduler)
    shown = [c for c in res.columns if c not in ("error", "build_s", "seed") or c in [s.name for s in settings]]
    print(format_table(res.rows, shown))
    png = plot(res.rows, settings, figure, against, args.out)
    done = sum(r["status"] != "error" for r in res.rows)
    print(f"{done} of {len(res.rows)} points finished ({sum(r['status'] == 'resumed' for r in res.rows)} "
          f"from an earlier run); files in {args.out}")
    print(f"summary: {table}")
    if png:
        print(f"plot: {png}")
    for r in res.failed:
        print(f"failed: {r['point']}: {r['error']}")
    return 1 if res.failed else 0


def add_evaluate_options(p):
    """Add the options of ``spikelm lm evaluate`` besides the common --model/--bits/--backend/--max-steps."""
    from spikelm.scaleout.cluster import SCHEDULER_HELP

    src = p.add_mutually_exclusive_group()
    src.add_argument("--text", metavar="FILE",
                     help="evaluate one UTF-8 text file, in this process (default: Python's reference topics, "
                          "the built-in held-out English text)")
    src.add_argument("--docs", metavar="DIR_OR_JSONL",
                     help="a corpus: a directory of .txt files, or a .jsonl file of {\"text\": ..., \"id\": ...} "
                          "lines; one Dask task per document")
    p.add_argument("--scheduler", default="local", help=f"with --docs: {SCHEDULER_HELP}")
    p.add_argument("--snn-tokens", type=int, default=None, metavar="N",
                   help="simulate spike by spike the first N tokens of each document (default: all)")
    p.add_argument("--out", default=None, metavar="TABLE.h5", help="write the per-document table here (HDF5)")
    p.add_argument("--json", default=None, metavar="FILE.json", help="write the figures here (JSON)")
    p.add_argument("--window", type=int, default=None, metavar="N",
                   help="tokens per scoring window (default: the context, at most 512)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_evaluate(args) -> int:
    """``spikelm lm evaluate``: a table per document and the corpus totals."""
    from spikelm.scaleout import corpus

    return corpus.run_cli(args)
