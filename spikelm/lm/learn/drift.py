"""How far a learning run moves from the exact reference, token by token.

The exact reference of a graph is its dense QANN (:mod:`spikelm.lm.reference`) for the logits,
and the same graph run with plain SignedIF neurons (:func:`spikelm.lm.graph.plain_graph`) (EI-IF populations as unit coding, which
they equal at their default parameters) for the steps and spikes. Both are computed on the
tokens the learning run saw, so the comparison is position by position.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from spikelm.lm.graph import plain_graph

#: learned-state statistics recorded per token (:meth:`LearnState.stats`), in table order
STAT_KEYS = ("dw_mean", "dw_max", "w_changed", "w_saturated", "rowsum_dev", "int_rowsum_dev", "unit_mean",
             "unit_max", "theta_base_mean", "alpha_mean", "r_mean", "learn_ops", "weight_flips")


def _exp(x) -> float:
    """exp(x), infinite past what a float holds (a perplexity of logits far apart)."""
    return math.exp(float(x)) if x < 709.0 else float("inf")


def nll_rows(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log softmax(logits)[target] per row (float64)."""
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return -logp[np.arange(len(targets)), targets]


@dataclass
class Drift:
    """Per-token drift of a learning run from the exact reference (arrays over the run's tokens).

    max_dlogit: max |logit - exact logit|; agree: top-1 equal; nll / nll_exact: -log p of the
    next token (NaN where it is not known); steps / steps_exact, spikes / spikes_exact: per
    token; stats: key -> array of the learned-state statistics after each token.
    """

    tokens: np.ndarray
    max_dlogit: np.ndarray
    agree: np.ndarray
    nll: np.ndarray
    nll_exact: np.ndarray
    steps: np.ndarray
    steps_exact: np.ndarray
    spikes: np.ndarray
    spikes_exact: np.ndarray
    stats: dict = field(default_factory=dict)

    @classmethod
    def concat(cls, parts: list) -> "Drift":
        keys = [f.name for f in dataclasses.fields(cls) if f.name != "stats"]
        stats = {k: np.concatenate([p.stats[k] for p in parts]) for k in parts[0].stats}
        return cls(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in keys}, stats=stats)

    def summary(self) -> dict:
        """Totals: agreement, perplexities (on the tokens with a known next token), means, last stats."""
        known = ~np.isnan(self.nll)
        n = int(known.sum())
        out = {"tokens": int(self.tokens.size), "top1_agreement": float(self.agree.mean()) if self.agree.size else 1.0,
               "max_dlogit": float(self.max_dlogit.max(initial=0.0)),
               "ppl": _exp(self.nll[known].mean()) if n else float("nan"),
               "ppl_exact": _exp(self.nll_exact[known].mean()) if n else float("nan"),
               "steps_per_token": float(self.steps.mean()), "steps_exact_per_token": float(self.steps_exact.mean()),
               "spikes_per_token": float(self.spikes.mean()),
               "spikes_exact_per_token": float(self.spikes_exact.mean())}
        q = max(1, self.tokens.size // 4)  # the last quarter: where learning has had its say
        out.update(steps_last_quarter=float(self.steps[-q:].mean()),
                   steps_exact_last_quarter=float(self.steps_exact[-q:].mean()),
                   top1_agreement_last_quarter=float(self.agree[-q:].mean()))
        out.update({k: float(v[-1]) for k, v in self.stats.items() if v.size})
        return out

    def table(self, every: int = 1) -> str:
        """One line per token (every ``every``-th): drift, steps, spikes, the main learned-state figures."""
        shown = [k for k in ("dw_mean", "w_changed", "rowsum_dev", "unit_mean", "theta_base_mean") if k in self.stats]
        rows = [f"{'token':>5}{'max|dlogit|':>12}{'top1':>5}{'nll':>8}{'nll exact':>10}{'steps':>7}{'exact':>7}"
                f"{'spikes':>9}{'exact':>9}" + "".join(f"{k:>16}" for k in shown)]
        for i in range(0, self.tokens.size, max(1, every)):
            rows.append(f"{i:>5}{self.max_dlogit[i]:>12.4g}{'yes' if self.agree[i] else 'no':>5}{self.nll[i]:>8.3f}"
                        f"{self.nll_exact[i]:>10.3f}{self.steps[i]:>7}{self.steps_exact[i]:>7}{self.spikes[i]:>9,}"
                        f"{self.spikes_exact[i]:>9,}" + "".join(f"{self.stats[k][i]:>16.4g}" for k in shown))
        return "\n".join(rows)


def measure(snn, ids, sim, stats: list, targets=None, backend: str = "numba") -> Drift:
    """The drift of ``sim`` (a learning run on ``ids``) from the exact reference of ``snn``.

    ``stats``: the learned-state statistics after each token; ``targets``: the next token of
    each position (default: the following id, unknown for the last).
    """
    ids = np.asarray(ids, dtype=np.int64)
    ref = snn.reference(ids).logits
    exact = snn.with_graph(plain_graph(snn.graph)).simulate(ids, backend=backend)
    if targets is None:
        targets = np.concatenate([ids[1:], [-1]])
    targets = np.asarray(targets, dtype=np.int64)
    known = targets >= 0
    nll, nll_x = np.full(ids.size, np.nan), np.full(ids.size, np.nan)
    nll[known] = nll_rows(sim.logits[known], targets[known])
    nll_x[known] = nll_rows(ref[known], targets[known])
    return Drift(
        tokens=ids, max_dlogit=np.abs(sim.logits - ref).max(-1), agree=sim.logits.argmax(-1) == ref.argmax(-1),
        nll=nll, nll_exact=nll_x, steps=np.asarray(sim.steps), steps_exact=np.asarray(exact.steps),
        spikes=np.array([c.spikes["total"] for c in sim.per_token], np.int64),
        spikes_exact=np.array([c.spikes["total"] for c in exact.per_token], np.int64),
        stats={k: np.array([s.get(k, np.nan) for s in stats], np.float64) for k in STAT_KEYS
               if any(k in s for s in stats)})


def chart(drift: Drift, path, title: str = "learning run against the exact reference") -> None:
    """Drift and steps against tokens: max |logit difference| and running top-1 agreement;
    steps and spikes per token, learning run vs exact."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(drift.tokens.size)
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    ax = axes[0]
    ax.plot(x, drift.max_dlogit, color="C3", lw=1)
    ax.set_ylabel("max |logit diff|")
    ax2 = ax.twinx()
    ax2.plot(x, np.cumsum(drift.agree) / (x + 1), color="C0", lw=1)
    ax2.set_ylabel("top-1 agreement (running)", color="C0")
    ax2.set_ylim(0, 1.05)
    axes[1].plot(x, drift.steps, label="learning", lw=1)
    axes[1].plot(x, drift.steps_exact, label="exact", lw=1, color="0.4")
    axes[1].set_ylabel("steps per token")
    axes[1].legend(frameon=False, fontsize=8)
    axes[2].plot(x, drift.spikes, label="learning", lw=1)
    axes[2].plot(x, drift.spikes_exact, label="exact", lw=1, color="0.4")
    axes[2].set_ylabel("spikes per token")
    axes[2].set_xlabel("token")
    axes[0].set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
