"""The data-movement energy estimate (:mod:`spikelm.lm.energy`): widths that hold every weight and
accumulator, the estimate re-derived here from a run's counts, its monotonic properties, and its
place in ``spikelm lm report`` (printed, labelled, in the JSON, the keys documented)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_lm_cli import folder, parse  # noqa: F401  (the module's model folder fixture)
from test_lm_exact import independent_synops
from test_lm_helpers import random_tiny_gpt
from spikelm.errors import ConfigError
from spikelm.lm import convert
from spikelm.lm.energy import Widths, accumulators, data_movement, sim_data_movement

DOCS = Path(__file__).resolve().parents[1] / "docs" / "lm.md"
#: Horowitz (ISSCC 2014, 45 nm), typed here from the paper, not read from the module
SRAM_PJ_BIT, DRAM_PJ_BIT = 10 / 64, 1300 / 64
ADD8, ADD32, MUL8, FP_ADD, FP_MUL = 0.03, 0.1, 0.2, 0.9, 3.7


@pytest.fixture(scope="module")
def run():
    model = random_tiny_gpt(3, vocab=40, ctx=12, width=16, layers=2, heads=2)
    rng = np.random.default_rng(0)
    snn = convert(model, calibration=rng.integers(0, 40, 64), bits=6)
    ids = rng.integers(0, 40, 7)
    return snn, ids, snn.reference(ids), snn.simulate(ids)


def test_widths_hold_every_weight_and_every_accumulator_the_run_reaches(run):
    snn, ids, ref, _ = run
    g = snn.graph
    w = Widths.from_graph(g)
    assert all(np.abs(pr.weights.astype(np.int64)).max() < 2 ** (w.weight_bits - 1) for pr in g.projections)
    acc = {}
    for pr in g.projections:  # the integer sums of the QANN, from its codes
        x = ref.codes[g.pops[pr.pre].name].astype(np.int64) @ pr.weights.astype(np.int64)
        acc[pr.post] = acc.get(pr.post, 0) + x
    for x in [*acc.values(), ref.head_acc]:
        assert np.abs(x).max() < 2 ** (w.membrane_bits - 1)
    # as wide as the widest sum that can occur: A.V at full context, 12 probabilities of 63 times values of 31
    assert w.membrane_bits == max(1 + (12 * 63 * 31).bit_length(),
                                  *(1 + int(np.abs(pr.weights.astype(np.int64)).sum(0).max() * 31).bit_length()
                                    for pr in g.projections))
    assert w.activation_bits == 6  # every projection's input is a 6-bit signed code (-31..31)


def test_estimate_equals_a_derivation_from_the_runs_counts(run):
    """SynOps from the codes in closed form, spikes and MACs from the shapes, memory traffic in
    bits per operation: the joules the report prints."""
    snn, ids, ref, sim = run
    g = snn.graph
    synops, _ = independent_synops(snn, ref.codes, len(ids), start=0)
    assert synops == sim.synops["total"]
    d, V, L = 16, 40, len(ids)
    macs = L * 2 * (4 * d * d + 2 * d * 4 * d) + sum(2 * (n + 1) * d for n in range(L)) * 2 + L * d * V
    assert macs == sim.macs["total"]
    n_acc = L * (2 * (3 * d + d + d + 4 * d + d) + V)  # q k v ctx proj fc fc2 per layer, the head
    assert n_acc == accumulators(g, L)
    w = Widths.from_graph(g)
    m, a, wb = w.membrane_bits, w.activation_bits, w.weight_bits
    add = lambda b: ADD8 + (b - 8) * (ADD32 - ADD8) / 24  # linear through 8 and 32 bits
    bits_snn = sim.synops["total"] * (wb + 2 * m) + sim.spikes["total"] * (2 * m + 64) + n_acc * m
    snn_pj = bits_snn * SRAM_PJ_BIT + (sim.synops["total"] + sim.spikes["total"]) * add(m)
    qann_pj = (macs * (wb + a) + n_acc * m) * SRAM_PJ_BIT + macs * (MUL8 * a * wb / 64 + add(m))
    float_pj = (macs * 64 + n_acc * 32) * SRAM_PJ_BIT + macs * (FP_ADD + FP_MUL)
    e = sim_data_movement(sim, g)
    assert e["snn_j"] == pytest.approx(snn_pj * 1e-12, rel=1e-12)
    assert e["qann_j"] == pytest.approx(qann_pj * 1e-12, rel=1e-12)
    assert e["float_j"] == pytest.approx(float_pj * 1e-12, rel=1e-12)
    dram = sim_data_movement(sim, g, "dram")
    extra = (sim.synops["total"] * wb) * (DRAM_PJ_BIT - SRAM_PJ_BIT)
    assert dram["snn_j"] == pytest.approx((snn_pj + extra) * 1e-12, rel=1e-12)


COUNTS = st.integers(0, 10**12)
WIDTHS = st.builds(Widths, st.integers(2, 16), st.floats(2, 16), st.integers(8, 64))


@settings(deadline=None, max_examples=200, derandomize=True)
@given(COUNTS, COUNTS, COUNTS, st.integers(1, 10**12), st.integers(0, 10**9), WIDTHS, st.sampled_from(["sram", "dram"]))
def test_more_work_never_costs_less_and_no_spike_costs_the_fixed_writes(s, extra, spikes, macs, n_acc, w, where):
    e = data_movement(s, spikes, macs, n_acc, w, where)
    more_synops = data_movement(s + extra, spikes, macs, n_acc, w, where)
    more_spikes = data_movement(s, spikes + extra, macs, n_acc, w, where)
    assert more_synops["snn_j"] >= e["snn_j"] and more_spikes["snn_j"] >= e["snn_j"]
    assert more_synops["qann_j"] == e["qann_j"] and more_synops["float_j"] == e["float_j"]  # the run's work only
    assert data_movement(s, spikes, macs, n_acc, w, "dram")["snn_j"] >= data_movement(s, spikes, macs, n_acc, w)["snn_j"]
    idle = data_movement(0, 0, macs, n_acc, w, where)
    assert idle["snn_j"] == pytest.approx(n_acc * w.membrane_bits * SRAM_PJ_BIT * 1e-12) == idle["snn_fixed_j"]
    assert idle["break_even_synops_per_mac"] is None


@settings(deadline=None, max_examples=100, derandomize=True)
@given(st.integers(1, 10**10), st.integers(1, 10**10), st.integers(1, 10**10), st.integers(0, 10**8), WIDTHS)
def test_at_the_break_even_synops_the_snn_costs_what_its_qann_does(s, spikes, macs, n_acc, w):
    e = data_movement(s, spikes, macs, n_acc, w)
    k = e["break_even_synops_per_mac"] * macs / s  # scale SynOps and spikes together
    at = data_movement(s * k, spikes * k, macs, n_acc, w)
    assert at["snn_j"] == pytest.approx(at["qann_j"], rel=1e-9)


@pytest.mark.parametrize("call, match", [
    (lambda w: data_movement(1, 1, 1, 1, w, "flash"), "weights_in='flash'; allowed: sram, dram"),
    (lambda w: data_movement(-1, 1, 1, 1, w), "synops=-1; allowed: a count >= 0"),
    (lambda w: Widths(8, 8, 0), "membrane_bits=0; allowed: a finite number of bits > 0"),
])
def test_bad_inputs_are_one_line_errors(call, match):
    with pytest.raises(ConfigError, match=match) as info:
        call(Widths(8, 8, 24))
    assert "\n" not in str(info.value)


def test_report_prints_both_estimates_labelled_and_documents_its_json_keys(folder, tmp_path, capsys):  # noqa: F811
    png, js = tmp_path / "synops.png", tmp_path / "counts.json"
    args = parse(["lm", "report", "--model", str(folder), "--out", str(png), "--length", "6", "--codings",
                  "signed_digit", "--weights-in", "dram", "--json", str(js)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"energy estimate \(synaptic ops vs dense MACs only; 0.9 pJ/AC, 4.6 pJ/MAC\): SNN [\d.]+ uJ", out)
    line = re.search(r"energy estimate with data movement \(arXiv 2409.08290's accounting, Horowitz 45 nm "
                     r"energies\): SNN ([\d.]+) uJ, QANN ([\d.]+) uJ, dense float ([\d.]+) uJ", out)
    assert line and "assumes weights in DRAM, 8-bit weights" in out and "DM vs QANN" in out
    data = json.loads(js.read_text())["codings"]["signed_digit"]
    e = data["data_movement_estimate"]
    assert e["weights_in"] == "dram" and float(line.group(1)) == pytest.approx(e["snn_j"] * 1e6, abs=1e-3)
    assert data["summary"]["data_movement_vs_qann"] == pytest.approx(e["snn_j"] / e["qann_j"])
    documented = DOCS.read_text()
    keys = [*e, *(k for k in data["summary"] if k.startswith("data_movement"))]
    missing = [k for k in keys if f"`{k}`" not in documented]
    assert not missing, f"docs/lm.md does not name these JSON keys: {missing}"


@pytest.mark.parametrize("rows", [1, 3, 5])
def test_widths_read_in_blocks_of_rows_equal_widths_read_whole(run, rows, monkeypatch):
    """The column sums of |W| are taken a few rows at a time (no int64 copy of a whole readout):
    any block gives the widths of one pass."""
    from spikelm.lm import energy

    g = run[0].graph
    whole = energy.Widths.from_graph(g)
    assert max(pr.weights.shape[0] for pr in g.projections) > rows  # (more than one block)
    monkeypatch.setattr(energy, "ROWS_AT_ONCE", rows)
    assert energy.Widths.from_graph(g) == whole
