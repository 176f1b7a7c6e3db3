"""The shared guards of issue 27, one regression test per root cause.

- check-first output validation (``io.outputs.check_output``) and one file mode for every output;
- one guarded open for every HDF5 reader (``io.hdf5.open_hdf5``) and every text file
  (``io.textfile``): pipes, directories, truncated, flipped, foreign files, deep nesting;
- stored counts and clocks read back through ``io.stored`` (bounded before they drive a loop);
- plasticity patterns resolved without overlaps (``plasticity.patterns.assign``).
"""
from __future__ import annotations

import os
import re
import stat

import h5py
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import fuzz_settings
from spikelm.errors import ConfigError, FileFormatError
from spikelm.io.hdf5 import open_hdf5, reading
from spikelm.io.outputs import atomic_output, check_output, same_file
from spikelm.io.stored import MAX_CLOCK, stored_array, stored_float, stored_int
from spikelm.io.textfile import MAX_DEPTH, depth, load_toml, parse_toml, read_text
from spikelm.plasticity.patterns import assign

# -- outputs ------------------------------------------------------------------------------------


def test_check_output_refuses_before_anything_is_written(tmp_path):
    src = tmp_path / "in.toml"
    src.write_text("x = 1\n")
    (tmp_path / "adir").mkdir()
    os.symlink(src, tmp_path / "link.toml")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    cases = [(tmp_path / "adir", "is a directory"), (tmp_path / "no" / "x.h5", "does not exist"),
             (src, "is also the scenario"), (tmp_path / "link.toml", "is also the scenario"),
             (tmp_path / "adir" / ".." / "in.toml", "is also the scenario"), (fifo, "not a regular file"),
             ("", "empty file name")]
    for path, says in cases:
        with pytest.raises(ConfigError, match=says):
            check_output(path, "-o", inputs={"scenario": src}, overwrite=True)
    kept = tmp_path / "result.h5"
    kept.write_bytes(b"an earlier result")
    with pytest.raises(ConfigError, match="exists and is kept; pass --overwrite"):
        check_output(kept, "--out", overwrite=False)
    check_output(kept, "--out", overwrite=True)
    check_output(tmp_path / "new.h5", "--out", overwrite=False)
    assert kept.read_bytes() == b"an earlier result" and src.read_text() == "x = 1\n"
    assert same_file(src, tmp_path / "link.toml") and not same_file(src, tmp_path / "new.h5")


def test_a_read_only_directory_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who may write anywhere (root): a read-only directory cannot be made")
        with pytest.raises(ConfigError, match="not writable"):
            check_output(ro / "x.h5", "--out")
    finally:
        ro.chmod(0o700)


def test_atomic_output_gives_every_file_the_umask_mode_and_keeps_the_old_on_failure(tmp_path):
    old = os.umask(0o022)
    try:
        plain = tmp_path / "plain.txt"
        plain.write_text("a")
        with atomic_output(tmp_path / "atomic.txt") as tmp, open(tmp, "w") as f:
            f.write("b")
        mode = stat.S_IMODE(os.stat(tmp_path / "atomic.txt").st_mode)
        assert mode == stat.S_IMODE(os.stat(plain).st_mode) == 0o644      # not mkstemp's 0600
        with pytest.raises(RuntimeError), atomic_output(tmp_path / "atomic.txt") as tmp:
            open(tmp, "w").write("half")
            raise RuntimeError("the writer failed")
        assert (tmp_path / "atomic.txt").read_text() == "b"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["atomic.txt", "plain.txt"]
    finally:
        os.umask(old)


# -- HDF5 and text files ----------------------------------------------------------------------


@pytest.fixture
def good_h5(tmp_path):
    path = tmp_path / "good.h5"
    with h5py.File(path, "w", libver=("v110", "v110")) as f:
        f["x"] = np.arange(5000.0)
    return path


def test_open_hdf5_names_each_kind_of_bad_file(tmp_path, good_h5):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    text = tmp_path / "t.h5"
    text.write_text("not hdf5\n")
    data = good_h5.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    for path, says in ((fifo, "named pipe"), (tmp_path, "is a directory"), (text, "not an HDF5 file"),
                       (cut, "truncated"), (tmp_path / "none.h5", "no such file")):
        with pytest.raises(FileFormatError, match=says) as e:
            open_hdf5(path, "a thing")
        assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)
    with open_hdf5(good_h5, "a thing") as f:
        assert f["x"].shape == (5000,)


@fuzz_settings(30)
@given(st.data())
def test_flipped_bytes_open_or_are_refused_in_one_line(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("flip")
    path = d / "f.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(300.0)
    blob = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 6))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    path.write_bytes(bytes(blob))
    try:
        with open_hdf5(path, "a thing") as f, reading(path, "a thing"):
            f["x"][()]
    except FileFormatError as e:
        assert str(e).startswith(str(path)) and "\n" not in str(e)


def test_text_files_and_toml(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"x = '\xff\xfe'\n")
    for path, says in ((fifo, "named pipe"), (tmp_path, "is a directory"), (bad, "not UTF-8")):
        with pytest.raises(FileFormatError, match=says):
            read_text(path, "a plasticity file")
    big = tmp_path / "big.txt"
    big.write_text("x" * 100)
    with pytest.raises(FileFormatError, match="at most 10 bytes"):
        read_text(big, "a calibration text", max_bytes=10)
    for nested in ("x = " + "[" * 3000 + "]" * 3000, "x = " + "[" * 60 + "]" * 60,
                   "\n".join(f"[{'.'.join(['a'] * k)}]" for k in (1, 40))):
        f = tmp_path / "deep.toml"
        f.write_text(nested)
        with pytest.raises(FileFormatError, match="nested") as e:
            load_toml(f, "a plasticity file")
        assert str(e.value).startswith(str(f))
    assert parse_toml("a.b.c = [[1]]", "x") == {"a": {"b": {"c": [[1]]}}}
    assert depth({"a": {"b": {"c": [[1]]}}}) == 5 and depth(3) == 0
    k = MAX_DEPTH - 1          # a table holding k nested arrays: MAX_DEPTH levels, the most allowed
    assert depth(parse_toml("x = " + "[" * k + "]" * k, "x")) == MAX_DEPTH
    with pytest.raises(FileFormatError, match=f"nested {MAX_DEPTH + 1} levels deep"):
        parse_toml("x = " + "[" * (k + 1) + "]" * (k + 1), "x")


def test_info_and_plot_never_block_on_a_named_pipe(tmp_path):
    from fuzzing import assert_refused, run_cli

    fifo = tmp_path / "pipe.h5"
    os.mkfifo(fifo)
    for argv in (["info", fifo], ["plot", fifo, "--out", tmp_path / "p.png"], ["run", fifo],
                 ["nir", "import", fifo, "--dt", "0.1", "-o", tmp_path / "s.toml"]):
        assert_refused(run_cli(argv, bound=20), str(fifo), "named pipe")


# -- stored values --------------------------------------------------------------------------------


def test_stored_values_are_bounded_before_use():
    assert stored_int(np.int64(5), "f: t") == 5 and stored_int(np.array(7), "f: t", hi=7) == 7
    for bad, says in ((2**62 + 1, "expected an integer in"), (-1, "expected an integer in"), (1.0, "float"),
                      (True, "bool"), ("6", "str"), (np.float64(3), "float64"), (None, "NoneType")):
        with pytest.raises(FileFormatError, match=says) as e:
            stored_int(bad, "f: clock")
        assert str(e.value).startswith("f: clock: ")
    assert stored_int(MAX_CLOCK, "f: t") == MAX_CLOCK
    assert stored_float(np.float32(0.5), "f: dt", positive=True) == 0.5
    for bad in (np.nan, np.inf, 0.0, "1", True):
        with pytest.raises(FileFormatError):
            stored_float(bad, "f: dt", positive=True)
    assert stored_array(np.arange(3), "f: counts", "int", shape=(3,), lo=0).sum() == 3
    for bad, kind, says in ((np.array(["a", "b"]), "int", "dtype"), (np.array([1.0, np.nan]), "float", "NaN"),
                            (np.arange(3) - 1, "int", "below"), (np.zeros(4, np.int64), "int", "shape"),
                            (np.array([0.5]), "int", "dtype"), (np.array([b"x"]), "float", "dtype")):
        with pytest.raises(FileFormatError, match=says):
            stored_array(bad, "f: counts", kind, shape=(len(bad),) if says != "shape" else (3,), lo=0)


def test_checkpoint_counters_are_checked(tmp_path):
    """Negative SynOp counts or event counters that break pushed = delivered + pending resumed silently."""
    import spikelm.network as sn
    from spikelm.io import checkpoint
    from spikelm.simulator import Simulator

    def net():
        n = sn.Network(dt=0.5, seed=0)
        n.add_population("a", "lif", 5, params={"e_l": -45.0, "t_ref": 0.0})
        n.connect("a", "a", weight=1.0)
        return n

    sim = Simulator(net(), backend="numpy")
    sim.run(40)
    good = tmp_path / "ck.h5"
    checkpoint.save(sim, good)
    for name, change, says in (("synops", lambda a: -a - 1, "below 0"),
                               ("qtotals", lambda a: a + np.array([1, 0]), "pushed = delivered + pending"),
                               ("qcount", lambda a: a - 5, "below 0")):
        bad = tmp_path / f"{name}.h5"
        bad.write_bytes(good.read_bytes())
        with h5py.File(bad, "a") as f:
            v = f[f"checkpoint/{name}"][()]
            del f[f"checkpoint/{name}"]
            f[f"checkpoint/{name}"] = change(v)
        with pytest.raises(FileFormatError, match=re.escape(says)):
            checkpoint.load(Simulator(net(), backend="numpy"), bad)
    checkpoint.load(Simulator(net(), backend="numpy"), good)


# -- plasticity patterns ----------------------------------------------------------------------------


NAMES = ["h0.fc", "h0.attn", "h1.fc", "h1.attn", "head"]


def test_patterns_resolve_exact_over_glob_and_refuse_overlaps():
    assert assign(["h*.fc", "h0.fc"], NAMES, "f: populations", "population") == {"h0.fc": "h0.fc", "h1.fc": "h*.fc"}
    assert assign(["h0.fc", "h*.fc"], NAMES, "f: populations", "population") == {"h0.fc": "h0.fc", "h1.fc": "h*.fc"}
    for patterns, says in ((["h*.fc", "h0.*"], "'h0.fc' is also matched by 'h*.fc'"),
                           (["*.attn", "h1.[a]*"], "'h1.attn' is also matched by '*.attn'"),
                           (["nothing*"], "no population of this model is 'nothing*'")):
        with pytest.raises(ConfigError, match=re.escape(says)) as e:
            assign(patterns, NAMES, "f: populations", "population")
        assert str(e.value).startswith("f: populations.")


@fuzz_settings(60)
@given(st.lists(st.sampled_from(["h*", "*.fc", "h0.fc", "h1.*", "*", "head", "h?.attn", "h[01].fc"]),
                min_size=1, max_size=4, unique=True))
def test_patterns_never_depend_on_their_order(patterns):
    """Any order of the same patterns gives the same assignment, or the same refusal."""
    def outcome(ps):
        try:
            return assign(ps, NAMES, "f: p", "population")
        except ConfigError:
            return "refused"

    first = outcome(patterns)
    assert outcome(list(reversed(patterns))) == first
    if first != "refused":
        for name, p in first.items():   # an exact name wins; otherwise the only pattern matching it
            import fnmatch

            matching = [q for q in patterns if q == name or fnmatch.fnmatchcase(name, q)]
            assert p == name if name in patterns else matching == [p]
