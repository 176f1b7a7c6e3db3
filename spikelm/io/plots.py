"""Pictures of spike files: raster with population rates, state traces, and weight
distributions over time.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no display, no change to
the user's matplotlib backend) and saved as PNG.
"""

from __future__ import annotations

import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from spikelm.errors import ConfigError
from spikelm.io.sonata import read_metadata, read_spikes, read_state, read_weights
from spikelm.io.sonata_format import _py
from spikelm.io.sonata_read import _open, _reading, _state_group
from spikelm.io.sonata_summary import rate_label, span

__all__ = ["plot_raster", "plot_state", "plot_weights"]

_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
            "#e377c2", "#7f7f7f", "#bcbd22"]
_LINES = ["#1f77b4", "#ff7f0e", "#d62728"]   # first, middle, last weight histogram
_NEGATIVE = "#000000"   # negative (inhibitory) spikes of signed populations


#: Above this many populations the raster is drawn in its compact form.
MANY = 12


def plot_raster(path_or_spikes, out_png, max_points=200_000, t_range=None, max_neurons=1000):
    """Raster of every population over a panel of population rates.

    Parameters
    ----------
    path_or_spikes : str, os.PathLike, Simulator or dict[str, SpikeTable]
        A spike file, a :class:`~spikelm.simulator.Simulator` that kept its spikes in memory,
        or what ``read_spikes`` (or ``Simulator.spikes_as_tables``) returned.
    out_png : str or os.PathLike
        Where to write the PNG.
    max_points : int
        Largest number of spikes drawn; above it an even random subset (seeded) is drawn and
        the title says so. Rates always use every spike. With more than :data:`MANY`
        populations (a converted LM has dozens) the y axis labels a subset, the legend only
        explains the colours and the rate panel shows all populations together.
    t_range : (float, float), optional
        Time window in ms (in steps for a converted LM's file); default the run's steps.
    max_neurons : int
        Largest number of neuron rows drawn. A larger network would print one dark band: then
        only every k-th neuron of each population is drawn (whole spike trains), and the
        title says "1 in k neurons". Rates always use every neuron.

    Returns
    -------
    str
        ``out_png``.
    """
    spikes, meta, title = _spikes_of(path_or_spikes)
    for name, value in (("max_points", max_points), ("max_neurons", max_neurons)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"plot_raster: {name}: got {value!r}; allowed: an int >= 1")
    unit = "step" if any(t.time_unit == "step" for t in spikes.values()) else "ms"
    t0, t1 = _time_window(spikes, meta, t_range)
    pops = list(spikes)
    sizes = {}
    for name in pops:
        table = spikes[name]
        n = table.n_nodes
        if n is None:
            n = int(table.node_ids.max()) + 1 if len(table) else 1
        sizes[name] = max(int(n), 1)
    every = -(-sum(sizes.values()) // max_neurons)   # draw neurons 0, k, 2k, ... of each population
    selected = {}
    for name in pops:
        t = spikes[name].timestamps
        selected[name] = np.flatnonzero((t >= t0) & (t <= t1))
    drawable = {name: idx[spikes[name].node_ids[idx] % every == 0] if every > 1 else idx
                for name, idx in selected.items()}
    total = sum(idx.size for idx in selected.values())
    n_drawable = sum(idx.size for idx in drawable.values())
    keep = 1.0 if n_drawable <= max_points else max_points / n_drawable
    rng = np.random.default_rng(0)

    fig = Figure(figsize=(10, 6.5), dpi=110)
    FigureCanvasAgg(fig)
    ax, ax_rate = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    offset, ticks, handles = 0, [], {}
    bin_w = _bin_width(t1 - t0, meta.get("dt"))
    edges = np.arange(t0, t1 + bin_w, bin_w)
    if edges.size < 2:
        edges = np.array([t0, t0 + bin_w])
    many = len(pops) > MANY
    all_counts = np.zeros(edges.size - 1)
    per_s = 1000.0 / bin_w   # a bin's count per neuron -> per second (ms) or per 1,000 steps
    for i, name in enumerate(reversed(pops)):
        table, idx = spikes[name], drawable[name]
        colour = _COLOURS[(len(pops) - 1 - i) % len(_COLOURS)]
        if keep < 1.0 and idx.size:
            idx = np.sort(rng.choice(idx, size=int(round(idx.size * keep)), replace=False))
        t = table.timestamps[idx]
        y = table.node_ids[idx].astype(np.float64) + offset
        if table.values is not None:
            neg = table.values[idx] < 0
            ax.plot(t[~neg], y[~neg], ls="none", marker="|", ms=3, mew=0.6, color=colour)
            ax.plot(t[neg], y[neg], ls="none", marker="|", ms=3, mew=0.6,
                    color=_NEGATIVE)
            handles[name] = [_handle(colour, f"{name} +1"), _handle(_NEGATIVE, f"{name} -1")]
        else:
            ax.plot(t, y, ls="none", marker="|", ms=3, mew=0.6, color=colour)
            handles[name] = [_handle(colour, name)]
        ticks.append((offset + sizes[name] / 2, name))
        if offset:
            ax.axhline(offset - 0.5, color="0.8", lw=0.6)
        offset += sizes[name]
        all_t = table.timestamps[selected[name]]
        counts, _ = np.histogram(all_t, bins=edges)
        all_counts += counts
        if not many:
            # stairs draws every bin, the last one included, over its whole width
            ax_rate.stairs(counts / sizes[name] * per_s, edges, color=colour, lw=1.2, label=name)
    if many:
        ax_rate.stairs(all_counts / sum(sizes.values()) * per_s, edges, color="0.2", lw=1.2,
                       label="all populations")
        ax_rate.legend(fontsize=8, frameon=False, loc="upper right")
        step = -(-len(ticks) // MANY)
        ticks = ticks[::-1][::step][::-1]  # label every step-th population, from the top one
    ax.set_yticks([p for p, _ in ticks], [n for _, n in ticks], fontsize=8 if many else None)
    ax.set_ylim(-0.5, offset - 0.5)
    ax.set_ylabel("population")
    if not many:
        _index_axis(ax, pops, sizes)
        ax.legend(handles=[h for name in pops for h in handles[name]], loc="upper left",
                  bbox_to_anchor=(1.09, 1.0), fontsize=8, frameon=False)
    elif any(spikes[n].values is not None for n in pops):
        ax.legend(handles=[_handle("0.5", "+1: population colour"), _handle(_NEGATIVE, "-1")], loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    shown = []
    if every > 1:
        shown.append(f"1 in {every} neurons")
    if keep < 1:
        shown.append(f"{int(round(n_drawable * keep)):,} spikes")
    skipped = ", ".join(meta.get("not_recorded") or {})
    ax.set_title(f"{title}: {total:,} spikes" + (f" ({', '.join(shown)} drawn)" if shown else "")
                 + (f"; not recorded: {skipped}" if skipped else ""))
    ax_rate.set_xlim(t0, t1 if t1 > t0 else t0 + bin_w)
    ax_rate.set_xlabel("time (ms)" if unit == "ms" else "step")
    ax_rate.set_ylabel(f"{rate_label(unit)}\n{bin_w:g} {'ms' if unit == 'ms' else 'step'} bins")
    ax_rate.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.fspath(out_png))
    return os.fspath(out_png)


def _spikes_of(source):
    """(spike tables, metadata, title) of what ``plot_raster`` was given; anything else is one line."""
    from spikelm.io.sonata import SpikeTable

    if isinstance(source, (str, os.PathLike)):
        return read_spikes(source), read_metadata(source), os.path.basename(os.fspath(source))
    if hasattr(source, "spikes_as_tables") and hasattr(source, "network"):     # a Simulator
        if not source.spikes.keep:
            raise ConfigError("plot_raster: this Simulator kept no spikes in memory (in_memory=False); "
                              "plot its run file instead")
        meta = {"dt": source.network.dt, "steps": int(source.t), "start_step": 0}
        return source.spikes_as_tables(), meta, "simulation"
    if isinstance(source, dict) and all(isinstance(k, str) and isinstance(v, SpikeTable) for k, v in source.items()):
        return source, {}, "spikes"
    hint = (" (a RunResult holds counts, not spikes: pass the Simulator)" if hasattr(source, "quiescent") else "")
    raise ConfigError(f"plot_raster: got {type(source).__name__}{hint}; allowed: a run file path, a Simulator, "
                      "or a dict of SpikeTable (read_spikes, Simulator.spikes_as_tables)")


def _index_axis(ax, pops, sizes):
    """Neuron indices on a right-hand axis: a few round indices of each population, from 0 to n - 1."""
    from matplotlib.ticker import MaxNLocator

    positions, labels, offset = [], [], 0
    per = max(2, 8 // max(len(pops), 1))
    gap = sum(sizes.values()) / 30      # labels closer than this would overlap
    for i, name in enumerate(reversed(pops)):     # drawn bottom up, as the raster stacks them
        n = sizes[name]
        local = {int(v) for v in MaxNLocator(nbins=per, integer=True).tick_values(0, n - 1) if 0 <= v < n}
        # the top neuron of the top population; below, the next population's 0 marks the boundary
        local.add(n - 1) if i == len(pops) - 1 else local.discard(n - 1)
        for k in sorted(local | {0}):
            if positions and offset + k - positions[-1] < gap and k != 0:
                continue
            if positions and offset + k - positions[-1] < gap:      # a population's 0 wins over the tick below
                positions.pop()
                labels.pop()
            positions.append(offset + k)
            labels.append(str(k))
        offset += n
    right = ax.twinx()
    right.set_ylim(ax.get_ylim())
    right.set_yticks(positions, labels, fontsize=8)
    right.set_ylabel("neuron index")
    return right


def _handle(colour, label):
    return Line2D([], [], ls="none", marker="|", ms=8, mew=1.5, color=colour, label=label)


def _time_window(spikes, meta, t_range, what="plot_raster"):
    if t_range is not None:
        try:
            t0, t1 = (float(x) for x in t_range)
        except (TypeError, ValueError):
            t0 = t1 = np.nan
        if not (np.isfinite(t0) and np.isfinite(t1) and t1 > t0):
            raise ConfigError(f"{what}: t_range: got {t_range!r}; allowed: (start, stop) "
                              "in ms (steps for a converted LM) with stop > start")
        return t0, t1
    covered = span(meta)
    if covered is not None and meta.get("dt"):
        # a resumed run's file starts at its start_step: draw its steps, not 0 .. the end
        first, n = covered
        return first * meta["dt"], (first + n) * meta["dt"]
    last = [float(s.timestamps.max()) for s in spikes.values() if len(s)]
    return 0.0, (max(last) if last else 1.0) + (meta.get("dt") or 1.0)


def _bin_width(span, dt):
    """A round bin width giving about 100 bins, never below dt."""
    raw = max(span / 100.0, dt or 0.0, 1e-9)
    scale = 10.0 ** np.floor(np.log10(raw))
    for m in (1, 2, 5, 10):
        if m * scale >= raw:
            return float(m * scale)
    return float(10 * scale)


def plot_weights(path, projection, out_png, bins=60):
    """Weight distribution of one projection at every snapshot.

    Left: a heatmap of the histogram (weight on y, snapshot time on x, colour the fraction of
    synapses), where a distribution turning bimodal shows as one band splitting in two.
    Right: the first, middle and last histograms as lines.

    Returns
    -------
    str
        ``out_png``.
    """
    steps, snaps = read_weights(path, projection)
    meta = read_metadata(path)
    dt = meta.get("dt")
    units = _weight_units(path, projection)
    w_label = f"weight ({units})" if units else "weight"
    if snaps.shape[0] == 0 or snaps.shape[1] == 0:
        raise ConfigError(f"{os.fspath(path)}: /report/{projection}/weights: no snapshots; "
                          "allowed: at least one snapshot of at least one synapse")
    w = snaps.astype(np.float64)
    if not np.all(np.isfinite(w)):
        raise ConfigError(f"{os.fspath(path)}: /report/{projection}/weights: NaN or infinite weights; "
                          "allowed: finite weights (a histogram of them is drawn)")
    lo, hi = float(w.min()), float(w.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    hist = np.stack([np.histogram(row, bins=edges)[0] for row in w]) / w.shape[1]
    in_ms = bool(dt) and meta.get("time_unit", "ms") == "ms"
    x = steps * dt if in_ms else steps.astype(np.float64)
    xlabel = "time (ms)" if in_ms else "step"

    fig = Figure(figsize=(11, 5), dpi=110)
    FigureCanvasAgg(fig)
    ax, ax_lines = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    if x.size > 1:
        half = np.diff(x) / 2
        x_edges = np.concatenate(([x[0] - half[0]], x[:-1] + half, [x[-1] + half[-1]]))
    else:
        x_edges = np.array([x[0] - 0.5, x[0] + 0.5])
    # log colour scale: the initial distribution (often one value) would otherwise wash out
    # the two bands a bimodal split makes
    from matplotlib.colors import LogNorm

    positive = hist[hist > 0]
    norm = LogNorm(vmin=max(float(positive.min()), 1e-5), vmax=1.0) if positive.size else None
    mesh = ax.pcolormesh(x_edges, edges, np.ma.masked_less_equal(hist.T, 0), cmap="magma", shading="flat", norm=norm)
    fig.colorbar(mesh, ax=ax, label="fraction of synapses (log)")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(w_label)
    fig.suptitle(f"{os.path.basename(os.fspath(path))}: {projection} weights "
                 f"({snaps.shape[1]:,} synapses, {snaps.shape[0]} snapshots)")
    picks = sorted({0, snaps.shape[0] // 2, snaps.shape[0] - 1})
    centres = (edges[:-1] + edges[1:]) / 2
    for k, i in enumerate(picks):
        ax_lines.plot(centres, hist[i], drawstyle="steps-mid", color=_LINES[k], lw=1.5,
                      label=f"t = {x[i]:g} ms" if in_ms else f"step {x[i]:g}")
    ax_lines.set_xlabel(w_label)
    ax_lines.set_ylabel("fraction of synapses")
    ax_lines.legend(fontsize=8)
    ax_lines.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.fspath(out_png))
    return os.fspath(out_png)


def _weight_units(path, projection):
    path, f = _open(path)
    with f, _reading(path):
        return _py(f["report"][projection]["weights"].attrs.get("units", ""))


def plot_state(path, population, out_png, variable=None, max_traces=10, t_range=None):
    """Traces of one recorded state variable (e.g. the membrane potential ``v``).

    Draws up to ``max_traces`` neurons (the first recorded ones; the title says how many of
    how many) and, when more than one neuron is recorded, their mean in black.

    Parameters
    ----------
    path : str or os.PathLike
        A run file with a state report of ``population``.
    population : str
    out_png : str or os.PathLike
    variable : str, optional
        Default: the population's first recorded variable.
    max_traces : int
    t_range : (float, float), optional
        Time window in ms.

    Returns
    -------
    str
        ``out_png``.
    """
    if isinstance(max_traces, bool) or not isinstance(max_traces, (int, np.integer)) or max_traces < 1:
        raise ConfigError(f"plot_state: max_traces: got {max_traces!r}; allowed: an int >= 1")
    ids, times, data = read_state(path, population, variable)
    name, units = _state_labels(path, population, variable)
    if data.shape[0] == 0:
        raise ConfigError(f"{os.fspath(path)}: /report/{population}: {name} has no frames; "
                          "allowed: a report with at least one sample")
    meta = read_metadata(path)
    unit = meta.get("time_unit", "ms")
    if t_range is not None:
        t0, t1 = _time_window({}, meta, t_range, "plot_state")
        sel = (times >= t0) & (times <= t1)
        times, data = times[sel], data[sel]
    fig = Figure(figsize=(10, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    shown = min(max_traces, data.shape[1])
    for k in range(shown):
        ax.plot(times, data[:, k], lw=0.8, color=_COLOURS[k % len(_COLOURS)], label=f"neuron {ids[k]}")
    if data.shape[1] > 1:
        ax.plot(times, data.mean(axis=1), lw=2.0, color="black",
                label=f"mean of {data.shape[1]}")
    ax.set_xlabel("time (ms)" if unit == "ms" else "step")
    ax.set_ylabel(f"{name} ({units})" if units else name)
    ax.set_title(f"{os.path.basename(os.fspath(path))}: {population}.{name}, "
                 f"{shown} of {data.shape[1]} recorded neurons")
    ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.fspath(out_png))
    return os.fspath(out_png)


def _state_labels(path, population, variable):
    path, f = _open(path)
    with f, _reading(path):
        d = _state_group(f, path, population, variable)["data"]
        return _py(d.attrs.get("variable", variable or "?")), _py(d.attrs.get("units", ""))
