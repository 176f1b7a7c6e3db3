"""``spikelm sweep``: one run per point of a parameter grid, on a Dask cluster.

A point is one combination of the ``--set`` values (:mod:`spikelm.scaleout.overrides`). Each
point is a task that rebuilds the scenario from its text, applies the point's overrides, runs
it exactly as ``spikelm run SCENARIO --set ... --out FILE`` does, and writes its own SONATA
file ``OUT/point-<key>.h5`` (through ``.partial``, renamed when complete). The key hashes
everything that decides the result (scenario text, overrides, run length, backend), so a rerun
finds a point's finished file and skips it (resume), and a changed scenario never reuses an
old file. The figures of a point (rates, CV of ISI, SynOps, wall time) are read back from its
file, so a resumed point and a fresh one give the same row.

The summary table is ``OUT/summary.h5`` (group ``/sweep``, :mod:`spikelm.scaleout.table`),
and a plot of one figure against one parameter ``OUT/<figure>-vs-<parameter>.png``.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import dataclass

import numpy as np

from spikelm.errors import ConfigError, SpikelmError

SUMMARY = "summary.h5"
GROUP = "sweep"
FIGURE_HELP = "rate.POP (Hz), cv_isi.POP, synops, wall_s or build_s"


@dataclass(frozen=True)
class RunOptions:
    """What every point shares besides the scenario: run length, backend, compression."""

    steps: int | None = None
    duration: float | None = None
    backend: str | None = None
    compress: bool = False

    def key_fields(self) -> dict:
        return {"steps": self.steps, "duration": self.duration, "backend": self.backend, "compress": self.compress}


@dataclass
class SweepResult:
    """Rows (one dict per point, grid order), the table's columns, the settings, the scenario."""

    rows: list
    columns: list
    settings: list
    text: str
    scenario_path: str

    @property
    def failed(self) -> list:
        return [r for r in self.rows if r["status"] == "error"]


def point_key(text: str, point, opts: RunOptions) -> str:
    """SHA-256 (hex) of what decides a point's result."""
    blob = json.dumps({"scenario": text, "set": [[s.dotted, v] for s, v in point], "run": opts.key_fields()},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def point_file(out_dir: str, key: str) -> str:
    return os.path.join(out_dir, f"point-{key[:16]}.h5")


# -- one point (runs on a worker) -------------------------------------------------------------------
def run_point(text: str, label: str, point, opts: RunOptions, path: str, key: str) -> dict:
    """Run one point and write ``path``; return its figures (:func:`figures_from_file`).

    The same steps as ``spikelm run`` (build with the seed, Simulator with the scenario's
    recording, run, SpikeWriter with the same metadata), plus the point's key.
    """
    from spikelm.io.scenario import loads_scenario
    from spikelm.io.sonata import SpikeWriter
    from spikelm.scaleout.overrides import apply
    from spikelm.simulator import Simulator

    if not os.path.isdir(os.path.dirname(path) or "."):
        raise ConfigError(f"--out {os.path.dirname(path)}: not a directory on worker {_host()}; on several "
                          "machines --out must be a shared file system path")
    t0 = time.perf_counter()
    sc = apply(loads_scenario(text, label), list(point))
    seed = sc.seed
    net = sc.build(seed)
    backend = opts.backend or sc.backend
    sim = Simulator(net, backend=backend, record=sc.record_spikes(), state=sc.state_monitors,
                    weight_snapshots=sc.weight_snapshots())
    build_s = time.perf_counter() - t0
    steps = opts.steps if opts.steps is not None else (
        int(round(opts.duration / sc.dt)) if opts.duration is not None else sc.default_steps())
    writer = SpikeWriter(path, {p.name: p.n for p in net.populations.values()}, net.dt,
                         metadata={"seed": seed, "backend": backend, "scenario": sc.text, "scenario_path": sc.path,
                                   "network": json.dumps(net.summary()), "start_step": sim.t,
                                   "overrides": sc.overrides, "sweep_key": key},
                         signed={p.name: p.model.ternary for p in net.populations.values()},
                         compress=opts.compress)
    try:
        result = sim.run(steps, progress=False, writer=writer)
        writer.finish({"steps": int(sim.t), "synops": sim.synops, "wall_s": result.wall_s, "build_s": build_s})
    except BaseException:
        writer._abort()
        raise
    return figures_from_file(path, key)


def _host():
    import socket

    return socket.gethostname()


def figures_from_file(path: str, key: str | None = None) -> dict:
    """Rates (Hz) and CV of ISI per population, SynOps, steps and times of a finished point file.

    ``key``: the point's key, checked against the file's (a file of another point is an error).
    Populations whose spikes were not recorded get NaN.
    """
    from spikelm.io.sonata import read_metadata, read_spikes
    from spikelm.io.stored import stored_float, stored_int

    meta = read_metadata(path)
    if not meta.get("complete"):
        raise ConfigError(f"{path}: not a finished run file")
    if key is not None and meta.get("sweep_key") != key:
        raise ConfigError(f"{path}: belongs to another point (key {meta.get('sweep_key')!r}); remove it to rerun")
    spikes = read_spikes(path)
    steps = stored_int(meta.get("steps"), f"{path}: /spikelm steps")
    start = stored_int(meta.get("start_step", 0), f"{path}: /spikelm start_step", 0, steps)
    secs = (steps - start) * stored_float(meta.get("dt"), f"{path}: /spikelm dt", positive=True) * 1e-3
    out = {}
    kept = _recorded(meta, path)
    for pop, n in meta["populations"].items():
        t = spikes.get(pop)
        recorded = t is not None and pop in kept
        out[f"rate.{pop}"] = len(t) / n / secs if recorded and secs > 0 and n else math.nan
        out[f"cv_isi.{pop}"] = cv_isi(t.node_ids, t.timestamps) if recorded else math.nan
    out["synops"] = int(sum(meta.get("synops", {}).values()))
    out["steps"] = steps
    out["seed"] = stored_int(meta.get("seed"), f"{path}: /spikelm seed", 0, 2**63 - 1)
    out["wall_s"] = float(meta.get("wall_s", math.nan))
    out["build_s"] = float(meta.get("build_s", math.nan))
    return out


def _recorded(meta, path):
    from spikelm.errors import FileFormatError
    from spikelm.io.textfile import parse_toml

    text = meta.get("scenario")
    if not isinstance(text, str):
        raise FileFormatError(f"{path}: /spikelm scenario: missing or not text; expected the scenario the point ran")
    record = parse_toml(text, f"{path}: /spikelm scenario").get("record", {})
    rec = record.get("spikes", "all") if isinstance(record, dict) else "all"
    overrides = meta.get("overrides", [])
    for item in overrides if isinstance(overrides, list) else ():
        if isinstance(item, list) and len(item) == 2 and item[0] == "record.spikes":
            rec = item[1]
    if rec != "all" and not (isinstance(rec, list) and all(isinstance(x, str) for x in rec)):
        raise FileFormatError(f"{path}: /spikelm scenario: record.spikes is {rec!r:.40}; expected \"all\" or names")
    return set(meta["populations"]) if rec == "all" else set(rec)


def cv_isi(node_ids, times) -> float:
    """Mean over neurons with at least 3 spikes of std(ISI) / mean(ISI); NaN when there are none."""
    node_ids = np.asarray(node_ids, dtype=np.int64)
    times = np.asarray(times, dtype=np.float64)
    if node_ids.size < 3:
        return math.nan
    order = np.lexsort((times, node_ids))
    ids, ts = node_ids[order], times[order]
    same = ids[1:] == ids[:-1]
    isi, owner = np.diff(ts)[same], ids[1:][same]
    uniq, inv = np.unique(owner, return_inverse=True)
    k = np.bincount(inv)
    mean = np.bincount(inv, isi) / k
    var = np.bincount(inv, (isi - mean[inv]) ** 2) / k
    ok = (k >= 2) & (mean > 0)
    return float(np.mean(np.sqrt(var[ok]) / mean[ok])) if ok.any() else math.nan


# -- the sweep (client side) ---------------------------------------------------------------------
def prepare(scenario_path: str, sets: list):
    """Load the scenario, parse the ``--set`` texts and check every value: ``(scenario, settings, points)``."""
    from spikelm.io.scenario import load_scenario
    from spikelm.scaleout import overrides as ov

    sc = load_scenario(scenario_path)
    if not sets:
        raise ConfigError("--set: give at least one PATH=VALUES, e.g. --set exc.tau_m=10,20,30")
    settings = [ov.parse_set(t, sc.data) for t in sets]
    points = ov.grid(settings)
    ov.check(sc, settings)
    return sc, settings, points


def sweep(scenario_path: str, sets: list, out_dir: str, scheduler: str = "local", opts: RunOptions = RunOptions(),
          progress: bool = True, echo=print):
    """Run every point of the ``--set`` grid; return a :class:`SweepResult` (rows in grid order).

    Finished points found in ``out_dir`` are not rerun. A failing point gets status "error"
    and its error; the others go on. ``scheduler``: as ``--scheduler`` (see
    :mod:`spikelm.scaleout.cluster`), or a ``distributed.Client`` of your own.
    """
    from spikelm.scaleout import overrides as ov
    from spikelm.scaleout.cluster import open_client, parse_scheduler, run_tasks, say

    sc, settings, points = prepare(scenario_path, sets)
    parse_scheduler(scheduler)
    _prepare_dir(out_dir)
    out_dir = os.path.abspath(out_dir)  # workers resolve paths from their own working directory
    label = scenario_path  # names the scenario in errors and metadata, as spikelm run does
    rows, tasks, where = [], [], {}
    for point in points:
        key = point_key(sc.text, point, opts)
        path = point_file(out_dir, key)
        row = {"point": os.path.basename(path)[:-3], "status": "ok", "error": ""}
        row.update({s.name: v for s, v in point})
        if os.path.exists(path):
            try:
                row.update(figures_from_file(path, key), status="resumed")
            except SpikelmError as e:
                row.update(status="error", error=str(e))
        else:
            where[len(tasks)] = len(rows)
            # ship each setting with its one value, not the whole grid's values, to the worker
            mine = tuple((ov.Setting(s.name, s.path, (v,)), v) for s, v in point)
            tasks.append((row["point"], run_point, (sc.text, label, mine, opts, path, key)))
        rows.append(row)
    resumed = sum(r["status"] == "resumed" for r in rows)
    echo(f"{len(points)} points, {resumed} finished before, {len(tasks)} to run on {scheduler}")
    if tasks:
        with open_client(scheduler, "spikelm sweep") as client:
            for i, result, error in run_tasks(client, tasks, "sweep", progress):
                row = rows[where[i]]
                if error is None:
                    row.update(result)
                else:
                    row.update(status="error", error=error)
                    say(f"point {row['point']} ({_point_text(settings, row)}) failed: {error}", progress)
    _drop_stale_partials(out_dir, rows)
    return SweepResult(rows, _columns(rows, settings), settings, sc.text, scenario_path)


def _point_text(settings, row):
    return ", ".join(f"{s.name}={row.get(s.name)}" for s in settings)


def _prepare_dir(out_dir):
    parent = os.path.dirname(os.path.abspath(out_dir))
    if not os.path.isdir(parent):
        raise ConfigError(f"--out {out_dir}: directory {parent} does not exist")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ConfigError(f"--out {out_dir}: exists and is not a directory")
    os.makedirs(out_dir, exist_ok=True)
    if not os.access(out_dir, os.W_OK):
        raise ConfigError(f"--out {out_dir}: directory is not writable")


def _drop_stale_partials(out_dir, rows):
    """Remove the ``.partial`` files a killed worker left for points that have finished since."""
    for r in rows:
        if r["status"] in ("ok", "resumed"):
            stale = os.path.join(out_dir, r["point"] + ".h5.partial")
            if os.path.exists(stale):
                os.remove(stale)


def _columns(rows, settings):
    names = [s.name for s in settings]
    figs = []
    for r in rows:
        figs += [k for k in r if k not in figs and k not in names and k not in ("point", "status", "error")]
    rates = sorted(k for k in figs if k.startswith("rate."))
    cvs = sorted(k for k in figs if k.startswith("cv_isi."))
    rest = [k for k in ("synops", "steps", "seed", "wall_s", "build_s") if k in figs and k not in names]
    return ["point", "status", *names, *rates, *cvs, *rest, "error"]


def write_summary(out_dir, result, scheduler):
    """Write ``OUT/summary.h5`` (group ``/sweep``); return its path."""
    from spikelm.scaleout.table import write_table

    return write_table(os.path.join(out_dir, SUMMARY), GROUP, result.rows, result.columns,
                       {"scenario": result.text, "scenario_path": result.scenario_path, "scheduler": str(scheduler),
                        "set": [[s.name, s.dotted, list(s.values)] for s in result.settings]})


# -- the plot -----------------------------------------------------------------------------------
def plot(rows, settings, figure, against, out_dir):
    """Plot ``figure`` against parameter ``against``; points that differ only in the seed are averaged.

    One line per combination of the other parameters; error bars are the standard deviation
    over seeds. Returns the PNG path, or None when no point finished.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r["status"] in ("ok", "resumed")]
    names = [s.name for s in settings]
    if not ok:
        return None
    seeds = [s.name for s in settings if s.path == ("network", "seed") and s.name != against]
    others = [n for n in names if n != against and n not in seeds]
    series = {}
    for r in ok:
        series.setdefault(tuple(_hashable(r[n]) for n in others), {}).setdefault(_hashable(r[against]), []).append(r[figure])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for combo, by_x in series.items():
        xs = list(by_x)
        try:
            xs.sort()
        except TypeError:
            pass
        ys = [np.nanmean(by_x[x]) for x in xs]
        err = [np.nanstd(by_x[x]) if len(by_x[x]) > 1 else 0.0 for x in xs]
        numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in xs)
        pos = xs if numeric else list(range(len(xs)))
        label = ", ".join(f"{n}={v}" for n, v in zip(others, combo)) or None
        ax.errorbar(pos, ys, yerr=err if any(err) else None, marker="o", capsize=3, label=label)
        if not numeric:
            ax.set_xticks(pos, [str(x) for x in xs])
    ax.set_xlabel(against)
    unit = {"rate": " (Hz)", "synops": "", "wall_s": " (s)", "build_s": " (s)"}.get(figure.split(".")[0], "")
    ax.set_ylabel(figure + unit + (", mean ± sd over seeds" if seeds else ""))
    if 1 < len(series) <= 12:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in f"{figure}-vs-{against}")
    path = os.path.join(out_dir, safe + ".png")
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _hashable(v):
    return json.dumps(v, sort_keys=True) if isinstance(v, (list, dict)) else v


def choose_plot(data: dict, settings, figure=None, against=None):
    """``(figure, parameter)`` to plot, checked; defaults: the rate of the first population
    against the first swept parameter that is not the seed."""
    pops = list(data["populations"])
    allowed = [f"rate.{p}" for p in pops] + [f"cv_isi.{p}" for p in pops] + ["synops", "wall_s", "build_s"]
    figure = figure or allowed[0]
    if figure not in allowed:
        raise ConfigError(f"--plot {figure}: not a figure of this sweep; allowed: {', '.join(allowed)}")
    names = [s.name for s in settings]
    if against is None:
        varied = [s for s in settings if len(s.values) > 1 and s.path != ("network", "seed")]
        against = (varied or [s for s in settings if len(s.values) > 1] or settings)[0].name
    if against not in names:
        raise ConfigError(f"--against {against}: not a --set parameter; allowed: {', '.join(names)}")
    return figure, against
