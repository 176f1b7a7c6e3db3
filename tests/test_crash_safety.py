"""Crash safety of run files, with real processes and real signals (issue 12, "Done when" 3-6).

- kill -9 during ``spikelm lm generate --out``: the file on disk is readable and holds, for
  every population, exactly the spikes of a complete run up to at least the last token the
  process had printed (it loses nothing printed: the file is flushed before a token's line);
- kill -9 during a classic run: at most the chunk being simulated is lost;
- Ctrl-C during ``lm generate``, at random moments: exit 130 with a usable ``.partial``, never
  "Exception ignored" and a run that goes on;
- a reader opens the file while it is written (HDF5 SWMR);
- memory stays flat: a long run with ``--out`` peaks at the memory of a short one.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from spikelm.io.sonata import read_metadata, read_spikes, summary

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(REPO))
GENERATE = [sys.executable, "-m", "spikelm.cli", "lm", "generate", "--prompt", "Return the ", "--tokens", "60"]

pytest.importorskip("safetensors", reason="the demo model is read with safetensors (the lm extra)")


def _start(argv):
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=REPO)


def _token_lines(proc, count):
    """Read the per-token lines (pos, token, steps, ...) until ``count`` of them; return their steps."""
    steps = []
    for line in proc.stdout:
        fields = line.split()
        if fields and fields[0].isdigit():
            steps.append(int(fields[-3].replace(",", "")))
            if len(steps) == count:
                return steps
    raise AssertionError(f"the run ended after {len(steps)} tokens: {proc.stderr.read()[-2000:]}")


@pytest.fixture(scope="module")
def complete_run(tmp_path_factory):
    """The demo's 60 tokens, run to the end: what every killed run must be a prefix of."""
    out = tmp_path_factory.mktemp("complete") / "full.h5"
    proc = subprocess.run(GENERATE + ["--out", str(out)], capture_output=True, text=True, env=ENV, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return read_spikes(out)


def _assert_prefix(got, full, at_least_step, what):
    """Every population of ``got`` holds exactly the first spikes of ``full``, all before ``at_least_step``."""
    assert list(got) == list(full), what
    for name, table in got.items():
        n = len(table)
        ref = full[name]
        assert np.array_equal(table.node_ids, ref.node_ids[:n]), f"{what}: {name} is not a prefix"
        assert np.array_equal(table.timestamps, ref.timestamps[:n]), f"{what}: {name} is not a prefix"
        if table.values is not None:
            assert np.array_equal(table.values, ref.values[:n]), f"{what}: {name} is not a prefix"
        needed = int(np.count_nonzero(ref.timestamps < at_least_step))
        assert n >= needed, f"{what}: {name} lost {needed - n} spikes before step {at_least_step}"


@pytest.mark.slow
def test_kill_9_during_generate_loses_nothing_printed(complete_run, tmp_path):
    for trial, tokens in enumerate(random.Random(12).sample(range(3, 40), 2)):
        out = tmp_path / f"killed{trial}.h5"
        proc = _start(GENERATE + ["--out", str(out)])
        steps = _token_lines(proc, tokens)
        time.sleep(random.Random(trial).random() * 0.05)
        proc.kill()
        proc.wait()
        partial = Path(str(out) + ".partial")
        assert partial.exists() and not out.exists()
        got = read_spikes(partial)                       # readable after kill -9 (SWMR)
        # on_token flushes, then prints: every token printed is on disk, the last one included
        _assert_prefix(got, complete_run, sum(steps), f"killed after {tokens} tokens")
        assert read_metadata(partial)["complete"] is False


_CHUNKED_RUN = r"""
import sys
from spikelm.io.scenario import load_scenario
from spikelm.io.sonata import SpikeWriter
from spikelm.simulator import Simulator
sc = load_scenario(sys.argv[1])
net = sc.build()
sim = Simulator(net, backend="numba", in_memory=False, chunk_steps=int(sys.argv[3]))
writer = SpikeWriter(sys.argv[2], {p: net.populations[p].n for p in net.populations}, net.dt)
sim.run(10**7, writer=writer, on_chunk=lambda: print(sim.t, flush=True))
"""


@pytest.mark.slow
def test_kill_9_during_a_run_loses_at_most_one_chunk(tmp_path):
    from spikelm.io.scenario import load_scenario
    from spikelm.simulator import Simulator

    chunk = 500
    out = tmp_path / "run.h5"
    proc = _start([sys.executable, "-c", _CHUNKED_RUN, str(REPO / "scenarios" / "cuba.toml"), str(out), str(chunk)])
    reported = 0
    for line in proc.stdout:           # the simulator reports each chunk after the writer flushed it
        reported = int(line)
        if reported >= 20 * chunk:
            break
    proc.kill()
    proc.wait()
    got = read_spikes(str(out) + ".partial")
    net = load_scenario(REPO / "scenarios" / "cuba.toml").build()
    sim = Simulator(net, backend="numba")
    last = max((int(t.steps().max()) for t in got.values() if len(t)), default=0)
    sim.run(last + 2 * chunk)
    for name, table in got.items():
        steps, ids, _ = sim.spikes.get(name)
        n = len(table)
        assert np.array_equal(table.steps(), steps[:n]) and np.array_equal(table.node_ids, ids[:n]), name
        assert n >= np.count_nonzero(steps < reported), f"{name}: lost spikes of a reported chunk"
        # and it ends at a chunk boundary: whole chunks are written, never part of one
        before_bound = np.searchsorted(steps, np.arange(0, last + 3 * chunk, chunk))
        assert n in before_bound, f"{name}: {n} spikes end inside a chunk"


@pytest.mark.slow
def test_kill_9_during_spikelm_run_leaves_a_readable_file(tmp_path):
    out = tmp_path / "cuba.h5"
    proc = _start([sys.executable, "-m", "spikelm.cli", "run", str(REPO / "scenarios" / "cuba.toml"),
                   "--duration", "100000", "--out", str(out), "--no-progress"])
    partial = Path(str(out) + ".partial")
    deadline = time.time() + 120
    while not partial.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0 + random.random())
    proc.kill()
    proc.wait()
    got = read_spikes(partial)
    assert sum(len(t) for t in got.values()) > 0
    assert "incomplete" in summary(partial)
    # after spikelm repair, plain h5py and libsonata read the same record
    import h5py

    from spikelm.io.repair import repair

    assert repair(partial)["was_open"]
    with h5py.File(partial, "r") as f:
        assert f["spikelm"].attrs["repaired"]
    fixed = read_spikes(partial)
    assert all(np.array_equal(fixed[p].node_ids, got[p].node_ids) for p in got)
    libsonata = pytest.importorskip("libsonata", reason="libsonata reads SONATA files (dev extra)")
    reader = libsonata.SpikeReader(str(partial))
    assert sum(len(reader[p].get()) for p in reader.get_population_names()) == sum(map(len, got.values()))


@pytest.mark.slow
def test_ctrl_c_during_generate_exits_130_with_a_usable_partial(tmp_path):
    rng = random.Random(2026)
    for trial in range(10):  # each a fresh process, ~4.5 s: 20 took 90 s of the suite's 20-minute budget
        out = tmp_path / f"int{trial}.h5"
        proc = _start(GENERATE + ["--out", str(out)])
        _token_lines(proc, rng.randint(1, 45))
        time.sleep(rng.random() * 0.08)           # anywhere inside a token, or between two
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=120)
        what = f"trial {trial}"
        assert proc.returncode == 130, f"{what}: exit {proc.returncode}\n{err[-2000:]}"
        assert "Exception ignored" not in err and "Traceback" not in err, f"{what}: {err[-2000:]}"
        assert "generated:" not in rest, f"{what}: the run went on"
        partial = Path(str(out) + ".partial")
        assert partial.exists() and not out.exists(), what
        assert read_metadata(partial)["complete"] is False
        assert sum(len(t) for t in read_spikes(partial).values()) > 0, what


@pytest.mark.slow
def test_a_reader_opens_the_file_while_it_is_written(tmp_path):
    out = tmp_path / "live.h5"
    proc = _start(GENERATE + ["--out", str(out)])
    try:
        _token_lines(proc, 15)
        partial = Path(str(out) + ".partial")
        first = read_spikes(partial)               # while the writer holds it
        assert "incomplete" in summary(partial)
        _token_lines(proc, 10)
        later = read_spikes(partial)
        assert sum(map(len, later.values())) > sum(map(len, first.values()))
    finally:
        proc.communicate(timeout=300)
    assert proc.returncode == 0
    assert read_metadata(out)["complete"] is True


@pytest.mark.slow
def test_memory_stays_flat_with_model_time(tmp_path):
    """Before issue 12 CUBA grew by 0.53 MB per model second (192 MB at 10 s, 505 MB at 600 s)."""
    sys.path.insert(0, str(REPO))
    from benchmarks.memory import peak_rss

    scenario = REPO / "scenarios" / "cuba.toml"
    short, rc1 = peak_rss(["run", scenario, "--duration", 5000, "--out", tmp_path / "s.h5", "--no-progress"])
    long, rc2 = peak_rss(["run", scenario, "--duration", 100000, "--out", tmp_path / "l.h5", "--no-progress"])
    assert rc1 == rc2 == 0
    assert long < 1.08 * short, f"peak RSS {short / 1e6:.0f} MB at 5 s, {long / 1e6:.0f} MB at 100 s"
