"""A data-movement energy estimate: the spiking run against its quantized ANN and the float model.

The operation count of :mod:`spikelm.lm.report` (SynOps x 0.9 pJ against MACs x 4.6 pJ)
prices the arithmetic alone. Memory accesses cost more than the arithmetic they feed, and an
event-driven network moves different data from a dense one: this module prices both, in the
accounting of Yan, Bai, Tang and Wong, *Reconsidering the energy efficiency of spiking neural
networks* (arXiv 2409.08290), which compares an SNN with the quantized ANN (QANN) of the same
representational capacity and counts computation and data movement on both sides. The per-access
energies are the 45 nm figures of Horowitz (ISSCC 2014), not the paper's own hardware parameters
(which this estimate does not reproduce). It is an estimate, not a measurement.

Per unit of work, with widths w (weights), a (the QANN's activation codes) and m (membrane
potentials = the QANN's integer accumulators, the same sums), and e_W, e_S the energy per bit
of the weight memory and of the state memory (SRAM):

- **SynOp** (a spike adds a weight into a target's membrane): read the weight (w e_W), read and
  write the membrane potential (2 m e_S), one m-bit addition. The membrane cannot stay in a
  register: spikes reach a neuron at scattered times.
- **spike** (the firing neuron): read, subtract from and write its membrane potential
  (2 m e_S + one m-bit addition), write and read one address event of ``event_bits`` (2 x e_S each bit).
- **fixed**, per accumulator and position: the SNN initialises each membrane (m e_S); the QANN
  writes each accumulated output once (m e_S). This is all a run without spikes costs.
- **dense MAC of the QANN**: read the weight (w e_W) and the input activation (a e_S), one a x w
  integer multiplication, one m-bit addition into a register; plus the fixed output write.
- **dense MAC of the float model**: read a 32-bit weight and a 32-bit activation, one FP32
  multiplication and addition (3.7 + 0.9 pJ); its output write is 32 bits.

Arithmetic (Horowitz, 45 nm): an integer addition of b bits costs 0.03 pJ at 8 bits and 0.1 pJ
at 32, linear in b between and beyond; an a x w multiplication 0.2 pJ x a w / 64 (0.2 pJ at 8 x 8,
3.2 pJ at 32 x 32 against the published 3.1). Memory: an 8 KB SRAM reads 64 bits for about
10 pJ (0.156 pJ/bit; writes priced the same); DRAM 1.3-2.6 nJ per 64 bits (the low end,
20.3 pJ/bit, is used). State (membranes, activations, events) lives in SRAM; the weights in SRAM
(on-chip, the neuromorphic case) or DRAM (``weights_in``). Operators (norms, softmax, SiLU,
residual sums), control, the clock and leakage are left out on every side: they are the same in
the SNN and its QANN.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from spikelm.errors import ConfigError

#: where the weights live -> energy per bit read, pJ (Horowitz 2014, 45 nm)
MEMORY_PJ_PER_BIT = {"sram": 10.0 / 64, "dram": 1300.0 / 64}
#: the state memory (membranes, activation codes, spike events): an 8 KB SRAM, pJ per bit
STATE_PJ_PER_BIT = MEMORY_PJ_PER_BIT["sram"]
FP32_MAC_PJ = 3.7 + 0.9
FLOAT_BITS = 32
EVENT_BITS = 32


def add_pj(bits: float) -> float:
    """Energy of one integer addition of ``bits`` bits, pJ (0.03 at 8, 0.1 at 32, linear)."""
    return 0.03 + (bits - 8) * (0.1 - 0.03) / 24


def mul_pj(a_bits: float, w_bits: float) -> float:
    """Energy of one integer multiplication of an ``a_bits`` by a ``w_bits`` operand, pJ."""
    return 0.2 * a_bits * w_bits / 64


def _signed_bits(magnitude: int) -> int:
    return int(magnitude).bit_length() + 1


def _code_bits(pop) -> int:
    """Bits of one of the population's codes (a sign bit where its range has negatives)."""
    return int(max(abs(pop.qmin), abs(pop.qmax))).bit_length() + (1 if pop.qmin < 0 else 0)


#: weight rows widened to int64 at a time when a graph's widths are read
ROWS_AT_ONCE = 64


@dataclass(frozen=True)
class Widths:
    """Bit widths the estimate prices, read from a converted graph.

    weight_bits: bits stored per weight (the conversion's ``weight_bits`` where it records one,
    else the widest signed integer weight; a row's shared exponent is not counted);
    activation_bits: the QANN's input code width, averaged over the dense MACs of the projections;
    membrane_bits: the widest accumulator any projection or product can reach (sum of |weight| x
    the largest input code, a sign bit included), the width of a membrane potential and of the
    QANN's integer accumulator; event_bits: one spike's address event.
    """

    weight_bits: float
    activation_bits: float
    membrane_bits: int
    event_bits: int = EVENT_BITS

    def __post_init__(self):
        for name, value in asdict(self).items():
            if not (np.isfinite(value) and value > 0):
                raise ConfigError(f"energy widths: {name}={value!r}; allowed: a finite number of bits > 0")

    @classmethod
    def from_graph(cls, graph) -> "Widths":
        pops = graph.pops
        top = lambda p: max(abs(pops[p].qmin), abs(pops[p].qmax))
        stored = graph.meta.get("weight_bits")
        wsum = asum = n = 0.0
        bound = dict.fromkeys(range(len(pops)), 0)
        for pr in graph.projections:
            W = pr.weights
            macs = W.shape[0] * W.shape[1]
            wsum += macs * (stored or _signed_bits(max(-int(W.min(initial=0)), int(W.max(initial=0)))))
            asum += macs * _code_bits(pops[pr.pre])
            n += macs
            column = np.zeros(W.shape[1], np.int64)  # sum |w| per column, a block of rows at a time:
            for lo in range(0, W.shape[0], ROWS_AT_ONCE):  # no int64 copy of a whole readout (0.45 GB)
                column += np.abs(W[lo : lo + ROWS_AT_ONCE].astype(np.int64)).sum(axis=0)
            bound[pr.post] += int(column.max(initial=0)) * top(pr.pre)
        for ed in graph.edges:  # the largest sum a product accumulator holds at full context
            terms = {"scores": ed.head_dim, "mix": graph.n_positions, "mul": 1}[ed.kind]
            bound[ed.out] = max(bound[ed.out], terms * top(ed.a) * top(ed.b))
        if not n:
            raise ConfigError("energy estimate: the graph has no synaptic projections to price")
        return cls(wsum / n, asum / n, _signed_bits(max(bound.values())))


def accumulators(graph, n_tokens: int) -> int:
    """Accumulating neurons of ``n_tokens`` positions (synaptic, product and readout
    populations): the membranes the SNN initialises, the outputs the QANN writes."""
    from spikelm.lm.graph import ACCUMULATE

    return sum(p.size for p in graph.pops if p.op == ACCUMULATE) * int(n_tokens)


def data_movement(synops: int, spikes: int, macs: int, n_accumulators: int, widths: Widths,
                  weights_in: str = "sram") -> dict:
    """Estimated energy in joules of a spiking run, its QANN and the dense float model.

    Parameters
    ----------
    synops, spikes : int
        The run's SynOps and emitted spikes (+ and -).
    macs : int
        The dense model's multiply-accumulates for the same positions.
    n_accumulators : int
        Accumulating neurons over those positions (:func:`accumulators`).
    widths : Widths
        Bit widths (:meth:`Widths.from_graph`).
    weights_in : {"sram", "dram"}
        Where the weights are read from.

    Returns
    -------
    dict
        ``snn_j``, ``qann_j``, ``float_j`` (joules); ``snn_fixed_j`` (what the SNN costs with no
        spike); ``snn_vs_qann``, ``snn_vs_float`` (ratios); ``break_even_synops_per_mac`` (the
        SynOps per MAC at which the SNN would cost what its QANN does, spikes per SynOp as in this
        run); the per-operation energies in pJ (``pj_per_synop``, ``pj_per_spike``,
        ``pj_per_qann_mac``, ``pj_per_float_mac``, ``pj_per_accumulator``); ``accumulators``; the
        widths (``weight_bits``, ``activation_bits``, ``membrane_bits``, ``event_bits``) and ``weights_in``.
    """
    if weights_in not in MEMORY_PJ_PER_BIT:
        raise ConfigError(f"weights_in={weights_in!r}; allowed: {', '.join(MEMORY_PJ_PER_BIT)}")
    for name, value in (("synops", synops), ("spikes", spikes), ("macs", macs), ("accumulators", n_accumulators)):
        if value < 0:
            raise ConfigError(f"energy estimate: {name}={value}; allowed: a count >= 0")
    w, a, m, ev = widths.weight_bits, widths.activation_bits, widths.membrane_bits, widths.event_bits
    e_w, e_s = MEMORY_PJ_PER_BIT[weights_in], STATE_PJ_PER_BIT
    per_synop = w * e_w + 2 * m * e_s + add_pj(m)
    per_spike = 2 * m * e_s + add_pj(m) + 2 * ev * e_s
    per_acc = m * e_s
    per_qmac = w * e_w + a * e_s + mul_pj(a, w) + add_pj(m)
    per_fmac = FLOAT_BITS * e_w + FLOAT_BITS * e_s + FP32_MAC_PJ
    fixed = n_accumulators * per_acc
    snn = synops * per_synop + spikes * per_spike + fixed
    qann = macs * per_qmac + fixed
    dense = macs * per_fmac + n_accumulators * FLOAT_BITS * e_s
    variable = snn - fixed
    even = (qann - fixed) / variable * synops / macs if variable > 0 and macs else None
    return {"snn_j": snn * 1e-12, "qann_j": qann * 1e-12, "float_j": dense * 1e-12, "snn_fixed_j": fixed * 1e-12,
            "snn_vs_qann": snn / qann if qann else None, "snn_vs_float": snn / dense if dense else None,
            "break_even_synops_per_mac": even, "pj_per_synop": per_synop, "pj_per_spike": per_spike,
            "pj_per_qann_mac": per_qmac, "pj_per_float_mac": per_fmac, "pj_per_accumulator": per_acc,
            "accumulators": n_accumulators, **asdict(widths), "weights_in": weights_in}


def sim_data_movement(sim, graph, weights_in: str = "sram", widths: Widths | None = None) -> dict:
    """:func:`data_movement` of a :class:`~spikelm.lm.results.Simulation` of ``graph``."""
    widths = widths or Widths.from_graph(graph)
    return data_movement(sim.synops["total"], sim.spikes["total"], sim.macs["total"],
                         accumulators(graph, len(sim.steps)), widths, weights_in)


def describe(e: dict) -> str:
    """The estimate in three lines, labelled, with its assumptions."""
    ratio = lambda r: "-" if r is None else f"{r:.3f}"
    even = e["break_even_synops_per_mac"]
    return (f"energy estimate with data movement (arXiv 2409.08290's accounting, Horowitz 45 nm energies): "
            f"SNN {e['snn_j'] * 1e6:.3f} uJ, QANN {e['qann_j'] * 1e6:.3f} uJ, dense float {e['float_j'] * 1e6:.3f} uJ\n"
            f"  SNN/QANN {ratio(e['snn_vs_qann'])}, SNN/float {ratio(e['snn_vs_float'])}; the SNN would match its "
            f"QANN at {'-' if even is None else f'{even:.3f}'} SynOps per MAC\n"
            f"  assumes weights in {e['weights_in'].upper()}, {e['weight_bits']:.3g}-bit weights, "
            f"{e['activation_bits']:.3g}-bit QANN activations, {e['membrane_bits']}-bit membranes: "
            f"{e['pj_per_synop']:.2f} pJ per SynOp, {e['pj_per_spike']:.2f} per spike, "
            f"{e['pj_per_qann_mac']:.2f} per QANN MAC, {e['pj_per_float_mac']:.2f} per float MAC")
