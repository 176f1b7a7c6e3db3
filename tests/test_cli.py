"""The spikelm command: a working run, and bad input giving one clear line and exit code 2.

Every bad-input case checks: exit code 2, one line on stderr that starts with
'spikelm: error:', names the file and the field, no traceback, and that nothing already
on disk was lost or left half-written.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from helpers import plot_axes
from spikelm.cli import main

SMALL = """
[network]
dt = 0.1
seed = 3

[run]
duration = 20.0

[populations.exc]
model = "lif"
n = 40
params = {{ e_l = -49.0 }}
init.v = {{ uniform = [-60.0, -50.0] }}

[populations.inh]
model = "lif"
n = 10

[projections.ee]
pre = "exc"
post = "{post}"
connect = {{ rule = "fixed_probability", p = {p} }}
weight = {weight}
delay = {delay}
"""


def scenario(tmp_path, name="s.toml", post="exc", p=0.2, weight="1.0", delay="0.2", text=None):
    f = tmp_path / name
    f.write_text(text if text is not None else SMALL.format(post=post, p=p, weight=weight, delay=delay))
    return f


def run_cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_user_error(rc, err, *needles):
    assert rc == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("spikelm: error:"), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def test_run_writes_a_readable_file_and_prints_a_summary(tmp_path, capsys):
    f = scenario(tmp_path)
    out = tmp_path / "run.h5"
    rc, stdout, err = run_cli(capsys, "run", f, "--out", out, "--no-progress", "--backend", "numpy")
    assert rc == 0, err
    assert "exc" in stdout and "SynOps" in stdout and "rate (Hz)" in stdout
    from spikelm.io.sonata import read_metadata, read_spikes

    spikes = read_spikes(out)
    meta = read_metadata(out)
    assert meta["steps"] == 200
    assert meta["synops"]["ee"] > 0
    assert len(spikes["exc"]) > 0
    rc, stdout, _ = run_cli(capsys, "info", out)
    assert rc == 0 and str(len(spikes["exc"])) in stdout


def test_plot_and_seed_override(tmp_path, capsys):
    f = scenario(tmp_path)
    a, b, png = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "r.png"
    assert run_cli(capsys, "run", f, "--out", a, "--plot", png, "--no-progress", "--seed", "5")[0] == 0
    assert run_cli(capsys, "run", f, "--out", b, "--no-progress", "--seed", "6")[0] == 0
    from spikelm.io.sonata import read_spikes

    assert png.stat().st_size > 10_000
    sa, sb = read_spikes(a)["exc"], read_spikes(b)["exc"]
    assert not (len(sa) == len(sb) and np.array_equal(sa.node_ids, sb.node_ids))


BAD_SCENARIOS = [
    # (id, how to break the text, words the message must contain)
    ("unknown model", lambda s: s.replace('model = "lif"\nn = 40', 'model = "lifx"\nn = 40'),
     ["populations.exc.model", "lifx", "known models"]),
    ("unknown parameter", lambda s: s.replace("e_l = -49.0", "e_leak = -49.0"),
     ["populations.exc", "e_leak", "allowed"]),
    ("missing n", lambda s: s.replace("n = 10\n", ""), ["populations.inh.n", "missing"]),
    ("missing dt", lambda s: s.replace("dt = 0.1\n", ""), ["network.dt", "missing"]),
    ("wrong type", lambda s: s.replace("n = 40", 'n = "forty"'), ["populations.exc.n", "integer"]),
    ("negative delay", lambda s: s.replace("delay = 0.2", "delay = -1.0"), ["projections.ee.delay", "> 0"]),
    ("zero delay", lambda s: s.replace("delay = 0.2", "delay = 0.0"), ["projections.ee.delay", "> 0"]),
    ("sub-step delay", lambda s: s.replace("delay = 0.2", "delay = 0.01"), ["projections.ee", "one step"]),
    ("probability > 1", lambda s: s.replace("p = 0.2", "p = 1.5"), ["projections.ee.connect", "[0, 1]"]),
    ("probability < 0", lambda s: s.replace("p = 0.2", "p = -0.1"), ["projections.ee.connect", "[0, 1]"]),
    ("NaN weight", lambda s: s.replace("weight = 1.0", "weight = nan"), ["projections.ee.weight", "finite"]),
    ("inf weight", lambda s: s.replace("weight = 1.0", "weight = inf"), ["projections.ee.weight", "finite"]),
    ("undefined population", lambda s: s.replace('post = "exc"', 'post = "hidden"'),
     ["projections.ee.post", "hidden", "not defined"]),
    ("unknown rule", lambda s: s.replace("fixed_probability", "small_world"), ["projections.ee.connect.rule", "allowed"]),
    ("not TOML", lambda s: s + "\nthis is = = not toml\n", ["not valid TOML"]),
    ("unknown top-level field", lambda s: s + "\n[netwrok]\ndt = 1\n", ["netwrok", "unknown field"]),
    ("bad model constraint", lambda s: s.replace("e_l = -49.0", "v_reset = -40.0"), ["populations.exc", "v_reset"]),
    ("undefined stimulus population", lambda s: s + '\n[[stimuli]]\nkind = "constant_current"\npopulation = "x"\namplitude = 1.0\n',
     ["stimuli[0].population", "not defined"]),
    ("unknown stimulus", lambda s: s + '\n[[stimuli]]\nkind = "laser"\npopulation = "exc"\n', ["stimuli[0].kind", "laser"]),
    ("negative noise", lambda s: s + '\n[[stimuli]]\nkind = "noise_current"\npopulation = "exc"\nstd = -1.0\n',
     ["stimuli[0]", "std"]),
    # issue 27: refused when the file is read, not after the run started (or never)
    ("duplicated record.spikes", lambda s: s + '\n[record]\nspikes = ["exc", "inh", "exc"]\n',
     ["record.spikes[2]", "listed twice"]),
    ("one state variable recorded twice", lambda s: s + '\n[[record.state]]\npopulation = "exc"\n'
                                                    '[[record.state]]\npopulation = "exc"\nvariables = ["i_e", "v"]\n',
     ["record.state[1].variables[1]", "exc.v is already recorded"]),
    ("a neuron recorded twice", lambda s: s + '\n[[record.state]]\npopulation = "exc"\nneurons = [3, 4, 3]\n',
     ["record.state[0].neurons[2]", "listed twice"]),
    ("current steps of unequal lengths", lambda s: s + '\n[[stimuli]]\nkind = "current_steps"\npopulation = "exc"\n'
                                                   'times = [1.0, 2.0]\namplitudes = [1.0]\n',
     ["stimuli[0]", "equal length"]),
    ("spike times for too few neurons", lambda s: s + '\n[populations.src]\nmodel = "spike_times"\nn = 3\n'
                                                  'params = { times = [[1.0], [2.0]] }\n',
     ["populations.src.params.times", "2 lists of times for 3 neurons"]),
    ("an integer beyond 64 bits", lambda s: s.replace("seed = 3", "seed = " + "9" * 30),
     ["network.seed", "64-bit"]),
]


@pytest.mark.parametrize("case", BAD_SCENARIOS, ids=[c[0] for c in BAD_SCENARIOS])
def test_bad_scenario(tmp_path, capsys, case):
    _, mutate, needles = case
    good = SMALL.format(post="exc", p=0.2, weight="1.0", delay="0.2")
    bad = mutate(good)
    assert bad != good
    f = scenario(tmp_path, "bad.toml", text=bad)
    out = tmp_path / "out.h5"
    out.write_bytes(b"precious")  # an existing file must survive a failed run
    rc, _, err = run_cli(capsys, "run", f, "--out", out, "--no-progress", "--overwrite")
    assert_user_error(rc, err, str(f), *needles)
    assert out.read_bytes() == b"precious"
    assert not Path(str(out) + ".partial").exists()


def test_missing_scenario_file(tmp_path, capsys):
    rc, _, err = run_cli(capsys, "run", tmp_path / "nope.toml")
    assert_user_error(rc, err, "nope.toml", "no such file", "scenario")


def test_out_into_missing_directory(tmp_path, capsys):
    rc, _, err = run_cli(capsys, "run", scenario(tmp_path), "--out", tmp_path / "no" / "x.h5")
    assert_user_error(rc, err, "--out", "does not exist")


def test_negative_steps(tmp_path, capsys):
    rc, _, err = run_cli(capsys, "run", scenario(tmp_path), "--steps", "-5")
    assert_user_error(rc, err, "--steps", "> 0")


def test_info_on_a_text_file(tmp_path, capsys):
    f = tmp_path / "fake.h5"
    f.write_text("not hdf5 at all")
    rc, _, err = run_cli(capsys, "info", f)
    assert_user_error(rc, err, str(f), "not an HDF5 file")


def test_info_on_hdf5_without_spikes(tmp_path, capsys):
    f = tmp_path / "other.h5"
    with h5py.File(f, "w") as h:
        h.create_dataset("x", data=np.arange(3))
    rc, _, err = run_cli(capsys, "info", f)
    assert_user_error(rc, err, str(f), "/spikes")


def test_plot_unknown_projection(tmp_path, capsys):
    f = scenario(tmp_path)
    out = tmp_path / "run.h5"
    assert run_cli(capsys, "run", f, "--out", out, "--no-progress")[0] == 0
    rc, _, err = run_cli(capsys, "plot", out, "--out", tmp_path / "w.png", "--weights", "nothere")
    assert_user_error(rc, err, "nothere")


def test_checkpoint_from_another_network(tmp_path, capsys):
    a = scenario(tmp_path, "a.toml")
    b = scenario(tmp_path, "b.toml", post="inh")
    ck = tmp_path / "a.ck"
    assert run_cli(capsys, "run", a, "--checkpoint", ck, "--no-progress", "--steps", "10")[0] == 0
    rc, _, err = run_cli(capsys, "run", b, "--resume", ck, "--no-progress", "--steps", "10")
    assert_user_error(rc, err, str(ck), "another network", "ee")


def test_resume_from_a_non_checkpoint(tmp_path, capsys):
    f = scenario(tmp_path)
    fake = tmp_path / "fake.ck"
    with h5py.File(fake, "w") as h:
        h.create_group("spikes")
    rc, _, err = run_cli(capsys, "run", f, "--resume", fake, "--no-progress")
    assert_user_error(rc, err, str(fake), "not a spikelm checkpoint")


def test_resume_continues_the_same_run(tmp_path, capsys):
    f = scenario(tmp_path)
    ck, whole, second = tmp_path / "c.ck", tmp_path / "whole.h5", tmp_path / "second.h5"
    assert run_cli(capsys, "run", f, "--steps", "300", "--out", whole, "--no-progress")[0] == 0
    assert run_cli(capsys, "run", f, "--steps", "120", "--checkpoint", ck, "--no-progress")[0] == 0
    assert run_cli(capsys, "run", f, "--steps", "180", "--resume", ck, "--out", second, "--no-progress")[0] == 0
    from spikelm.io.sonata import read_spikes

    w, s = read_spikes(whole)["exc"], read_spikes(second)["exc"]
    late = w.timestamps >= 120 * 0.1 - 1e-9
    assert np.array_equal(w.node_ids[late], s.node_ids)
    assert np.allclose(w.timestamps[late], s.timestamps)


def test_console_script_exit_code_and_no_traceback(tmp_path):
    f = scenario(tmp_path, "bad.toml", p=2.0)
    r = subprocess.run([sys.executable, "-m", "spikelm.cli", "run", str(f), "--no-progress"],
                       capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0 and "p" in r.stderr


def _rates(text):
    """{population: rate column} from the population table of a run summary or of info."""
    rates = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] in ("exc", "inh") and parts[1].replace(",", "").isdigit():
            rates[parts[0]] = parts[3]
    return rates


def test_info_after_resume_prints_the_rates_the_run_printed(tmp_path, capsys):
    """A resumed run's file covers its own steps: info's rates and SynOps are the run's, and
    the plot spans the resumed steps (before: 2.739 Hz against 5.478, 0 .. end of run)."""
    f = scenario(tmp_path)
    ck, out = tmp_path / "c.ck", tmp_path / "second.h5"
    assert run_cli(capsys, "run", f, "--steps", "300", "--checkpoint", ck, "--no-progress")[0] == 0
    rc, printed, err = run_cli(capsys, "run", f, "--steps", "200", "--resume", ck, "--out", out, "--no-progress")
    assert rc == 0, err
    rc, info, err = run_cli(capsys, "info", out)
    assert rc == 0, err
    run_rates, info_rates = _rates(printed), _rates(info)
    assert set(run_rates) == {"exc", "inh"} and float(run_rates["exc"]) > 0
    assert info_rates == run_rates
    synops_line = [ln for ln in printed.splitlines() if ln.strip().startswith("ee ")][0]
    assert synops_line.split()[-1] in info                  # this segment's SynOps, not the total
    assert "steps: 200 (20 ms), from step 300 (resumed: 30 .. 50 ms)" in info
    from spikelm.io.sonata import read_metadata

    meta = read_metadata(out)
    assert (meta["start_step"], meta["steps"]) == (300, 200)
    axes = plot_axes(lambda: __import__("spikelm.io.plots", fromlist=["x"]).plot_raster(out, tmp_path / "r.png"))
    assert axes[1].get_xlim() == pytest.approx((30.0, 50.0))
    # --plot straight from memory (no --out) draws the resumed steps too
    axes = plot_axes(lambda: run_cli(capsys, "run", f, "--steps", "200", "--resume", ck, "--no-progress",
                                      "--plot", tmp_path / "mem.png"))
    assert axes[1].get_xlim() == pytest.approx((30.0, 50.0))


def test_populations_not_recorded_are_said_so_not_silent(tmp_path, capsys):
    """record.spikes = ["exc"]: inh is neither written as an empty (silent-looking) population
    nor reported at 0 Hz; the run's summary gives its true count from the rate monitor."""
    text = SMALL.format(post="inh", p=0.5, weight="10.0", delay="0.2") + '\n[record]\nspikes = ["exc"]\n'
    f = scenario(tmp_path, text=text)
    out = tmp_path / "run.h5"
    rc, printed, err = run_cli(capsys, "run", f, "--out", out, "--no-progress", "--steps", "400")
    assert rc == 0, err
    inh_line = [ln for ln in printed.splitlines() if ln.strip().startswith("inh ")][0]
    assert "not recorded" in inh_line and int(inh_line.split()[2].replace(",", "")) > 0
    from spikelm.io.sonata import read_metadata, read_spikes

    assert list(read_spikes(out)) == ["exc"]
    assert read_metadata(out)["not_recorded"] == {"inh": 10}
    rc, info, _ = run_cli(capsys, "info", out)
    inh_info = [ln for ln in info.splitlines() if ln.strip().startswith("inh ")][0]
    assert "not recorded" in inh_info and "0.000" not in inh_info
    from spikelm.io import plots

    raster, _ = plot_axes(lambda: plots.plot_raster(out, tmp_path / "r.png"))
    assert raster.get_title().endswith("; not recorded: inh")
    assert [t.get_text() for t in raster.get_yticklabels()] == ["exc"]


def test_version_and_help_descriptions(capsys):
    from spikelm import __version__

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"spikelm {__version__}"
    for command, words in (("info", "Rates cover this file's steps"), ("plot", "--state draws recorded state")):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert words in " ".join(capsys.readouterr().out.split())


def test_threads_option_runs_and_refuses_bad_counts(tmp_path, capsys):
    """--threads N: the same spikes as one thread; a count out of range is one line, exit 2."""
    from helpers import generic_numba_loop

    path = scenario(tmp_path)
    outs = []
    for n in ("1", "2"):
        with generic_numba_loop():   # the loops the thread tests compile (test_threads.py)
            assert main(["run", str(path), "--threads", n, "--steps", "300", "--no-progress"]) == 0
        outs.append([line for line in capsys.readouterr().out.splitlines() if "Hz" not in line and "Hz)" not in line
                     and line.strip() and line.split()[0] in ("exc", "inh")])
    assert outs[0] == outs[1] and outs[0]
    for bad in ("0", "10000"):
        assert main(["run", str(path), "--threads", bad]) == 2
        err = capsys.readouterr().err
        assert "threads" in err and len(err.strip().splitlines()) == 1
    assert main(["run", str(path), "--threads", "2", "--backend", "numpy"]) == 2
    assert "numpy backend runs on one thread" in capsys.readouterr().err


def test_plot_state_window_and_weight_units(tmp_path, capsys):
    text = SMALL.format(post="exc", p=0.2, weight="1.0", delay="0.2") + (
        '\n[record]\nstate = [{ population = "exc", variables = ["v", "i_e"], every = 0.5, neurons = [0, 1, 2] }]\n'
        'weights = { every = 5.0, projections = ["ee"] }\n')
    f = scenario(tmp_path, text=text)
    out = tmp_path / "run.h5"
    assert run_cli(capsys, "run", f, "--out", out, "--no-progress")[0] == 0
    rc, info, _ = run_cli(capsys, "info", out)
    assert "state exc/v: 3 nodes x 40 frames (mV)" in info
    from spikelm.io import plots

    png = tmp_path / "v.png"
    rc, _, err = run_cli(capsys, "plot", out, "--out", png, "--state", "exc.i_e", "--window", "5", "15")
    assert rc == 0, err and png.stat().st_size > 10_000
    ax = plot_axes(lambda: plots.plot_state(out, "exc", png, "i_e", t_range=(5.0, 15.0)))
    assert ax.get_ylabel() == "i_e (mV)" and ax.get_xlabel() == "time (ms)"
    lines = ax.get_lines()
    assert len(lines) == 4 and lines[-1].get_label() == "mean of 3"             # 3 neurons + mean
    assert lines[0].get_xdata().min() >= 5.0 and lines[0].get_xdata().max() <= 15.0
    rc, _, err = run_cli(capsys, "plot", out, "--out", tmp_path / "r.png", "--window", "5", "15")
    assert rc == 0, err
    axes = plot_axes(lambda: plots.plot_raster(out, tmp_path / "r.png", t_range=(5.0, 15.0)))
    assert axes[1].get_xlim() == (5.0, 15.0)
    left, right = plot_axes(lambda: plots.plot_weights(out, "ee", tmp_path / "w.png"))
    assert left.get_ylabel() == "weight (mV)" and right.get_xlabel() == "weight (mV)"
    assert [h.get_label() for h in right.get_lines()][0] == "t = 0 ms"
    rc, _, err = run_cli(capsys, "plot", out, "--out", png, "--state", "inh")
    assert_user_error(rc, err, "/report/inh", "no state report")


def test_compile_time_is_printed_apart_from_the_run(tmp_path):
    """A fresh process compiles or loads the kernels of the run: that time is its own figure,
    not part of "run" (issue 27: "simulated in 17.35 s" cold, 2.10 s warm)."""
    f = scenario(tmp_path)
    r = subprocess.run([sys.executable, "-m", "spikelm.cli", "run", str(f), "--no-progress", "--steps", "50"],
                       capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert r.returncode == 0, r.stderr
    line = r.stdout.splitlines()[1]
    m = re.fullmatch(r"  build ([\d.]+) s, (compile|load compiled code) ([\d.]+) s.*, run ([\d.]+) s wall \(.*\)", line)
    assert m, line
    assert float(m.group(3)) > 0


def test_compile_clock_counts_compiling_once_and_only_inside():
    from numba import njit

    from spikelm.timing import CompileClock

    @njit
    def twice(x):
        return 2 * x

    @njit
    def outer(x):
        return twice(x) + 1     # compiles twice() inside outer(): nested, counted once

    t0 = time.perf_counter()
    with CompileClock() as clock:
        assert outer(3) == 7
    wall = time.perf_counter() - t0
    assert 0 < clock.compiled <= clock.seconds <= wall
    before = clock.seconds
    assert outer(4.5) == 10.0           # compiles again, but outside the block
    assert clock.seconds == before
    with CompileClock() as warm:
        assert outer(5) == 11           # already compiled: nothing to count
    assert warm.seconds == 0.0
