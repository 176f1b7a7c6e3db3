"""``spikelm sweep``: every point equals its serial ``spikelm run``, on one process or on a
LocalCluster of 2 worker processes; resume; failing points; a worker killed mid-sweep."""
from __future__ import annotations

import math
import os
import signal
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spikelm.cli import main
from spikelm.io.sonata import read_metadata, read_spikes
from spikelm.scaleout import sweep as sw
from spikelm.scaleout.table import read_table, write_table

ROOT = Path(__file__).resolve().parent.parent
SMALL = """
[network]
dt = 0.1
seed = 3

[run]
duration = 200.0

[populations.exc]
model = "lif"
n = 80
params = { e_l = -49.0 }
init.v = { uniform = [-60.0, -50.0] }

[populations.inh]
model = "lif"
n = 20
params = { e_l = -49.0 }

[projections.ee]
pre = "exc"
post = "exc"
connect = { rule = "fixed_probability", p = 0.1 }
weight = 1.5
delay = 0.1

[projections.ie]
pre = "inh"
post = "exc"
connect = { rule = "fixed_probability", p = 0.2 }
weight = -4.0
target = "inh"
"""
SETS = ["--set", "exc.tau_m=15,25", "--set", "seed=1..2"]


@pytest.fixture
def scenario(tmp_path):
    p = tmp_path / "small.toml"
    p.write_text(SMALL)
    return str(p)


def same_spikes(a, b):
    sa, sb = read_spikes(a), read_spikes(b)
    assert list(sa) == list(sb)
    for pop in sa:
        np.testing.assert_array_equal(sa[pop].timestamps, sb[pop].timestamps)
        np.testing.assert_array_equal(sa[pop].node_ids, sb[pop].node_ids)
    return sum(len(t) for t in sa.values())


def rows_of(out):
    return read_table(os.path.join(out, sw.SUMMARY), sw.GROUP)


def figures(row):
    """The row without its timings, NaN spelt out (NaN != NaN)."""
    return {k: ("nan" if isinstance(v, float) and math.isnan(v) else v)
            for k, v in row.items() if k not in ("wall_s", "build_s", "status")}


def test_serial_sweep_points_equal_spikelm_run(scenario, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert main(["sweep", scenario, *SETS, "--out", str(out), "--scheduler", "serial", "--no-progress"]) == 0
    rows = rows_of(out)
    assert [(r["exc.tau_m"], r["seed"]) for r in rows] == [(15, 1), (15, 2), (25, 1), (25, 2)]
    assert all(r["status"] == "ok" for r in rows)
    for r in rows:
        ref = tmp_path / f"ref-{r['exc.tau_m']}-{r['seed']}.h5"
        assert main(["run", scenario, "--set", f"exc.tau_m={r['exc.tau_m']}", "--set", f"seed={r['seed']}",
                     "--out", str(ref), "--no-progress"]) == 0
        n = same_spikes(out / f"{r['point']}.h5", ref)
        meta = read_metadata(ref)
        assert r["synops"] == sum(meta["synops"].values()) and r["steps"] == meta["steps"]
        assert r["rate.exc"] == pytest.approx(len(read_spikes(ref)["exc"]) / 80 / 0.2)
        assert n > 0
    # the points differ: a sweep that ignored --set would give four equal rows
    assert len({r["synops"] for r in rows}) == 4
    assert (out / "rate.exc-vs-exc.tau_m.png").stat().st_size > 0


def test_local_cluster_of_two_workers_equals_serial(scenario, tmp_path):
    pytest.importorskip("distributed", reason="needs the distributed extra (dask[distributed])")
    a, b = tmp_path / "serial", tmp_path / "cluster"
    assert main(["sweep", scenario, *SETS, "--out", str(a), "--scheduler", "serial", "--no-progress"]) == 0
    assert main(["sweep", scenario, *SETS, "--out", str(b), "--scheduler", "local:2", "--no-progress"]) == 0
    ra, rb = rows_of(a), rows_of(b)
    assert [figures(r) for r in ra] == [figures(r) for r in rb]
    for r in ra:
        same_spikes(a / f"{r['point']}.h5", b / f"{r['point']}.h5")


def test_rerun_skips_finished_points(scenario, tmp_path):
    out = tmp_path / "sweep"
    args = ["sweep", scenario, *SETS, "--out", str(out), "--scheduler", "serial", "--no-progress"]
    assert main(args) == 0
    first = rows_of(out)
    files = sorted(out.glob("point-*.h5"))
    stamps = {f: f.stat().st_mtime_ns for f in files}
    files[1].unlink()
    assert main(args) == 0
    again = rows_of(out)
    assert [r["status"] for r in again].count("resumed") == 3
    assert [figures(r) for r in again] == [figures(r) for r in first]
    assert all(f.stat().st_mtime_ns == stamps[f] for f in files if f != files[1])
    # a changed scenario is a different point: nothing is reused
    Path(scenario).write_text(SMALL.replace("weight = 1.5", "weight = 1.6"))
    assert main(args) == 0
    assert all(r["status"] == "ok" for r in rows_of(out))
    assert len(list(out.glob("point-*.h5"))) == 8


def test_failing_point_is_reported_and_others_finish(scenario, tmp_path, capsys):
    out = tmp_path / "sweep"
    # dt = 0.25 ms makes the 0.1 ms delay shorter than one step: that point fails when built
    rc = main(["sweep", scenario, "--set", "dt=0.1,0.25", "--out", str(out), "--scheduler", "serial",
               "--no-progress"])
    assert rc == 1
    rows = rows_of(out)
    assert [r["status"] for r in rows] == ["ok", "error"]
    assert "delay must be at least one step" in rows[1]["error"]
    assert (out / f"{rows[0]['point']}.h5").exists() and not (out / f"{rows[1]['point']}.h5").exists()
    assert "failed: " + rows[1]["point"] in capsys.readouterr().out


@pytest.mark.parametrize("argv,needle", [
    (["--set", "exc.tau_m=10,x("], "--set exc.tau_m"),
    (["--set", "exc.tau_m=10,-3"], "populations.exc.params.tau_m"),
    (["--set", "nope.x=1"], "--set nope.x"),
    (["--set", "seed=3..1"], "range 3..1 is empty"),
    (["--set", "seed=1,2", "--against", "exc.tau_m"], "--against exc.tau_m"),
    (["--set", "seed=1,2", "--plot", "rate.nope"], "--plot rate.nope"),
    (["--set", "seed=1,2", "--scheduler", "local:0"], "--scheduler local:0"),
    ([], "--set: give at least one"),
])
def test_bad_options_are_one_line_and_run_nothing(scenario, tmp_path, capsys, argv, needle):
    out = tmp_path / "sweep"
    assert main(["sweep", scenario, "--out", str(out), "--no-progress", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spikelm: error: ") and needle in err and err.count("\n") == 1
    assert not out.exists()


def naive_cv(ids, ts):
    cvs = []
    for n in np.unique(ids):
        isi = np.diff(np.sort(ts[ids == n]))
        if isi.size >= 2 and isi.mean() > 0:
            cvs.append(isi.std() / isi.mean())
    return float(np.mean(cvs)) if cvs else math.nan


@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 400)), max_size=60, unique=True))
def test_cv_isi_matches_the_per_neuron_definition(spikes):
    ids = np.array([s[0] for s in spikes], dtype=np.uint64)
    ts = np.array([s[1] * 0.1 for s in spikes])
    got, want = sw.cv_isi(ids, ts), naive_cv(ids.astype(np.int64), ts)
    assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, rel=1e-12, abs=1e-12)


@given(st.lists(st.tuples(st.integers(-2**62, 2**62), st.floats(allow_nan=False), st.text(max_size=8),
                          st.booleans()), max_size=12))
def test_tables_read_back_what_was_written(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("t") / "t.h5"
    data = [{"i": a, "x": b, "s": c, "b": d} for a, b, c, d in rows]
    write_table(path, "g", data, ["i", "x", "s", "b"], {"note": "n"})
    # HDF5 strings cannot hold NUL: the writer puts U+FFFD there
    assert read_table(path, "g") == [dict(r, s=r["s"].replace("\x00", "\ufffd")) for r in data]
    with h5py.File(path) as f:
        assert f["g"].attrs["note"] == "n"


def test_worker_killed_mid_sweep_still_yields_every_point_once(tmp_path):
    """Kill one of two workers while it writes a point: the scheduler reruns that task elsewhere."""
    pytest.importorskip("distributed", reason="needs the distributed extra (dask[distributed])")
    from distributed import Client

    from spikelm.scaleout.cluster import local_cluster

    scenario = tmp_path / "long.toml"
    # long enough (~1 s a point) that the kill lands while a point file is being written
    scenario.write_text(SMALL.replace("n = 80", "n = 3000").replace("duration = 200.0", "duration = 3000.0")
                        .replace("p = 0.1", "p = 0.01"))
    sets = ["exc.tau_m=15,20,25", "seed=1..2"]
    out = tmp_path / "sweep"
    with local_cluster(2) as cluster, Client(cluster) as client:
        assert set(client.run(lambda: __import__("spikelm").__file__).values()) == {
            str(ROOT / "spikelm" / "__init__.py")}
        pids = client.run(os.getpid)
        result = {}
        t = threading.Thread(target=lambda: result.update(
            r=sw.sweep(str(scenario), sets, str(out), client, progress=False, echo=lambda *a: None)))
        t.start()
        deadline = time.monotonic() + 120
        while not list(out.glob("*.partial")) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert list(out.glob("*.partial")), "no point started within 120 s"
        busy = [w for w, keys in client.processing().items() if keys]
        assert busy, "no worker is running a point"
        os.kill(pids[busy[0]], signal.SIGKILL)
        t.join(300)
        assert not t.is_alive()
    rows = result["r"].rows
    assert [r["status"] for r in rows] == ["ok"] * 6, [r["error"] for r in rows]
    assert len({r["point"] for r in rows}) == 6
    assert sorted(p.name for p in out.glob("point-*")) == sorted(r["point"] + ".h5" for r in rows)
    # and the rerun point is the serial run: compare every point to a serial sweep
    serial = sw.sweep(str(scenario), sets, str(tmp_path / "serial"), "serial", progress=False, echo=lambda *a: None)
    assert [figures(r) for r in serial.rows] == [figures(r) for r in rows]


def test_sweep_on_a_scheduler_started_with_the_dask_command(scenario, tmp_path):
    """The several-machines path on one machine: `dask scheduler` + `dask worker`, by scheduler file."""
    pytest.importorskip("distributed", reason="needs the distributed extra (dask[distributed])")
    import subprocess
    import sys

    sched = tmp_path / "sched.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT), DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED="False")
    dask = [sys.executable, "-m", "dask"]  # the `dask` command of the docs
    procs = [subprocess.Popen([*dask, "scheduler", "--scheduler-file", str(sched),
                               "--port", "0", "--dashboard-address", ":0"], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        procs.append(subprocess.Popen([*dask, "worker", "--scheduler-file",
                                       str(sched), "--nthreads", "1", "--nworkers", "2"], env=env, cwd=tmp_path,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        a, b = tmp_path / "serial", tmp_path / "remote"
        assert main(["sweep", scenario, *SETS, "--out", str(a), "--scheduler", "serial", "--no-progress"]) == 0
        assert main(["sweep", scenario, *SETS, "--out", str(b), "--scheduler", str(sched), "--no-progress"]) == 0
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(30)
    assert [figures(r) for r in rows_of(a)] == [figures(r) for r in rows_of(b)]
    for r in rows_of(a):
        same_spikes(a / f"{r['point']}.h5", b / f"{r['point']}.h5")


def test_without_dask_a_cluster_is_one_line_naming_the_extra(scenario, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # what an install without the extra sees
    out = tmp_path / "sweep"
    assert main(["sweep", scenario, "--set", "seed=1,2", "--out", str(out), "--scheduler", "local:2",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "spikelm[distributed]" in err and "spikelm sweep" in err
    # serial needs no Dask
    assert main(["sweep", scenario, "--set", "seed=1,2", "--out", str(out), "--scheduler", "serial",
                 "--no-progress"]) == 0
