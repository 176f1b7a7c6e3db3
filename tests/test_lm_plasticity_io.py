"""Learning in converted LMs, the files (issue 11): bad plasticity files are one line naming the
file and the field (exit 2); checkpoints resume identically and refuse other models; learned
model folders are read back by convert; the command line's learning options."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_lm_helpers import assert_lm_agree, random_tiny_gpt, scaled, token_ids
from test_lm_plasticity import EVERYTHING, VOCAB, tiny
from spikelm.errors import CheckpointMismatchError, ConfigError, FileFormatError
from spikelm.lm import convert
from spikelm.lm.learn.config import Plasticity, load
from spikelm.lm.learn.session import Learning

ROOT = Path(__file__).resolve().parent.parent
GOOD = """
[projections."h*.fc".plasticity]
rule = "braingpt_stdp"
eta_w = 0.01
a_plus = 2.0
tau_plus = 4.0

[populations."h0.q"]
neuron = "eiif_exact"
theta_base = 0.5

[populations."h0.q".plasticity]
rule = "braingpt_homeostasis"
eta_theta = 0.01

[populations."h1.v".plasticity]
rule = "target_spikes"
target = 2.0
"""

# (file text, what the one-line message must name)
BAD = [
    ('[projections."h0.fc".plasticity]\nrule = "hebb"\n', "projections.h0.fc.plasticity.rule: unknown projection rule 'hebb'"),
    ('[projections."h0.fc".plasticity]\nrule = "homeostasis"\n', "projections.h0.fc.plasticity.rule"),
    ('[populations."h0.fc".plasticity]\nrule = "homeostasis"\n', "populations.h0.fc.plasticity.rule: unknown population rule 'homeostasis'"),
    ('[projections."h0.fc".plasticity]\nrule = "stdp"\nspeed = 2\n', "projections.h0.fc.plasticity.speed: unknown field"),
    ('[projections."h0.fc".plasticity]\nrule = "braingpt_stdp"\neta_w = "fast"\n', "plasticity.eta_w: must be a number, got 'fast'"),
    ('[projections."h0.fc".plasticity]\nrule = "braingpt_stdp"\neta_w = nan\n', "plasticity.eta_w: must be a number, got NaN"),
    ('[projections."h0.fc".plasticity]\nrule = "stdp"\ntau_plus = -1.0\n', "plasticity.tau_plus: must be > 0"),
    ('[projections."h0.fc".plasticity]\nrule = "stdp"\npairing = 3\n', "plasticity.pairing: must be one of all, nearest"),
    ('[projections."h0.fc".plasticity]\nrule = "stdp"\nenabled = "yes"\n', "plasticity.enabled: must be true or false"),
    ('[projections."h0.fc".plasticity]\nrule = "stdp"\nmode = "izhikevich2006"\n', "plasticity.mode: 'izhikevich2006'"),
    ('[projections."h0.fc".plasticity]\nrule = "stdp"\nw_min = 0.0\n', "plasticity.w_min: 0.0 is above the smallest weight"),
    ('[projections."h9.fc".plasticity]\nrule = "stdp"\n', "projections.h9.fc: no synaptic target of this model is 'h9.fc'"),
    ('[projections."head".plasticity]\nrule = "stdp"\n', "the readout, which does not spike"),
    ('[projections."h0.fc"]\nrule = "stdp"\n', "projections.h0.fc.rule: unknown field"),
    ('[populations."h9.q"]\nneuron = "eiif_exact"\n', "populations.h9.q: no spiking population of this model is 'h9.q'"),
    ('[populations."h0.q"]\nneuron = "lif"\n', "populations.h0.q.neuron: 'lif'; allowed: signed_if, eiif_exact"),
    # the engine's EI-IF (eq. 1 as printed) is another neuron than the LM's: named, not taken for it
    ('[populations."h0.q"]\nneuron = "eiif"\n', "populations.h0.q.neuron: 'eiif' is the engine's EI-IF"),
    ('[populations."h0.q"]\nneuron = "eiif_exact"\nr = 1.5\n', "populations.h0.q.r: must be a finite number in [0, 1]"),
    ('[populations."h0.q"]\nneuron = "eiif_exact"\nalpha = nan\n', "populations.h0.q.alpha: must be a finite number"),
    ('[populations."h0.q"]\nneuron = "eiif_exact"\nunit = 2\n', "populations.h0.q.unit: not a parameter of a eiif_exact neuron"),
    ('[populations."h0.q"]\nunit = 0\n', "populations.h0.q.unit: must be an integer from 1"),
    ('[populations."h0.q"]\nspeed = 0\n', "populations.h0.q.speed: unknown field"),
    ('[populations."h0.q".plasticity]\nrule = "braingpt_homeostasis"\n', "cannot act on h0.q, a signed_if population; it applies to eiif_exact"),
    ('[populations."h0.q"]\nneuron = "eiif_exact"\n[populations."h0.q".plasticity]\nrule = "target_spikes"\n',
     "rule 'target_spikes' cannot act on h0.q, a eiif_exact population"),
    ('[populations."h0.q".plasticity]\nrule = "target_spikes"\ntarget = 0.0\n', "plasticity.target: must be > 0"),
    ('[populations."h0.q".plasticity]\nrule = "target_spikes"\ntheta_min = 0.5\n', "plasticity.theta_min: must be >= 1"),
    ('[populations."head"]\nneuron = "eiif_exact"\n', "population 'head' does not spike"),
    ('[layers]\nx = 1\n', ": layers: unknown section; allowed: projections, populations"),
    ('[projections]\n"h0.fc" = 3\n', "projections.h0.fc: must be a table"),
    ('projections = [1, 2\n', "not valid TOML"),
]


@pytest.fixture(scope="module")
def demo_like():
    return tiny(3)


def _attach(snn, text, tmp_path):
    f = tmp_path / "rules.toml"
    f.write_text(text)
    Learning(snn, load(f))
    return f


@pytest.mark.parametrize("text,needle", BAD, ids=[b[1][:40] for b in BAD])
def test_bad_plasticity_files_are_one_line_naming_file_and_field(text, needle, tmp_path, demo_like):
    with pytest.raises((ConfigError, FileFormatError)) as e:
        _attach(demo_like, text, tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "rules.toml") in msg and needle in msg, msg


@settings(max_examples=scaled(40))
@given(field=st.sampled_from(["eta_w", "a_plus", "a_minus", "tau_plus", "tau_minus", "row_sum"]),
       value=st.one_of(st.text(max_size=5), st.booleans(), st.just(float("nan")),
                       st.lists(st.integers(), max_size=2), st.just(float("-inf")), st.just(float("inf"))))
def test_generated_bad_values_are_refused_naming_the_field(field, value, demo_like):
    """Text, booleans, lists, NaN and infinities are wrong for every numeric field of the rule."""
    table = {"projections": {"h0.fc": {"plasticity": {"rule": "braingpt_stdp", field: value}}}}
    with pytest.raises(ConfigError, match=rf"^f\.toml: projections\.h0\.fc\.plasticity\.{field}: "):
        Learning(demo_like, Plasticity.from_dict(table, "f.toml"))


def test_a_good_file_round_trips_and_attaches(tmp_path):
    f = tmp_path / "rules.toml"
    f.write_text(GOOD)
    pl = load(f)
    assert Plasticity.from_dict(pl.to_dict(), "again").to_dict() == pl.to_dict()
    model = random_tiny_gpt(1, vocab=VOCAB, ctx=8, width=16, layers=2, heads=2)
    snn = convert(model, calibration=token_ids(0, 30, VOCAB), bits=6)
    run = Learning(snn, pl)
    g = run.graph
    assert [g.pops[g.projections[k].post].name for k, _, _ in run.state.attached.projections] == ["h0.fc", "h1.fc"]
    assert g.pops[g.index["h0.q"]].neuron == "eiif_exact" and snn.graph.pops[snn.graph.index["h0.q"]].neuron == "signed_if"


def _cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "spikelm.cli", "lm", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=600)


def test_cli_bad_plasticity_file_exits_2_with_one_line(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('[projections."h0.fc".plasticity]\nrule = "braingpt_stdp"\neta_w = nan\n')
    for cmd in (["generate", "--prompt", "Return", "--tokens", "2"], ["evaluate", "--snn-tokens", "8"],
                ["report", "--out", str(tmp_path / "r.png"), "--length", "4"]):
        r = _cli(*cmd, "--plasticity", str(f))
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
        assert f"{f}: projections.h0.fc.plasticity.eta_w: must be a number, got NaN" in r.stderr
    assert not (tmp_path / "r.png").exists()
    r = _cli("generate", "--prompt", "x", "--tokens", "2", "--plasticity", str(tmp_path / "none.toml"))
    assert r.returncode == 2 and "none.toml: no such file" in r.stderr


# ---------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("backends", [("numba", "numba"), ("numpy", "numba"), ("numba", "numpy")])
def test_checkpoint_and_resume_with_learning_on_continue_identically(backends, tmp_path):
    snn = tiny(6)
    ids = token_ids(6, 9, VOCAB)
    straight = Learning(snn, EVERYTHING, "numba")
    whole = straight.feed(ids, record=True)
    first = Learning(snn, EVERYTHING, backends[0])
    first.feed(ids[:4])
    first.save_checkpoint(tmp_path / "ck.h5")
    assert not (tmp_path / "ck.h5.partial").exists()
    again = Learning.resume(snn, tmp_path / "ck.h5", backends[1])
    rest = again.feed(ids[4:])
    assert np.array_equal(rest.logits, whole.logits[4:])
    assert rest.steps.tolist() == whole.steps[4:].tolist()
    for name, c in whole.counts.items():
        assert np.array_equal(rest.counts[name], c), name
    for key, v in straight.state.state_dict().items():
        assert np.array_equal(again.state.state_dict()[key], v), key
    assert np.array_equal(rest.drift.max_dlogit, whole.drift.max_dlogit)
    assert rest.synops == whole.synops and rest.spikes == whole.spikes


def test_generation_resumed_from_a_checkpoint_gives_the_uninterrupted_tokens(tmp_path):
    snn = tiny(9)
    prompt = token_ids(9, 3, VOCAB)
    full = Learning(snn, EVERYTHING).generate(prompt, 6)
    part = Learning(snn, EVERYTHING)
    part.generate(prompt, 3)
    part.save_checkpoint(tmp_path / "g.h5")
    more = Learning.resume(snn, tmp_path / "g.h5").continue_generation([], 3)
    assert more.new_tokens.tolist() == full.new_tokens[3:].tolist()
    assert np.array_equal(more.simulation.logits, full.simulation.logits[-3:])


def test_checkpoints_refuse_other_models_rules_and_files(tmp_path):
    snn = tiny(6)
    run = Learning(snn, EVERYTHING)
    run.feed(token_ids(1, 3, VOCAB))
    ck = tmp_path / "ck.h5"
    run.save_checkpoint(ck)
    with pytest.raises(CheckpointMismatchError, match="checkpoint of another model: codings"):
        Learning.resume(snn.with_coding("unit"), ck)
    with pytest.raises(CheckpointMismatchError, match="checkpoint of another model: bits"):
        Learning.resume(tiny(6, bits=5), ck)
    with pytest.raises(CheckpointMismatchError, match="another model: the integer weights"):
        Learning.resume(tiny(7), ck)
    other = {"projections": {"h0.fc": {"plasticity": {"rule": "stdp"}}}}
    with pytest.raises(CheckpointMismatchError, match="other plasticity rules"):
        Learning.resume(snn, ck, plasticity=other)
    Learning.resume(snn, ck, plasticity=EVERYTHING)  # the same rules are fine
    (tmp_path / "x.h5").write_text("not hdf5")
    with pytest.raises(FileFormatError, match="not an HDF5 file"):
        Learning.resume(snn, tmp_path / "x.h5")
    with h5py.File(tmp_path / "y.h5", "w") as f:
        f.create_group("other")
    with pytest.raises(FileFormatError, match="not a spikelm LM checkpoint"):
        Learning.resume(snn, tmp_path / "y.h5")
    with h5py.File(ck, "a") as f:
        del f["lm_checkpoint/learned/wm"]
    with pytest.raises(CheckpointMismatchError, match="learned state 'wm' is missing"):
        Learning.resume(snn, ck)


# a damaged summary (not text, not an object, nested past the recursion limit) ended in a
# traceback where the model differs; it is read as no summary
DAMAGED_SUMMARIES = [5, "[1]", "[" * 100_000]


@pytest.mark.parametrize("bad", DAMAGED_SUMMARIES, ids=["int", "list", "deep"])
def test_a_checkpoint_with_a_damaged_summary_is_still_one_mismatch_line(bad, tmp_path):
    snn = tiny(6)
    run = Learning(snn, EVERYTHING)
    run.feed(token_ids(1, 3, VOCAB))
    ck = tmp_path / "ck.h5"
    run.save_checkpoint(ck)
    with h5py.File(ck, "a") as f:
        f["lm_checkpoint"].attrs["summary"] = bad
    with pytest.raises(CheckpointMismatchError, match="ck.h5: checkpoint of another model: bits None there"):
        Learning.resume(snn.with_coding("unit"), ck)


# ---------------------------------------------------------------- learned model folders


def test_a_learned_model_folder_is_read_back_by_convert(tmp_path):
    model = random_tiny_gpt(12, vocab=VOCAB, ctx=10, width=16, layers=1, heads=2)
    calib = token_ids(13, 40, VOCAB)
    snn = convert(model, calibration=calib, bits=6)
    run = Learning(snn, EVERYTHING)
    run.feed(token_ids(14, 8, VOCAB))
    folder = run.save_model(tmp_path / "learned")
    back = convert(folder, calibration=calib, bits=6)
    g, st_ = back.graph, run.state
    for k, _, _ in st_.attached.projections:
        assert np.array_equal(g.projections[k].weights, st_.weights(k))
        assert not np.array_equal(g.projections[k].weights, snn.graph.projections[k].weights)
    for name in ("h0.k", "h0.att", "h0.v", "h0.res1"):
        p = g.index[name]
        mine = run.graph.pops[p]
        assert g.pops[p].neuron == mine.neuron
        seg = st_.layout.seg(p)
        if mine.neuron == "eiif_exact":
            assert all(np.array_equal(a, st_.a[k][seg]) for a, k in zip(g.pops[p].eiif, ("theta_base", "alpha", "r")))
        else:
            unit = g.pops[p].unit if g.pops[p].unit is not None else np.ones(g.pops[p].size, np.int64)
            assert np.array_equal(unit, st_.a["unit"][seg])
    # the loaded model runs as the learned one does with its rules switched off
    ids = token_ids(15, 6, VOCAB)
    run.set_enabled(False)
    run.new_sequence()
    assert_lm_agree(run.feed(ids), back.simulate(ids))
    with pytest.raises(ConfigError, match="learned.h5: learned on another conversion of this model \\(bits"):
        convert(folder, calibration=calib, bits=5)
    for bad in DAMAGED_SUMMARIES:
        with h5py.File(Path(folder) / "learned.h5", "a") as f:
            f.attrs["summary"] = bad
        with pytest.raises(ConfigError, match="learned.h5: learned on another conversion of this model \\(bits None"):
            convert(folder, calibration=calib, bits=5)
    with pytest.raises(ConfigError, match="not an empty folder"):
        run.save_model(folder)


# ---------------------------------------------------------------- the command line


def test_cli_generate_checkpoint_resume_and_save_model(tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text('[projections."h*.fc".plasticity]\nrule = "braingpt_stdp"\neta_w = 0.01\ntau_plus = 4.0\n'
                     '[populations."h0.ln1".plasticity]\nrule = "target_spikes"\ntarget = 1.0\n')
    whole = _cli("generate", "--prompt", "Return the ", "--tokens", "6", "--plasticity", str(rules))
    assert whole.returncode == 0, whole.stderr
    assert "drift from the exact reference over 16 tokens: top-1 agreement" in whole.stdout
    half = _cli("generate", "--prompt", "Return the ", "--tokens", "3", "--plasticity", str(rules),
                "--checkpoint", str(tmp_path / "ck.h5"), "--save-model", str(tmp_path / "m"))
    assert half.returncode == 0, half.stderr
    rest = _cli("generate", "--resume", str(tmp_path / "ck.h5"), "--tokens", "3")
    assert rest.returncode == 0, rest.stderr
    said = lambda r: next(x for x in r.stdout.splitlines() if x.startswith("generated:"))
    assert said(whole).replace("|", "") == said(rest).replace("|", "")
    assert (tmp_path / "m" / "learned.h5").is_file() and (tmp_path / "m" / "tokenizer.json").is_file()
    learned = _cli("generate", "--model", str(tmp_path / "m"), "--prompt", "Return", "--tokens", "2")
    assert learned.returncode == 0, learned.stderr
    bad = _cli("generate", "--resume", str(tmp_path / "ck.h5"), "--tokens", "2", "--coding", "unit")
    assert bad.returncode == 2 and "checkpoint of another model: codings" in bad.stderr


def test_cli_report_and_evaluate_with_plasticity(tmp_path):
    rules = tmp_path / "rules.toml"
    rules.write_text('[projections."h0.q".plasticity]\nrule = "stdp"\na_plus = 0.5\na_minus = 0.5\n')
    r = _cli("report", "--plasticity", str(rules), "--out", str(tmp_path / "d.png"), "--length", "8",
             "--json", str(tmp_path / "d.json"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "d.png").stat().st_size > 10_000 and "drift from the exact reference over 8 tokens" in r.stdout
    import json

    d = json.loads((tmp_path / "d.json").read_text())
    assert len(d["per_token"]["steps"]) == 8 and "top1_agreement" in d["summary"]
    e = _cli("evaluate", "--plasticity", str(rules), "--snn-tokens", "20", "--no-progress")
    assert e.returncode == 0, e.stderr
    assert "perplexity" in e.stdout and "(exact" in e.stdout
    e2 = _cli("evaluate", "--plasticity", str(rules), "--docs", str(tmp_path))
    assert e2.returncode == 2 and "--docs with --plasticity" in e2.stderr
