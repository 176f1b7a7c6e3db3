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
  :mod:`spikelm.lm.energy` adds the data movement (weight and membrane reads per SynOp,
  weight and activation reads per MAC) and the quantized ANN as a third side.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import numpy as np

E_AC_PJ = 0.9
E_MAC_PJ = 4.6


def layer_names(graph) -> list[str]:
    """The layers of a graph's populations, in graph order (``emb``, ``h0``, ..., ``head``)."""
    return list(dict.fromkeys(p.layer for p in graph.pops))


def layer_ids(graph) -> tuple[list[str], np.ndarray]:
    """The layer names (as :func:`layer_names`) and each population's index among them."""
    names = layer_names(graph)
    at = {name: i for i, name in enumerate(names)}
    return names, np.array([at[p.layer] for p in graph.pops], dtype=np.int64)


def macs_per_layer(graph, n_tokens: int, start: int = 0) -> dict:
    """Dense MACs of decoding positions ``start .. start + n_tokens - 1`` with a KV cache: every
    projection's n_pre x n_post, every product edge's and operator's own count, per position."""
    from spikelm.lm import edges, ops
    from spikelm.lm.graph import ACCUMULATE

    out = dict.fromkeys(layer_names(graph), 0)
    pops = graph.pops
    for pr in graph.projections:
        out[pops[pr.post].layer] += pr.weights.shape[0] * pr.weights.shape[1] * n_tokens
    positions = range(start, start + n_tokens)
    for ed in graph.edges:
        out[pops[ed.out].layer] += sum(edges.macs(ed, n) for n in positions)
    for pop in pops:
        if pop.op != ACCUMULATE:
            out[pop.layer] += sum(ops.get(pop.op).macs(graph, pop, n) for n in positions)
    out["total"] = sum(out.values())
    return out


def _by_layer(layers, per_pop) -> dict:
    """Per-population integers summed per layer (exact int64: no float weights), with "total"."""
    names, ids = layers
    sums = np.zeros(len(names), np.int64)
    np.add.at(sums, ids, np.asarray(per_pop, dtype=np.int64))
    out = dict(zip(names, sums.tolist()))
    out["total"] = int(sums.sum())
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
        C, L = runner.counters, runner.layer_ids
        syn = np.array(C.synops_products, dtype=np.int64)  # product SynOps: the source's layer
        np.add.at(syn, runner.post_of, C.synops)  # row SynOps: the target's layer
        return cls(
            synops=_by_layer(L, syn),
            spikes=_by_layer(L, C.spikes_pos + C.spikes_neg),
            spikes_pos=_by_layer(L, C.spikes_pos),
            spikes_neg=_by_layer(L, C.spikes_neg),
            op_evals=_by_layer(L, C.op_evals),
            steps=runner.clock,
            shift_adds=_by_layer(L, C.shift_adds),
        )

    @classmethod
    def from_simulation(cls, sim) -> "Counts":
        return cls(sim.synops, sim.spikes, sim.spikes_pos, sim.spikes_neg, sim.op_evals, int(sim.steps.sum()),
                   sim.shift_adds)

    def minus(self, other: "Counts", steps: int) -> "Counts":
        sub = lambda a, b: {k: a[k] - b[k] for k in a}
        return Counts(sub(self.synops, other.synops), sub(self.spikes, other.spikes),
                      sub(self.spikes_pos, other.spikes_pos), sub(self.spikes_neg, other.spikes_neg),
                      sub(self.op_evals, other.op_evals), steps, sub(self.shift_adds, other.shift_adds))


def energy(synops: int, macs: int, e_ac_pj: float = E_AC_PJ, e_mac_pj: float = E_MAC_PJ,
           shift_adds: int = 0, e_shift_pj: float = 0.0) -> dict:
    """Estimated energy in joules of the synaptic operations and of the dense MACs.

    Every SynOp costs ``e_ac_pj``; a shifted addition (a spike value other than ±1) costs
    ``e_shift_pj`` on top. Operators, memory traffic and control are left out of both sides.
    """
    snn = synops * e_ac_pj + shift_adds * e_shift_pj
    return {"snn_j": snn * 1e-12, "ann_j": macs * e_mac_pj * 1e-12, "e_ac_pj": e_ac_pj, "e_mac_pj": e_mac_pj,
            "e_shift_pj": e_shift_pj}


def sim_energy(sim, e_ac_pj=E_AC_PJ, e_mac_pj=E_MAC_PJ, e_shift_pj=0.0) -> dict:
    return energy(sim.synops["total"], sim.macs["total"], e_ac_pj, e_mac_pj, sim.shift_adds["total"], e_shift_pj)


def _energy_line(e) -> str:
    shift = f", +{e['e_shift_pj']} pJ per shift-add" if e["e_shift_pj"] else ""
    return (f"energy estimate (synaptic ops vs dense MACs only; {e['e_ac_pj']} pJ/AC{shift}, "
            f"{e['e_mac_pj']} pJ/MAC): SNN {e['snn_j'] * 1e6:.3f} uJ, dense ANN {e['ann_j'] * 1e6:.3f} uJ")


def table(sim, e_ac_pj: float = E_AC_PJ, e_mac_pj: float = E_MAC_PJ, e_shift_pj: float = 0.0,
          legend: bool = False) -> str:
    """Per-layer table of a :class:`~spikelm.lm.convert.Simulation`, energy estimate at the end
    (and with ``legend``, what each column counts: :data:`TABLE_LEGEND`)."""
    rows = [f"{'layer':<7}{'SynOps':>14}{'shift-adds':>14}{'spikes +':>12}{'spikes -':>12}{'op evals':>11}"
            f"{'dense MACs':>14}{'SynOps/MAC':>11}"]
    for name in list(sim.synops):
        s, m = sim.synops[name], sim.macs.get(name, 0)
        ratio = f"{s / m:.3f}" if m else "-"
        rows.append(f"{name:<7}{s:>14,}{sim.shift_adds[name]:>14,}{sim.spikes_pos[name]:>12,}"
                    f"{sim.spikes_neg[name]:>12,}{sim.op_evals[name]:>11,}{m:>14,}{ratio:>11}")
    rows.append(_energy_line(sim_energy(sim, e_ac_pj, e_mac_pj, e_shift_pj)))
    if legend:
        rows.append(textwrap.fill(TABLE_LEGEND, 110))
    return "\n".join(rows)


#: What the columns of :func:`table` count (printed under it, and in docs/lm.md).
TABLE_LEGEND = ("SynOps: additions into accumulators caused by spikes, at the layer whose accumulators they add "
                "into (head: the readout's inputs); shift-adds: the SynOps of spikes worth other than +-1 "
                "(a shifted row), at the layer of the neurons that fired them; spikes +/-: spikes fired, by sign; "
                "op evals: output elements computed by operators (embedding, norms, softmax, activations, "
                "residual sums); dense MACs: the float model's multiply-accumulates for the same tokens")


class TokenTable:
    """The per-token lines of ``lm generate``: for each position run, the token run there
    (``input``), the token the model predicts from it (``next``: shown where it is generated,
    from the last prompt token on), steps to quiescence, spikes and SynOps.

    Parameters
    ----------
    decode : callable
        ids -> text (the tokenizer's).
    known : sequence of int
        The tokens given in order (the prompt); after them each position runs the token
        predicted at the position before.
    start : int
        The position of ``known[0]`` (after a constant prefix, or where a resumed run stands).
    pending : int, optional
        The token predicted before ``start`` (a resumed run without prompt runs it first).
    """

    WIDTH = 14

    def __init__(self, decode, known, start: int, pending=None):
        self.decode, self.known, self.start, self.pending = decode, [int(t) for t in known], int(start), pending

    def header(self) -> str:
        return (f"{'pos':>5}  {'input':<{self.WIDTH}}{'next':<{self.WIDTH}}{'steps':>7}{'spikes':>12}{'SynOps':>15}\n"
                f"       (input: the token run at this position; next: the token predicted from it, which the next "
                "position runs: the generated text)")

    def cell(self, token) -> str:
        text = "" if token is None else repr(self.decode([int(token)]))
        w = self.WIDTH - 2
        return (text if len(text) <= w else text[: w - 3] + "...").ljust(self.WIDTH)

    def line(self, n: int, logits, counts) -> str:
        """The line of position ``n`` (``logits``: its row; ``counts``: its :class:`Counts`)."""
        i = n - self.start
        token = self.known[i] if 0 <= i < len(self.known) else self.pending
        self.pending = int(np.argmax(logits))
        shown = self.pending if i >= len(self.known) - 1 else None
        return (f"{n:>5}  {self.cell(token)}{self.cell(shown)}{counts.steps:>7,}{counts.spikes['total']:>12,}"
                f"{counts.synops['total']:>15,}")


def activations(graph, n_tokens: int, start: int = 0) -> int:
    """Activation elements of positions ``start ..``: every spiking neuron of each position that
    holds a code there (an operator's: the elements it computes, e.g. attention probabilities:
    heads x (n + 1) at position n)."""
    from spikelm.lm import ops
    from spikelm.lm.graph import ACCUMULATE

    total = 0
    for p, pop in enumerate(graph.pops):
        if not pop.spiking:
            continue
        if pop.op == ACCUMULATE:
            total += pop.size * n_tokens
        else:
            op = ops.get(pop.op)
            total += sum(op.evaluations(graph, p, n) for n in range(start, start + n_tokens))
    return total


def synops_of_codes(graph, codes: dict, n_tokens: int, start: int = 0) -> int:
    """SynOps of running positions ``start ..`` from the reference's codes alone (no spikes run):
    each spiking neuron's spike count in its coding (closed form) times its fan-out, plus the
    product edges' (a Q spike reaches n + 1 keys at position n, or its window's). Equals the
    simulation's total."""
    from spikelm.lm.codings import coding_id, spike_count

    spikes = {p.name: spike_count(coding_id(p.coding), codes[p.name]) for p in graph.pops if p.spiking}
    total = sum(int(spikes[graph.pops[pr.pre].name].sum()) * pr.weights.shape[1] for pr in graph.projections)
    keys = np.arange(start + 1, start + n_tokens + 1)[:, None]
    for ed in graph.edges:
        a, b = spikes[graph.pops[ed.a].name], spikes[graph.pops[ed.b].name]
        if ed.kind == "scores":  # with a sliding window, only the window's keys
            total += int((a * (np.minimum(keys, ed.window) if ed.window else keys)).sum()) + int(b.sum()) * ed.group
        elif ed.kind == "mix":
            total += int(a.sum()) * ed.head_dim + int(b.sum()) * ed.group
        else:
            total += int(a.sum()) + int(b.sum())
    return total


def coding_summary(sim, graph, e_ac_pj=E_AC_PJ, e_mac_pj=E_MAC_PJ, e_shift_pj=0.0, weights_in="sram",
                   widths=None) -> dict:
    """Per-token figures of one run: SynOps/MACs, shift-adds, spikes per activation, steps, the
    operation-count energy against dense and the data-movement estimate
    (:func:`spikelm.lm.energy.sim_data_movement`) against the QANN and the float model (``widths``: :class:`~spikelm.lm.energy.Widths`, read from
    ``graph`` when not given)."""
    from spikelm.lm.energy import sim_data_movement

    L = len(sim.steps)
    e = sim_energy(sim, e_ac_pj, e_mac_pj, e_shift_pj)
    dm = sim_data_movement(sim, graph, weights_in, widths)
    return {
        "synops_per_token": sim.synops["total"] / L, "macs_per_token": sim.macs["total"] / L,
        "synops_over_macs": sim.synops["total"] / max(sim.macs["total"], 1),
        "shift_add_share": sim.shift_adds["total"] / max(sim.synops["total"], 1),
        "spikes_per_token": sim.spikes["total"] / L,
        "spikes_per_activation": sim.spikes["total"] / max(activations(graph, L), 1),
        "steps_per_token": float(sim.steps.mean()),
        "energy_snn_j": e["snn_j"], "energy_dense_j": e["ann_j"], "energy_ratio": e["snn_j"] / max(e["ann_j"], 1e-300),
        "data_movement_snn_j": dm["snn_j"], "data_movement_qann_j": dm["qann_j"], "data_movement_float_j": dm["float_j"],
        "data_movement_vs_qann": dm["snn_vs_qann"], "data_movement_vs_float": dm["snn_vs_float"],
    }


def _ratio(r) -> str:
    return "-" if r is None else f"{r:.3f}"


def compare_table(summaries: dict) -> str:
    """Codings side by side (``summaries``: coding -> :func:`coding_summary`; DM: the data-movement
    estimate of the SNN over its QANN's and over the float model's)."""
    rows = [f"{'coding':<14}{'SynOps/token':>15}{'SynOps/MACs':>12}{'shift-adds':>11}{'spikes/act':>11}"
            f"{'steps/token':>12}{'energy vs dense':>16}{'DM vs QANN':>11}{'DM vs float':>12}"]
    for c, s in summaries.items():
        rows.append(f"{c:<14}{s['synops_per_token']:>15,.0f}{s['synops_over_macs']:>12.3f}"
                    f"{s['shift_add_share']:>11.2f}{s['spikes_per_activation']:>11.3f}"
                    f"{s['steps_per_token']:>12.1f}{s['energy_ratio']:>16.3f}"
                    f"{_ratio(s['data_movement_vs_qann']):>11}{_ratio(s['data_movement_vs_float']):>12}")
    return "\n".join(rows)


def bar_chart(sims, path, title: str = "SynOps vs dense MACs per layer",
              e_ac_pj: float = E_AC_PJ, e_mac_pj: float = E_MAC_PJ, e_shift_pj: float = 0.0) -> None:
    """Save a chart of SynOps per layer for each coding against the dense MACs (log scale), and
    each coding's energy estimate against the dense model's. ``sims``: coding -> Simulation
    (or one Simulation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not isinstance(sims, dict):
        sims = {"SNN": sims}
    first = next(iter(sims.values()))
    names = [k for k in first.synops if k != "total"]
    x = np.arange(len(names))
    w = 0.8 / (len(sims) + 1)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(max(9, 0.8 * len(names) + 5), 4.8),
                                  gridspec_kw={"width_ratios": [max(3, len(names) // 2), 1]})
    for i, (coding, sim) in enumerate(sims.items()):
        ax.bar(x - 0.4 + (i + 0.5) * w, [max(sim.synops[k], 0) for k in names], w, label=f"SynOps, {coding}")
    ax.bar(x - 0.4 + (len(sims) + 0.5) * w, [first.macs.get(k, 0) for k in names], w, color="0.35",
           label="MACs (dense ANN)")
    ax.set_xticks(x, names, rotation=45 if len(names) > 12 else 0)
    ax.set_yscale("symlog")
    ax.set_ylabel("operations")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=min(4, len(sims) + 1), frameon=False, fontsize=8)
    energies = {c: sim_energy(s, e_ac_pj, e_mac_pj, e_shift_pj) for c, s in sims.items()}
    labels = list(energies) + ["dense"]
    values = [e["snn_j"] * 1e6 for e in energies.values()] + [next(iter(energies.values()))["ann_j"] * 1e6]
    ax2.bar(np.arange(len(labels)), values, color=[f"C{i}" for i in range(len(sims))] + ["0.35"])
    ax2.set_xticks(np.arange(len(labels)), labels, rotation=30, fontsize=8)
    ax2.set_ylabel("energy estimate (uJ)")
    shift = f" +{e_shift_pj} pJ/shift" if e_shift_pj else ""
    ax2.set_title(f"estimate: {e_ac_pj} pJ/AC{shift},\n{e_mac_pj} pJ/MAC (ops only)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
