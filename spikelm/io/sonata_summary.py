"""``spikelm info``: the summary of a run file (populations, rates, SynOps, run facts)."""

from __future__ import annotations

import h5py
import numpy as np

from .sonata_format import _py
from .sonata_read import _metadata, _open, _reading, _spikes

# ----------------------------------------------------------------------------------- summary


def span(meta):
    """The steps a run file covers: ``(first_step, n_steps)`` from its metadata, or None.

    ``start_step`` is where a resumed run began (0 otherwise); ``steps`` is how many steps
    this file's run advanced, so spikes lie in ``[first_step, first_step + n_steps)``.
    """
    steps = meta.get("steps")
    if not isinstance(steps, int) or isinstance(steps, bool):
        return None
    start = meta.get("start_step", 0)
    return (start if isinstance(start, int) and not isinstance(start, bool) else 0), steps


def rate_label(time_unit):
    """Column title of a population rate: Hz, or spikes per neuron per 1,000 steps."""
    return "rate (Hz)" if time_unit == "ms" else "per 1k steps"


def rate_of(n_spikes, n_neurons, length):
    """Spikes per neuron per second (ms files) or per 1,000 steps (step files); ``length`` in ms or steps."""
    if not n_neurons or not length:
        return 0.0
    return n_spikes / n_neurons / (length / 1000.0)


def summary(path):
    """The text ``spikelm info FILE.h5`` prints: populations, rates, SynOps and run facts.

    Rates and SynOps cover the steps of this file's run: a resumed run's file starts at its
    ``start_step``, and its rates are those the run printed.
    """
    path, f = _open(path)
    live = bool(getattr(f, "swmr_mode", False))     # marked open for writing: a run writes it, or was killed
    with f, _reading(path):
        meta = _metadata(f, path)
        spikes = _spikes(f, meta, path)
        reports = _report_lines(f)
    lines = [f"file: {path}"]
    dt = meta.get("dt")
    unit = meta.get("time_unit", "ms")
    if any(t.time_unit == "step" for t in spikes.values()):
        unit = "step"
    covered = span(meta)
    length = None
    if meta:
        state = "complete" if meta.get("complete") else "incomplete (run did not finish)"
        if live:
            state += (f"; marked open for writing: if no run writes it any more, `spikelm repair {path}` "
                      "makes it readable by other HDF5 tools")
        lines.append(f"written by: spikelm {meta.get('version', '?')}, {state}")
        if unit == "step":
            lines.append("time unit: step (timestamps count rounds of spike propagation, not milliseconds)")
            run = []
        else:
            run = [f"dt: {dt:g} ms"]
        if meta.get("converted_lm"):
            tokens = meta.get("tokens")
            vals = [t.values for t in spikes.values() if t.values is not None and len(t.values)]
            top = max((int(np.abs(v).max()) for v in vals), default=0)
            widths = sorted({str(v.dtype) for v in vals})
            lines.append(f"converted LM: {meta.get('model', '?')}, activation bits {meta.get('bits', '?')}, "
                         f"{meta.get('coding', 'unit')} spike coding"
                         + (f" (spike values up to ±{top}, stored as {'/'.join(widths)})" if vals else "")
                         + (f", {len(tokens)} tokens" if isinstance(tokens, list) else ""))
        if covered is not None:
            first, n = covered
            length = n * dt if unit == "ms" else n
            text = f"steps: {n}" + (f" ({length:g} ms)" if unit == "ms" else "")
            if first:
                text += f", from step {first} (resumed" + (
                    f": {first * dt:g} .. {(first + n) * dt:g} ms)" if unit == "ms" else ")")
            run.append(text)
        else:
            run.append("steps: not recorded")
        run.append(f"backend: {meta.get('backend', 'not recorded')}")
        if not meta.get("converted_lm"):   # a converted LM draws no random numbers
            run.append(f"seed: {meta.get('seed', 'not recorded')}")
        lines.append("   ".join(run))
    else:
        lines.append("written by: another SONATA tool (no /spikelm group: dt, steps, seed, "
                     "backend and neuron counts unknown; rates use the spiking neurons and "
                     "0 .. last spike)")
    lines.append("populations:")
    where_col = "time span (ms)" if unit == "ms" else "step span"
    lines.append(f"  {'name':<16}{'neurons':>9}{'spikes':>12}{rate_label(unit):>13}   {where_col}")
    for name, table in spikes.items():
        n = table.n_nodes
        label = str(n) if n is not None else f"{np.unique(table.node_ids).size} active"
        n_rate = n if n is not None else np.unique(table.node_ids).size
        t_len = length if length is not None else (
            float(table.timestamps.max()) + (dt or 0) if len(table) else 0.0)
        rate = rate_of(len(table), n_rate, t_len)
        where = (f"{table.timestamps.min():g} .. {table.timestamps.max():g}" if len(table)
                 else "no spikes")
        signed = ""
        if table.values is not None and len(table):
            signed = f"   (+: {int((table.values > 0).sum())}, -: {int((table.values < 0).sum())})"
        lines.append(f"  {name:<16}{label:>9}{len(table):>12}{rate:>13.3f}   {where}{signed}")
    for name, n in (meta.get("not_recorded") or {}).items():
        lines.append(f"  {name:<16}{n:>9}{'not recorded':>13}")
    synops = meta.get("synops")
    by_layer = meta.get("synops_by_layer")
    if isinstance(by_layer, dict) and by_layer:     # a converted LM: per layer, against dense MACs
        macs = meta.get("macs_by_layer") or {}
        lines.append("SynOps per layer:")
        lines.append(f"  {'layer':<16}{'SynOps':>16}{'dense MACs':>16}")
        for name, count in by_layer.items():
            lines.append(f"  {name:<16}{count:>16,}{macs.get(name, 0):>16,}")
    elif synops:
        lines.append("SynOps per projection" + (" (this file's steps)" if covered and covered[0] else "") + ":")
        for name, count in synops.items():
            lines.append(f"  {name:<28}{count:>16,}")
        lines.append(f"  {'total':<28}{sum(synops.values()):>16,}")
    elif meta:
        lines.append("SynOps: not recorded")
    lines.extend(reports)
    return "\n".join(lines)


def _report_lines(f):
    lines = []
    for name, g in f.get("report", {}).items():
        frames = [g] if "data" in g else []
        frames += [s for k, s in g.items() if isinstance(s, h5py.Group) and "data" in s]
        for s in frames:
            var = _py(s["data"].attrs.get("variable", "")) or "?"
            units = _py(s["data"].attrs.get("units", ""))
            shape = s["data"].shape
            lines.append(f"state {name}/{var}: {shape[1]} nodes x {shape[0]} frames"
                         + (f" ({units})" if units else ""))
        if "weights" in g:
            shape = g["weights"].shape
            lines.append(f"weights {name}: {shape[0]} snapshots x {shape[1]} synapses")
    return lines
