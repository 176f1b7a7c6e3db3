"""Learning runs write spike files (issue 25): ``lm generate --plasticity ... --out`` writes the
layout of every run file plus the learned state per token, which ``spikelm info`` and libsonata
read; a kill -9 keeps every finished token on disk; the shipped rule files run."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from test_crash_safety import ENV, REPO, _assert_prefix, _start, _token_lines
from spikelm.io.sonata import read_metadata, read_spikes

pytest.importorskip("safetensors", reason="the demo model is read with safetensors (the lm extra)")

SCENARIOS = sorted((REPO / "scenarios" / "lm").glob("*.toml"))
READOUT = REPO / "scenarios" / "lm" / "readout_error.toml"
GENERATE = [sys.executable, "-m", "spikelm.cli", "lm", "generate", "--prompt", "Return the ", "--tokens", "30",
            "--plasticity", str(READOUT)]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "spikelm.cli", *args], capture_output=True, text=True, env=ENV,
                          cwd=REPO)


@pytest.fixture(scope="module")
def complete_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("learned") / "full.h5"
    proc = subprocess.run(GENERATE + ["--out", str(out)], capture_output=True, text=True, env=ENV, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return out


def test_a_learning_run_writes_a_spike_file_that_info_and_libsonata_read(complete_run):
    meta = read_metadata(complete_run)
    assert meta["complete"] is True
    learned = meta["learned_state"]
    n = len(meta["tokens"]) - 1  # the last generated token is not run
    assert len(learned["learn_ops"]) == n and learned["learn_ops"] == sorted(learned["learn_ops"])
    assert learned["readout_w_changed"][-1] > 0  # the head did learn
    assert json.loads(meta["plasticity"])["projections"]["*"]["plasticity"]["rule"] == "readout_error"
    info = _cli("info", str(complete_run))
    assert info.returncode == 0 and "complete" in info.stdout and "h0.q" in info.stdout
    libsonata = pytest.importorskip("libsonata", reason="libsonata reads the file (the sonata extra)")
    reader = libsonata.SpikeReader(str(complete_run))
    spikes = read_spikes(complete_run)
    for name, table in spikes.items():
        got = reader[name].get()
        assert len(got) == len(table), name


@pytest.mark.slow
def test_kill_9_during_a_learning_run_keeps_every_finished_token(complete_run, tmp_path):
    full = read_spikes(complete_run)
    out = tmp_path / "killed.h5"
    proc = _start(GENERATE + ["--out", str(out)])
    steps = _token_lines(proc, 12)
    time.sleep(0.02)
    proc.kill()
    proc.wait()
    partial = Path(str(out) + ".partial")
    assert partial.exists() and not out.exists()
    # learning is deterministic: the killed run's spikes are a prefix of the complete run's, and
    # every token it reported but the last (flushed after it is printed) is on disk
    _assert_prefix(read_spikes(partial), full, sum(steps[:-1]), "killed after 12 tokens")
    assert read_metadata(partial)["complete"] is False


def test_out_with_resume_is_refused_in_one_line(tmp_path):
    r = _cli("lm", "generate", "--resume", str(tmp_path / "ck.h5"), "--tokens", "2", "--out", str(tmp_path / "s.h5"))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "--out with --resume" in r.stderr


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_shipped_rule_files_run_on_the_demo(path):
    from spikelm.lm import load_demo
    from spikelm.lm.learn import Learning, load_plasticity

    snn, tok = load_demo()
    ids = tok.encode("Return the value of")
    run = Learning(snn, load_plasticity(path), "numba")
    before = run.state.state_dict()
    sim = run.feed(ids)
    assert np.isfinite(sim.logits).all() and sim.drift.summary()["tokens"] == len(ids)
    after = run.state.state_dict()
    learned = {"wm", "rwm", "rb", "theta_base", "alpha", "r", "uth"}  # what the rules change
    assert any(not np.array_equal(before[k], after[k]) for k in learned)  # every file's rules act
