"""Counting and the energy estimate.

Definitions (docs/lm.md has the long form):

- **SynOp**: one addition into an accumulator caused by one spike: a spike of a neuron with
  an int8 row of n_post weights costs n_post SynOps; a spike of Q at position n costs n + 1
  (one Q·K^T accumulator per visible key), of K costs 1, of an attention probability costs
  head_dim (one A·V accumulator per channel), of V costs 1. Counted at the layer that owns
  the target accumulators (the LM head's input SynOps count as layer "head").
- **spikes**: emitted spikes, + and - separately; **op_evals**: output elements recomputed by
  operators (embedding, LayerNorm, softmax, GELU, residual sums).
- **MACs**: multiply-accumulates of the dense float model decoding the same tokens with a
  KV cache: per position n and layer 3 d^2 + d^2 + 2 d f (projections) + 2 (n + 1) d
  (Q·K^T and A·V); the head d V per position.
- **energy estimate**: SynOps x E_AC against MACs x E_MAC (defaults 0.9 pJ and 4.6 pJ, 45 nm
  figures); operators, memory traffic and control are left out of both sides. An estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

E_AC_PJ = 0.9
E_MAC_PJ = 4.6


def layer_names(graph) -> list[str]:
    """The layers of a graph's populations, in graph order (``emb``, ``h0``, ..., ``head``)."""
    return list(dict.fromkeys(p.layer for p in graph.pops))


def macs_per_layer(graph, n_tokens: int, start: int = 0) -> dict:
    """Dense MACs of decoding positions ``start .. start + n_tokens - 1`` with a KV cache: every
    projection's n_pre x n_post, every product edge's and operator's own count, per position."""
    from spikelm.lm import edges, ops
    from spikelm.lm.graph import ACCUMULATE

    out = dict.fromkeys(layer_names(graph), 0)
    pops = graph.pops
    per_token = dict.fromkeys(out, 0)
    for pr in graph.projections:
        per_token[pops[pr.post].layer] += pr.weights.shape[0] * pr.weights.shape[1]
    for n in range(start, start + n_tokens):
        for k, v in per_token.items():
            out[k] += v
        for ed in graph.edges:
            out[pops[ed.out].layer] += edges.macs(ed, n)
        for pop in pops:
            if pop.op != ACCUMULATE:
                out[pop.layer] += ops.get(pop.op).macs(graph, pop, n)
    out["total"] = sum(out.values())
    return out


def _by_layer(graph, per_pop) -> dict:
    out = dict.fromkeys(layer_names(graph), 0)
    for p, pop in enumerate(graph.pops):
        out[pop.layer] += int(per_pop[p])
    out["total"] = sum(out.values())
    return out


@dataclass
class Counts:
    """Per-layer counts (dicts layer -> int with "total") and steps."""

    synops: dict
    spikes: dict
    spikes_pos: dict
    spikes_neg: dict
    op_evals: dict
    steps: int = 0
    shift_adds: dict = None

    @classmethod
    def from_runner(cls, runner) -> "Counts":
        g, C = runner.graph, runner.counters
        syn = np.array(C.synops_products, dtype=np.int64)  # product SynOps: the source's layer
        for k, pr in enumerate(g.projections):
            syn[pr.post] += C.synops[k]  # row SynOps: the target's layer
        return cls(
            synops=_by_layer(g, syn),
            spikes=_by_layer(g, C.spikes_pos + C.spikes_neg),
            spikes_pos=_by_layer(g, C.spikes_pos),
            spikes_neg=_by_layer(g, C.spikes_neg),
            op_evals=_by_layer(g, C.op_evals),
            steps=runner.clock,
            shift_adds=_by_layer(g, C.shift_adds),
        )

    @classmethod
    def from_simulation(cls, sim) -> "Counts":
        return cls(sim.synops, sim.spikes, sim.spikes_pos, sim.spikes_neg, sim.op_evals, int(sim.steps.sum()),
                   sim.shift_adds)

    def minus(self, other: "Counts", steps: int) -> "Counts":
        sub = lambda a, b: {k: a[k] - b[k] for k in a}  # noqa: E731
        return Counts(sub(self.synops, other.synops), sub(self.spikes, other.spikes),
                      sub(self.spikes_pos, other.spikes_pos), sub(self.spikes_neg, other.spikes_neg),
                      sub(self.op_evals, other.op_evals), steps, sub(self.shift_adds, other.shift_adds))


def energy(synops: int, macs: int, e_ac_pj: float = E_AC_PJ, e_mac_pj: float = E_MAC_PJ) -> dict:
    """Estimated energy in joules of the synaptic operations and of the dense MACs."""
    return {"snn_j": synops * e_ac_pj * 1e-12, "ann_j": macs * e_mac_pj * 1e-12,
            "e_ac_pj": e_ac_pj, "e_mac_pj": e_mac_pj}


def table(sim, e_ac_pj: float = E_AC_PJ, e_mac_pj: float = E_MAC_PJ) -> str:
    """Per-layer table of a :class:`~spikelm.lm.convert.Simulation`, energy estimate at the end."""
    rows = [f"{'layer':<7}{'SynOps':>14}{'spikes +':>12}{'spikes -':>12}{'op evals':>11}{'dense MACs':>14}{'SynOps/MAC':>11}"]
    for name in list(sim.synops):
        s, m = sim.synops[name], sim.macs.get(name, 0)
        ratio = f"{s / m:.3f}" if m else "-"
        rows.append(f"{name:<7}{s:>14,}{sim.spikes_pos[name]:>12,}{sim.spikes_neg[name]:>12,}"
                    f"{sim.op_evals[name]:>11,}{m:>14,}{ratio:>11}")
    e = energy(sim.synops["total"], sim.macs["total"], e_ac_pj, e_mac_pj)
    rows.append(
        f"energy estimate (synaptic ops vs dense MACs only; {e_ac_pj} pJ/AC, {e_mac_pj} pJ/MAC): "
        f"SNN {e['snn_j'] * 1e6:.3f} uJ, dense ANN {e['ann_j'] * 1e6:.3f} uJ"
    )
    return "\n".join(rows)


def bar_chart(sim, path, title: str = "SynOps vs dense MACs per layer",
              e_ac_pj: float = E_AC_PJ, e_mac_pj: float = E_MAC_PJ) -> None:
    """Save a bar chart of SynOps and MACs per layer (log scale), energy estimate below it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [k for k in sim.synops if k != "total"]
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(7, 0.7 * len(names) + 2), 4.5))
    ax.bar(x - 0.2, [max(sim.synops[k], 0) for k in names], 0.4, label="SynOps (SNN)")
    ax.bar(x + 0.2, [sim.macs.get(k, 0) for k in names], 0.4, label="MACs (dense ANN)")
    ax.set_xticks(x, names)
    ax.set_yscale("symlog")
    ax.set_ylabel("operations")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
    e = energy(sim.synops["total"], sim.macs["total"], e_ac_pj, e_mac_pj)
    fig.text(0.5, 0.01, f"energy estimate (synaptic ops vs MACs only, {e_ac_pj} pJ/AC, {e_mac_pj} pJ/MAC): "
             f"SNN {e['snn_j'] * 1e6:.3g} uJ, dense {e['ann_j'] * 1e6:.3g} uJ", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path)
    plt.close(fig)
