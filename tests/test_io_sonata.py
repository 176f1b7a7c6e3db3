"""SONATA spike files: round trips, crash safety, bad files, other tools' files."""

import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikelm.errors import ConfigError, FileFormatError
from spikelm.io.sonata_read import _META_TYPES
from spikelm.io.sonata import (
    INTERNAL_KEYS,
    SpikeWriter,
    read_metadata,
    read_spikes,
    read_state,
    read_weights,
    summary,
    validate,
)

NAMES = st.text(alphabet="abcdefghij_->0123456789", min_size=1, max_size=6)
JSONABLE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**62), 2**62)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                  max_size=3),
    max_leaves=8,
)
META_VALUES = (
    st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False) | st.text(alphabet=st.characters(codec="utf-8"), max_size=30)
    | st.text(alphabet="xyz", min_size=5000, max_size=5000) | JSONABLE
)
META_KEYS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8).filter(
    # keys the reader gives a type (tokens, complete, time_unit, ...) hold values of that type
    # only, checked on reading: a free value there is damage, not a round trip
    lambda k: k not in INTERNAL_KEYS and k not in ("synops", "steps") and k not in _META_TYPES)


@st.composite
def runs(draw):
    """Populations, their spikes in time order, and the cut points of the append calls."""
    names = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
    pops, spikes = {}, {}
    for name in names:
        n = draw(st.integers(1, 40))
        signed = draw(st.booleans())
        k = draw(st.integers(0, 60))
        gaps = draw(st.lists(st.integers(0, 5), min_size=k, max_size=k))
        steps = np.cumsum(np.array(gaps, dtype=np.int64)) + draw(st.integers(0, 10**9))
        ids = np.array(draw(st.lists(st.integers(0, n - 1), min_size=k, max_size=k)),
                       dtype=np.int64)
        wide = draw(st.booleans())
        lo, hi = (-32768, 32767) if wide else (-128, 127)
        values = (np.array(draw(st.lists(st.integers(lo, hi), min_size=k, max_size=k)),
                           dtype=np.int64) if signed else None)
        cuts = sorted(draw(st.lists(st.integers(0, k), max_size=4)))
        pops[name] = n
        spikes[name] = (signed, steps, ids, values, cuts)
    return pops, spikes


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(run=runs(),
       dt=st.sampled_from([0.1, 0.025, 1.0, 0.5, 1 / 3]) | st.floats(1e-3, 10.0),
       chunk=st.integers(1, 17),
       meta=st.dictionaries(META_KEYS, META_VALUES, max_size=5),
       synops=st.dictionaries(NAMES, st.integers(0, 2**62), max_size=3))
def test_round_trip_is_exact(tmp_path, run, dt, chunk, meta, synops):
    pops, spikes = run
    path = tmp_path / "run.h5"
    signed = {name: s[0] for name, s in spikes.items()}
    with SpikeWriter(path, pops, dt, metadata=meta, signed=signed, chunk=chunk) as w:
        for name, (_, steps, ids, values, cuts) in spikes.items():
            bounds = [0, *cuts, steps.size]
            for a, b in zip(bounds[:-1], bounds[1:]):
                w.append(name, steps[a:b], ids[a:b], None if values is None else values[a:b])
        final = w.finish({"synops": synops, "steps": 12})
    assert final == str(path)
    assert not os.path.exists(str(path) + ".partial")

    tables = read_spikes(path)
    assert list(tables) == list(pops)
    for name, (_, steps, ids, values, _) in spikes.items():
        t = tables[name]
        assert t.timestamps.dtype == np.float64 and t.node_ids.dtype == np.uint64
        assert np.array_equal(t.timestamps, steps.astype(np.float64) * dt)
        assert np.array_equal(t.steps(dt), steps)
        assert np.array_equal(t.steps(), steps)          # dt from the file
        assert np.array_equal(t.node_ids, ids)
        assert t.sorting == "by_time" and t.n_nodes == pops[name]
        if values is None:
            assert t.values is None
        else:
            assert np.array_equal(t.values, values)
            fits8 = values.size == 0 or (values.min() >= -128 and values.max() <= 127)
            assert t.values.dtype == (np.int8 if fits8 else np.int16)

    with h5py.File(path, "r") as f:
        for name in pops:
            g = f["spikes"][name]
            assert h5py.check_enum_dtype(g.attrs.get_id("sorting").dtype) == {
                "none": 0, "by_id": 1, "by_time": 2}
            assert g.attrs["sorting"] == 2
            assert g["timestamps"].attrs["units"] == "ms"
        assert f.attrs["magic"] == 0x0A7A

    got = read_metadata(path)
    for key, value in meta.items():
        assert got[key] == value, key
    assert got["dt"] == dt and got["steps"] == 12 and got["synops"] == synops
    assert got["populations"] == pops and got["signed"] == signed
    assert got["complete"] is True


def _spikes(w, name, n_spikes, per_call=3):
    steps = np.arange(n_spikes) // 2
    for a in range(0, n_spikes, per_call):
        w.append(name, steps[a:a + per_call], np.arange(a, min(a + per_call, n_spikes)) % 5)


def test_exception_keeps_partial_and_never_touches_target(tmp_path):
    path = tmp_path / "run.h5"
    path.write_bytes(b"an earlier result")
    with pytest.raises(RuntimeError, match="boom"):
        with SpikeWriter(path, {"a": 5}, 0.5, metadata={"seed": 7}, chunk=4) as w:
            _spikes(w, "a", 11, per_call=1)  # 8 written in chunks, 3 still buffered
            assert w._file["spikes/a/timestamps"].shape == (8,)
            raise RuntimeError("boom")
    assert path.read_bytes() == b"an earlier result"
    partial = str(path) + ".partial"
    tables = read_spikes(partial)
    assert np.array_equal(tables["a"].steps(0.5), np.arange(11) // 2)
    meta = read_metadata(partial)
    assert meta["complete"] is False and meta["seed"] == 7
    assert "incomplete" in summary(partial)


def test_success_replaces_target(tmp_path):
    path = tmp_path / "run.h5"
    path.write_bytes(b"old")
    with SpikeWriter(path, {"a": 5}, 1.0, chunk=4) as w:
        _spikes(w, "a", 7)
    assert len(read_spikes(path)["a"]) == 7
    assert not os.path.exists(str(path) + ".partial")


def test_hard_crash_loses_at_most_the_last_chunk(tmp_path):
    # A killed process runs no __exit__: only chunks already written may survive.
    path = tmp_path / "run.h5"
    code = textwrap.dedent(f"""
        import os, numpy as np
        from spikelm.io.sonata import SpikeWriter
        w = SpikeWriter({str(path)!r}, {{"a": 100}}, 0.25, chunk=10)
        for i in range(35):
            w.append("a", np.array([i]), np.array([i]))
        os._exit(3)
    """)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(__file__)))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True)
    assert proc.returncode == 3, proc.stderr.decode()
    assert not path.exists()
    t = read_spikes(str(path) + ".partial")["a"]
    assert np.array_equal(t.node_ids, np.arange(30))      # 3 full chunks, last 5 lost
    assert np.array_equal(t.steps(0.25), np.arange(30))


def test_values_widen_from_int8_to_int16(tmp_path):
    path = tmp_path / "run.h5"
    with SpikeWriter(path, {"q": 4}, 1.0, signed=True, chunk=2) as w:
        w.append("q", [0, 1], [0, 1], [1, -1])
        w.append("q", [2, 3], [2, 3], [-2, 3])
        assert w._file["spikes/q/values"].dtype == np.int8     # both chunks are on disk
        w.append("q", [4], [0])                          # default +1
        w.append("q", [5], [1], [-4096])
    v = read_spikes(path)["q"].values
    assert v.dtype == np.int16 and v.tolist() == [1, -1, -2, 3, 1, -4096]


@pytest.mark.parametrize("call, match", [
    (lambda w: w.append("zz", [0], [0]), "population: unknown"),
    (lambda w: w.append("a", [3, 2], [0, 0]), "not in time order"),
    (lambda w: (w.append("a", [5], [0]), w.append("a", [4], [0])), "not in time order"),
    (lambda w: w.append("a", [0], [5]), "node_ids: found 5"),
    (lambda w: w.append("a", [0, 1], [0]), "one node id per step"),
    (lambda w: w.append("a", [0], [0], [-1]), "not signed"),
    (lambda w: w.append("s", [0], [0], [40000]), "int16 range"),
    (lambda w: w.append("a", [0.5], [0]), "allowed: integers"),
    (lambda w: w.add_state("a", "v", [0, 1], [0, 1, 3], np.zeros((3, 2))), "evenly spaced"),
    (lambda w: w.add_state("a", "data", [0], [0], np.zeros((1, 1))), "reserved"),
    (lambda w: w.add_state("a", "v", [0], [0], np.zeros((2, 1))), "shape"),
    (lambda w: w.add_weights("p", 3, np.ones(2)) or w.add_weights("p", 3, np.ones(2)),
     "increasing"),
    (lambda w: w.add_weights("p", 0, np.ones(2)) or w.add_weights("p", 1, np.ones(3)),
     "size of the first"),
    (lambda w: w.finish({"x": object()}), "type object"),
])
def test_writer_rejects_bad_calls(tmp_path, call, match):
    w = SpikeWriter(tmp_path / "r.h5", {"a": 5, "s": 2}, 1.0, signed={"s": True})
    with pytest.raises(ConfigError, match=match) as info:
        call(w)
    assert "\n" not in str(info.value)
    w._abort()


@pytest.mark.parametrize("kwargs, match", [
    ({"populations": []}, "dict name -> neuron count"),
    ({"populations": {"a/b": 3}}, "without '/'"),
    ({"populations": {"a": -1}}, "int >= 0"),
    ({"dt": 0.0}, "dt"),
    ({"chunk": 0}, "chunk"),
    ({"signed": {"nope": True}}, "unknown populations"),
    ({"metadata": {"version": "9"}}, "set by the writer"),
    ({"metadata": {"dt": 2.0}}, "differs from dt"),
    ({"metadata": {"synops": {"p": -1}}}, "SynOp count"),
    ({"metadata": {"x": {1, 2}}}, "type set"),
    ({"metadata": {"x": [object()]}}, "JSON"),
])
def test_writer_rejects_bad_arguments(tmp_path, kwargs, match):
    args = {"populations": {"a": 3}, "dt": 1.0, **kwargs}
    path = tmp_path / "r.h5"
    with pytest.raises(ConfigError, match=match):
        SpikeWriter(path, args.pop("populations"), args.pop("dt"), **args)
    assert not os.path.exists(str(path) + ".partial")


def test_state_reports_extend_and_hold_several_variables(tmp_path):
    path = tmp_path / "run.h5"
    rng = np.random.default_rng(0)
    v1, v2, th = rng.normal(size=(4, 3)), rng.normal(size=(2, 3)), rng.normal(size=(3, 3))
    with SpikeWriter(path, {"exc": 10}, 0.1) as w:
        w.add_state("exc", "v", [1, 4, 7], [20, 25, 30, 35], v1, units="mV")
        w.add_state("exc", "v", [1, 4, 7], [40, 45], v2, units="mV")
        w.add_state("exc", "theta", [1, 4, 7], [0, 10, 20], th)
    ids, times, data = read_state(path, "exc")
    assert ids.tolist() == [1, 4, 7]
    assert np.allclose(times, np.arange(20, 50, 5) * 0.1)
    assert data.dtype == np.float32
    assert np.array_equal(data, np.vstack([v1, v2]).astype(np.float32))
    assert np.array_equal(read_state(path, "exc", "v")[2], data)
    ids, times, data = read_state(path, "exc", "theta")
    assert np.allclose(times, [0.0, 1.0, 2.0])
    assert np.array_equal(data, th.astype(np.float32))
    with h5py.File(path, "r") as f:
        m = f["report/exc/mapping"]
        assert np.allclose(m["time"][()], [2.0, 5.0, 0.5]) and m["time"].attrs["units"] == "ms"
        assert m["index_pointers"][()].tolist() == [0, 1, 2, 3]
        assert f["report/exc/data"].attrs["units"] == "mV"
    with pytest.raises(ConfigError, match="available: \\['theta', 'v'\\]"):
        read_state(path, "exc", "u")
    with pytest.raises(ConfigError, match="no state report"):
        read_state(path, "inh")


def test_single_frame_then_more_frames(tmp_path):
    path = tmp_path / "run.h5"
    with SpikeWriter(path, {"a": 2}, 0.5) as w:
        w.add_state("a", "v", [0, 1], [3], np.array([1.0, 2.0]))
        w.add_state("a", "v", [0, 1], [9, 15], np.ones((2, 2)))
        with pytest.raises(ConfigError, match="spacing"):
            w.add_state("a", "v", [0, 1], [20], np.ones((1, 2)))
    _, times, data = read_state(path, "a")
    assert times.tolist() == [1.5, 4.5, 7.5] and data.shape == (3, 2)


def test_weights_round_trip_keeps_dtype(tmp_path):
    path = tmp_path / "run.h5"
    snaps = [np.arange(6, dtype=np.int8).reshape(2, 3) * k for k in range(3)]
    with SpikeWriter(path, {"a": 3}, 0.25) as w:
        for step, s in zip([0, 10, 40], snaps):
            w.add_weights("a->a", step, s)
        w.add_weights("b", 5, np.array([0.5, 0.25], dtype=np.float64))
    steps, got = read_weights(path, "a->a")
    assert steps.tolist() == [0, 10, 40]
    assert got.dtype == np.int8 and np.array_equal(got, np.stack([s.ravel() for s in snaps]))
    assert read_weights(path, "b")[1].tolist() == [[0.5, 0.25]]
    with h5py.File(path, "r") as f:
        assert f["report/a->a/times"][()].tolist() == [0.0, 2.5, 10.0]
    with pytest.raises(ConfigError, match="available: \\['a->a', 'b'\\]"):
        read_weights(path, "c")


# ----------------------------------------------------------------------------- bad files


def _h5(path, build):
    with h5py.File(path, "w") as f:
        build(f)
    return path


def _pop(f, ts=np.zeros(3), ids=np.zeros(3, dtype=np.uint64), name="p"):
    g = f.create_group(f"spikes/{name}")
    if ts is not None:
        g["timestamps"] = ts
    if ids is not None:
        g["node_ids"] = ids
    return g


BAD_FILES = {
    "text": (lambda p: p.write_text("t,node\n0.1,3\n"), "not an HDF5 file"),
    "truncated": (lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100)),
                  "unreadable HDF5 file"),
    "no_spikes": (lambda p: _h5(p, lambda f: f.create_group("other")), "/spikes: group missing"),
    "lengths": (lambda p: _h5(p, lambda f: _pop(f, ts=np.zeros(4))),
                "timestamps has 4 entries, node_ids 3"),
    "ts_dtype": (lambda p: _h5(p, lambda f: _pop(f, ts=np.zeros(3, dtype=np.int64))),
                 "timestamps: dtype int64"),
    "id_dtype": (lambda p: _h5(p, lambda f: _pop(f, ids=np.zeros(3))), "node_ids: dtype float64"),
    "no_timestamps": (lambda p: _h5(p, lambda f: _pop(f, ts=None)),
                      "/spikes/p/timestamps: dataset missing"),
    "no_node_ids": (lambda p: _h5(p, lambda f: _pop(f, ids=None)),
                    "/spikes/p/node_ids: dataset missing"),
    "2d": (lambda p: _h5(p, lambda f: _pop(f, ts=np.zeros((3, 1)))), "not a 1-D dataset"),
    "flat": (lambda p: _h5(p, lambda f: f.create_dataset("spikes/timestamps", data=[1.0])),
             "pre-population layout"),
    "values": (lambda p: _h5(p, lambda f: _pop(f).create_dataset("values", data=np.ones(2))),
               "values: dtype float64"),
    "sorting": (lambda p: _h5(p, lambda f: _pop(f).attrs.__setitem__("sorting", "by_colour")),
                "sorting is 'by_colour'"),
    "units": (lambda p: _h5(p, lambda f: _pop(f)["timestamps"].attrs.__setitem__("units", "h")),
              "units is 'h'"),
    "dt": (lambda p: _h5(p, lambda f: (_pop(f), f.create_group("spikelm"))),
           "/spikelm: attribute dt"),
    "weights": (lambda p: _h5(p, lambda f: (_pop(f), f.create_dataset(
        "report/x/weights", data=np.ones((2, 3))), f.create_dataset("report/x/steps", data=[1]))),
                "/report/x: weights shape"),
    "report": (lambda p: _h5(p, lambda f: (_pop(f), f.create_group("report/y"))),
               "/report/y: neither data nor weights"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_files_raise_file_format_error(tmp_path, kind):
    make, problem = BAD_FILES[kind]
    path = tmp_path / "bad.h5"
    make(path)
    for reader in (validate, read_spikes, read_metadata, summary):
        with pytest.raises(FileFormatError) as info:
            reader(path)
        message = str(info.value)
        assert str(path) in message and problem in message and "\n" not in message


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileFormatError, match="no such file"):
        read_spikes(tmp_path / "nope.h5")
    with pytest.raises(FileFormatError, match="is a directory"):
        validate(tmp_path)


# ----------------------------------------------------------------------------- other tools


@pytest.mark.parametrize("where, value", [("group", "by_time"), ("group", b"time"),
                                          ("node_ids", "by_time"), ("group", None)])
def test_reads_bmtk_style_file(tmp_path, where, value):
    path = tmp_path / "bmtk.h5"
    with h5py.File(path, "w") as f:
        f.attrs["magic"] = np.uint32(0x0A7A)
        g = f.create_group("spikes/v1")
        g["timestamps"] = np.array([0.5, 1.25, 3.0])        # no units attribute
        g["node_ids"] = np.array([4, 0, 4], dtype=np.int64)
        if value is not None:
            (g if where == "group" else g["node_ids"]).attrs["sorting"] = value
    t = read_spikes(path)["v1"]
    assert t.timestamps.tolist() == [0.5, 1.25, 3.0] and t.node_ids.tolist() == [4, 0, 4]
    assert t.sorting == ("none" if value is None else "by_time")
    assert t.values is None and t.dt is None and t.n_nodes is None
    assert t.steps(0.25).tolist() == [2, 5, 12]
    with pytest.raises(ConfigError, match="dt"):
        t.steps()
    assert read_metadata(path) == {}
    text = summary(path)
    assert "no /spikelm group" in text and "2 active" in text


def test_seconds_are_converted_to_ms(tmp_path):
    path = tmp_path / "s.h5"
    with h5py.File(path, "w") as f:
        _pop(f, ts=np.array([0.001, 0.002, 0.5]))["timestamps"].attrs["units"] = "s"
    assert np.allclose(read_spikes(path)["p"].timestamps, [1.0, 2.0, 500.0])


def test_libsonata_reads_spikes_and_reports(tmp_path):
    libsonata = pytest.importorskip("libsonata", reason="libsonata not installed (it comes with the dev extra)")
    path = tmp_path / "run.h5"
    with SpikeWriter(path, {"exc": 5, "inh": 2}, 0.5, signed={"inh": True}) as w:
        w.append("exc", [0, 2, 2, 9], [1, 0, 4, 1])
        w.append("inh", [3], [1], [-1])
        w.add_state("exc", "v", [0, 3], [0, 2, 4], np.arange(6.0).reshape(3, 2), units="mV")
    spikes = libsonata.SpikeReader(str(path))
    assert sorted(spikes.get_population_names()) == ["exc", "inh"]
    exc = spikes["exc"]
    assert exc.sorting == "by_time" and exc.times == (0.0, 4.5)
    assert exc.get() == [(1, 0.0), (0, 1.0), (4, 1.0), (1, 4.5)]
    report = libsonata.SomaReportReader(str(path))["exc"]
    assert report.times == (0.0, 3.0, 1.0) and report.data_units == "mV"
    frame = report.get()
    assert list(frame.ids) == [0, 3]
    assert np.array_equal(np.asarray(frame.data), np.arange(6.0).reshape(3, 2))


def test_summary_reports_rates_and_synops(tmp_path):
    path = tmp_path / "run.h5"
    with SpikeWriter(path, {"exc": 10, "inh": 4}, 1.0,
                     metadata={"seed": 42, "backend": "numba"}) as w:
        w.append("exc", np.arange(50) * 10, np.arange(50) % 10)
        w.add_weights("exc->inh", 0, np.ones(3))
        w.add_state("inh", "v", [0], [0, 1], np.zeros((2, 1)), units="mV")
        w.finish({"steps": 1000, "synops": {"exc->inh": 1234567, "inh->exc": 3}})
    text = summary(path)
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert "dt: 1 ms" in text and "steps: 1000 (1000 ms)" in text
    assert "backend: numba" in text and "seed: 42" in text and "spikelm 0.1.0" in text
    assert lines["exc"].split()[1:4] == ["10", "50", "5.000"]      # 50 spikes/10 neurons/1 s
    assert lines["inh"].split()[1:4] == ["4", "0", "0.000"]
    assert "1,234,567" in lines["exc->inh"] and "1,234,570" in lines["total"]
    assert "state inh/v: 1 nodes x 2 frames (mV)" in text
    assert "weights exc->inh: 1 snapshots x 3 synapses" in text


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n_nodes=st.integers(1, 6), first=st.integers(0, 1000), stride=st.integers(1, 7),
       sizes=st.lists(st.integers(1, 5), min_size=1, max_size=4), seed=st.integers(0, 99))
def test_state_round_trip_over_several_calls(tmp_path, n_nodes, first, stride, sizes, seed):
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(50, size=n_nodes, replace=False))
    data = rng.normal(size=(sum(sizes), n_nodes)).astype(np.float32)
    steps = first + stride * np.arange(sum(sizes))
    path = tmp_path / "state.h5"
    with SpikeWriter(path, {"p": 50}, 0.25) as w:
        at = 0
        for size in sizes:
            w.add_state("p", "v", ids, steps[at:at + size], data[at:at + size])
            at += size
    got_ids, times, got = read_state(path, "p", "v")
    assert np.array_equal(got_ids, ids) and np.array_equal(got, data)
    assert np.allclose(times, steps * 0.25)
    with h5py.File(path, "r") as f:
        t = f["report/p/mapping/time"]
        known = stride if sum(sizes) > 1 else 1            # one frame has no spacing yet
        assert t.attrs["first_step"] == first and t.attrs["step_stride"] == known


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dt=st.sampled_from([0.1, 0.25, 1.0, 2.0]), seed=st.integers(0, 10_000),
       n_spikes=st.integers(0, 5000), batches=st.integers(1, 7))
def test_scaleoffset_files_read_back_exactly(tmp_path, dt, seed, n_spikes, batches):
    """Lossless whatever dt: whole-number timestamps are packed, others stored plain; chunks
    filled over several appends (and the int16 widening of values) keep every spike."""
    rng = np.random.default_rng(seed)
    steps = np.sort(rng.integers(0, 200_000, n_spikes))
    ids = rng.integers(0, 3000, n_spikes)
    values = rng.choice([-1, 1, 4, -300], n_spikes)
    path = tmp_path / f"so_{seed}_{dt}.h5"
    with SpikeWriter(path, {"p": 3000}, dt, signed=True, compress="scaleoffset", chunk=777) as w:
        for part in np.array_split(np.arange(n_spikes), batches):
            w.append("p", steps[part], ids[part], values[part])
    table = read_spikes(path)["p"]
    np.testing.assert_array_equal(table.node_ids, ids.astype(np.uint64))
    np.testing.assert_array_equal(table.values, values)
    np.testing.assert_array_equal(table.timestamps, steps.astype(np.float64) * dt)   # bit for bit
    with h5py.File(path, "r") as f:
        packed = f["spikes/p/timestamps"].scaleoffset is not None
        assert f["spikes/p/node_ids"].scaleoffset is not None and packed == float(dt).is_integer()


def test_compress_options_and_time_unit_are_checked(tmp_path):
    for bad in ("gzip", "lzf", 3):
        with pytest.raises(ConfigError, match="compress: got .*allowed: none, scaleoffset, deflate"):
            SpikeWriter(tmp_path / "a.h5", {"p": 1}, 1.0, compress=bad)
    with pytest.raises(ConfigError, match="time_unit: got 'steps'; allowed: ms, step"):
        SpikeWriter(tmp_path / "b.h5", {"p": 1}, 1.0, time_unit="steps")
    with pytest.raises(ConfigError, match="with time_unit 'step'; allowed: 1.0"):
        SpikeWriter(tmp_path / "c.h5", {"p": 1}, 0.1, time_unit="step")
    assert not list(tmp_path.iterdir())          # nothing left behind by a refused writer
    with SpikeWriter(tmp_path / "d.h5", {"p": 2}, 1.0, compress=True) as w:   # the older bool form
        w.append("p", [0, 1], [1, 0])
    with h5py.File(tmp_path / "d.h5", "r") as f:
        assert f["spikes/p/node_ids"].compression == "gzip"


def test_step_files_read_as_steps(tmp_path):
    path = tmp_path / "lm.h5"
    with SpikeWriter(path, {"h0.q": 4}, 1.0, signed=True, time_unit="step", compress="scaleoffset") as w:
        w.append("h0.q", [3, 3, 9], [0, 2, 1], [1, -1, 1])
        w.finish({"steps": 10})
    table = read_spikes(path)["h0.q"]
    assert table.time_unit == "step" and table.steps().tolist() == [3, 3, 9]
    assert read_metadata(path)["time_unit"] == "step"
    text = summary(path)
    assert "time unit: step" in text and "per 1k steps" in text and "Hz" not in text
    # 3 spikes / 4 neurons / 10 steps = 75 per 1,000 steps
    assert [ln for ln in text.splitlines() if ln.strip().startswith("h0.q")][0].split()[3] == "75.000"
    libsonata = pytest.importorskip("libsonata", reason="libsonata not installed (it comes with the dev extra)")
    pop = libsonata.SpikeReader(str(path))["h0.q"]
    assert pop.time_units == "step" and pop.get() == [(0, 3.0), (2, 3.0), (1, 9.0)]
