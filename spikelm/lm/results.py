"""What an event-driven run returns, and the loops that drive a runner token by token.

:class:`Simulation` (one run: logits, steps, counts per layer, per token) and
:class:`Generation` (greedy decoding) are built here by :func:`drive`, :func:`summarize` and
:func:`greedy`, which the exact runs (:class:`spikelm.lm.convert.SpikingLM`) and the learning
runs (:mod:`spikelm.lm.learn.session`) share.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spikelm.errors import ConfigError
from spikelm.lm.quantize import check_tokens
from spikelm.lm.report import Counts, macs_per_layer


@dataclass
class Simulation:
    """An event-driven run, token by token, to quiescence.

    logits: float64 [L, vocab], equal to the reference's; steps: steps to quiescence per token;
    synops / spikes / spikes_pos / spikes_neg / op_evals / macs: dict layer -> count, plus
    ``"total"``; counts: population -> net spike counts [L, neurons per position] (a compact
    copy of the positions run, int16 where every count is below 2^14 in magnitude, else the
    executor's type; a learning run's per-call results are views into its runner's state);
    per_token: one :class:`Counts` per token; events: (step, population, node, value) arrays
    when recorded.
    """

    logits: np.ndarray
    steps: np.ndarray
    synops: dict
    spikes: dict
    spikes_pos: dict
    spikes_neg: dict
    op_evals: dict
    macs: dict
    counts: dict
    per_token: list = field(default_factory=list)
    events: tuple | None = None
    backend: str = "numba"
    shift_adds: dict | None = None
    drift: object = None  # a learning run's per-token drift from the exact reference (spikelm.lm.learn.drift)

    def totals(self) -> Counts:
        return Counts.from_simulation(self)


@dataclass
class Generation:
    """Greedy generation: ``tokens`` = prompt + new tokens; ``new_tokens``; the simulation."""

    tokens: np.ndarray
    new_tokens: np.ndarray
    simulation: Simulation


def drive(runner, ids, max_steps, on_token, backend, own: bool = False) -> Simulation:
    """Run ``ids`` token by token on ``runner`` (each to quiescence, at most ``max_steps`` steps);
    ``on_token(position, logits_row, counts)`` after each. ``own``: as in :func:`summarize`."""
    return summarize(runner, *run_tokens(runner, ids, max_steps, on_token), backend, own)


def run_tokens(runner, ids, max_steps, on_token) -> tuple[np.ndarray, list]:
    """:func:`drive` without the summary: the logits rows and the per-token counts (what greedy
    decoding needs after each token; the summary of the whole run is built once, at its end)."""
    rows, per_token = [], []
    for t in ids:
        before = Counts.from_runner(runner)
        n = runner.n
        steps = runner.step_token(int(t), max_steps)
        after = Counts.from_runner(runner)
        delta = after.minus(before, steps)
        per_token.append(delta)
        rows.append(runner.logits(n))
        if on_token is not None:
            on_token(n, rows[-1], delta)
    return np.array(rows), per_token


def compact(counts: np.ndarray) -> np.ndarray:
    """A copy of ``counts`` in int16 where every value is below 2^14 in magnitude (so that the
    difference of two such arrays fits too), else in its own type."""
    fits = counts.size == 0 or max(-int(counts.min()), int(counts.max())) < 2**14
    return counts.astype(np.int16 if fits else counts.dtype, copy=True)


def summarize(runner, logits, per_token, backend, own: bool = True) -> Simulation:
    """The :class:`Simulation` of everything ``runner`` ran so far, with these logits and per-token counts.

    ``own``: the spike counts of the positions run copied (:func:`compact`), so that the
    result does not keep the runner's state alive (sized for the whole context, the run's
    largest array); False: views into it (a runner that goes on, summarized after every call)."""
    g, lay = runner.graph, runner.layout
    P0, end = g.n_prefix, runner.n
    tot = Counts.from_runner(runner)
    take = compact if own else (lambda a: a)
    counts = {p.name: take(runner.counts[P0:end, lay.seg(i)]) for i, p in enumerate(g.pops) if p.spiking}
    macs = macs_per_layer(g, end - P0, start=P0)
    ev = None
    if runner.events is not None and runner.events.sink is None:
        ev = runner.events.arrays()
    return Simulation(
        logits=logits,
        steps=np.array([c.steps for c in per_token], dtype=np.int64),
        synops=tot.synops, spikes=tot.spikes, spikes_pos=tot.spikes_pos,
        spikes_neg=tot.spikes_neg, op_evals=tot.op_evals, macs=macs, counts=counts,
        per_token=per_token, events=ev, backend=backend, shift_adds=tot.shift_adds,
    )


def greedy(ids, n_tokens, runner, feed, backend) -> Generation:
    """Greedy decoding through ``feed(ids) -> (logits rows, per-token counts)`` on ``runner``:
    the prompt ``ids``, then ``n_tokens`` tokens, each the argmax of the last logits (the last
    is not run)."""
    tokens = list(ids)
    rows, per_token = feed(ids)
    logits = [rows]
    per_token = list(per_token)
    for i in range(n_tokens):
        nxt = int(np.argmax(logits[-1][-1]))
        tokens.append(nxt)
        if i == n_tokens - 1:
            break
        rows, more = feed(np.array([nxt]))
        logits.append(rows)
        per_token += more
    sim = summarize(runner, np.concatenate(logits), per_token, backend)
    tokens = np.array(tokens, dtype=np.int64)
    return Generation(tokens, tokens[ids.size :], sim)


def generation_ids(prompt_ids, n_tokens, vocab_size: int, context: int) -> np.ndarray:
    """The prompt's token ids, checked, and ``n_tokens`` checked to fit the context after it."""
    ids = check_tokens(prompt_ids, vocab_size, "prompt", context)
    if isinstance(n_tokens, bool) or not isinstance(n_tokens, (int, np.integer)) or n_tokens < 0:
        raise ConfigError(f"n_tokens={n_tokens!r}; allowed: an integer >= 0")
    if ids.size + max(n_tokens - 1, 0) > context:
        raise ConfigError(f"prompt: {ids.size} tokens + {n_tokens} new tokens exceed the model's context of {context}")
    return ids
