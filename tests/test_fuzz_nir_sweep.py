"""Fuzz: NIR files in and out, ``--set`` values, scheduler files and every writing option (issue 27).

A good NIR graph is exported from ``tests/data/nir_features.toml`` (every node kind spikelm
writes: spike and Poisson inputs, LIF and CubaLIF neurons, delays, four kinds of stimulus), then
broken: every value of every ``spikelm`` metadata JSON (deleted, of each wrong type, non-finite,
extreme), every object and attribute (deleted, swapped, linked away), flipped bytes and
truncations. ``nir import`` must exit 0 or 2 with one line, never change its input, and a
scenario it writes must run: an import that writes what ``spikelm run`` refuses is a silent
acceptance. ``nir export`` of a broken scenario or seed: what it writes, its own import reads.
Generated ``--set`` values (thousands of digits, deep nesting, any text) and scheduler files
(any JSON, any bytes) are refused in one line; every option that writes is checked first.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from fuzzing import (assert_clean, assert_refused, assert_unchanged, bad_outputs, digest, fuzz_settings,
                     json_mutations, run_cli, structural_mutations)

pytest.importorskip("nir", reason="the NIR fuzz needs the optional nir package (pip install -e '.[nir]')")

BASE = Path(__file__).parent / "data" / "nir_features.toml"


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz_nir")
    scenario = d / "s.toml"
    shutil.copy(BASE, scenario)
    o = run_cli(["nir", "export", scenario, "-o", d / "g.nir"])
    assert o.rc == 0, o.err
    return {"dir": d, "scenario": scenario, "nir": d / "g.nir"}


def _import_and_run(good, f, what):
    """Import ``f``: clean, input unchanged; a scenario written must run (exit 0)."""
    out = good["dir"] / "imported.toml"
    out.unlink(missing_ok=True)
    before = digest([f])
    o = run_cli(["nir", "import", f, "--dt", "0.5", "-o", out])
    assert_clean(o, what)
    assert_unchanged(before, what)
    if o.rc == 2:
        assert not out.exists(), f"{what}: a refused import left {out}"
        return o
    r = run_cli(["run", out, "--steps", "2", "--backend", "numpy", "--no-progress"])
    assert r.rc == 0, f"{what}: nir import wrote a scenario that spikelm run refuses: {r.err}"
    return o


def _metadata(path):
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: out.__setitem__(n, o[()]) if n.endswith("metadata/spikelm") else None)
    return {k: json.loads(v) for k, v in out.items()}


def _with_json(src, dst, key, value):
    shutil.copy(src, dst)
    with h5py.File(dst, "a") as f:
        del f[key]
        f.create_dataset(key, data=value if isinstance(value, str) else json.dumps(value), dtype=h5py.string_dtype())


@pytest.mark.slow
def test_every_metadata_value_broken(good):
    meta = _metadata(good["nir"])
    cases = [(k, what, value) for k, tree in meta.items() for what, value in json_mutations(tree)]
    cases += [(k, "not JSON", "{not json") for k in meta] + [(k, "a JSON list", "[1, 2]") for k in meta]
    assert len(cases) > 250
    f = good["dir"] / "meta.nir"
    for key, what, value in cases:
        _with_json(good["nir"], f, key, value)
        _import_and_run(good, f, f"{key}: {what}")


def test_the_reported_cases(good):
    """A Poisson rate of -80 was written to a scenario that run refused; a seed of 2^70 likewise."""
    f = good["dir"] / "reported.nir"
    meta = _metadata(good["nir"])
    rate = dict(meta["node/nodes/rand/metadata/spikelm"], params={"rate": -80.0})
    _with_json(good["nir"], f, "node/nodes/rand/metadata/spikelm", rate)
    assert_refused(_import_and_run(good, f, "rate -80"), str(f), "populations.rand.params.rate", ">= 0")
    seed = dict(meta["node/metadata/spikelm"], seed=2**70)
    _with_json(good["nir"], f, "node/metadata/spikelm", seed)
    assert_refused(_import_and_run(good, f, "seed 2^70"), str(f), "network.seed")


@pytest.mark.slow
def test_every_object_and_attribute_broken(good):
    cases = structural_mutations(good["nir"])
    assert len(cases) > 400
    f = good["dir"] / "structural.nir"
    for k, (what, mutate, _) in enumerate(cases[::2]):     # every other case: each kind on half the objects
        shutil.copy(good["nir"], f)
        with h5py.File(f, "a") as h:
            mutate(h)
        _import_and_run(good, f, what)
        if k % 4 == 0:
            assert_clean(run_cli(["info", f]), f"info / {what}")


@fuzz_settings(30)
@given(st.data())
def test_flipped_and_cut_nir_files(good, data):
    blob = bytearray(good["nir"].read_bytes())
    if data.draw(st.booleans(), label="cut"):
        blob = blob[: data.draw(st.integers(0, len(blob) - 1), label="length")]
    else:
        for _ in range(data.draw(st.integers(1, 8), label="flips")):
            blob[data.draw(st.integers(0, len(blob) - 1), label="offset")] = data.draw(st.integers(0, 255))
    f = good["dir"] / "flipped.nir"
    f.write_bytes(bytes(blob))
    _import_and_run(good, f, "flipped or cut")
    assert_clean(run_cli(["info", f]), "info of a flipped or cut NIR file")


# -- export: what it writes, its own import reads ---------------------------------------------------


def _export_and_back(good, scenario, what, *extra):
    out = good["dir"] / "exported.nir"
    out.unlink(missing_ok=True)
    before = digest([scenario])
    o = run_cli(["nir", "export", scenario, "-o", out, *extra])
    assert_clean(o, what)
    assert_unchanged(before, what)
    if o.rc == 0:       # what spikelm writes, spikelm reads: an export its own import refuses is a silent acceptance
        back = _import_and_run(good, out, f"{what}, imported back")
        assert back.rc == 0, f"{what}: nir export wrote a file that nir import refuses: {back.err}"
    else:
        assert not out.exists(), f"{what}: a refused export left {out}"


@pytest.mark.parametrize("seed", ["0", "9223372036854775807", "9223372036854775808", str(2**70), "-1", "-0"])
def test_export_seed_range(good, seed):
    _export_and_back(good, good["scenario"], f"--seed {seed}", "--seed", seed)


def test_export_of_broken_scenarios(good):
    import tomllib

    tomli_w = pytest.importorskip("tomli_w", reason="tomli-w writes the generated scenarios (dev extra)")
    data = tomllib.loads(BASE.read_text())
    cases = json_mutations(data)
    assert len(cases) > 150
    f = good["dir"] / "broken.toml"
    for what, tree in cases[::2]:           # every other case: all kinds, half of the time
        f.write_text(tomli_w.dumps(tree))
        _export_and_back(good, f, what)


# -- every option that writes is checked first -------------------------------------------------------


def test_writing_options_refuse_bad_paths_before_any_work(good):
    d = good["dir"]
    run_file = d / "run.h5"
    assert run_cli(["run", good["scenario"], "--steps", "5", "--backend", "numpy", "--no-progress",
                    "--out", run_file, "--checkpoint", d / "ck.h5"]).rc == 0
    commands = {
        "nir export -o": (lambda p: ["nir", "export", good["scenario"], "-o", p], [good["scenario"]]),
        "nir import -o": (lambda p: ["nir", "import", good["nir"], "--dt", "0.5", "-o", p], [good["nir"]]),
        "run --out": (lambda p: ["run", good["scenario"], "--steps", "2", "--no-progress", "--out", p],
                      [good["scenario"]]),
        "run --checkpoint": (lambda p: ["run", good["scenario"], "--steps", "2", "--no-progress", "--checkpoint", p],
                             [good["scenario"]]),
        "run --resume --out": (lambda p: ["run", good["scenario"], "--steps", "2", "--no-progress",
                                          "--resume", d / "ck.h5", "--out", p], [good["scenario"], d / "ck.h5"]),
        "repair -o": (lambda p: ["repair", run_file, "-o", p], [run_file]),
        "plot --out": (lambda p: ["plot", run_file, "--out", p], [run_file]),
    }
    n = 0
    for name, (argv, inputs) in commands.items():
        for what, path, needle in bad_outputs(d, inputs):
            if name == "plot --out" and needle == "--overwrite":
                continue                # a picture is redrawn
            watched = [*inputs, d / "existing.out", good["nir"], run_file]
            before = digest(watched)
            o = run_cli(argv(path))
            if name == "plot --out" and needle == "is also the":
                needle = "allowed suffixes"     # a run file is no picture: refused for its suffix first
            assert_refused(o, name.split()[-1], needle, what=f"{name} {what}")
            assert_unchanged(before, f"{name} {what}")
            n += 1
    assert n >= 50


# -- --set values and scheduler files ----------------------------------------------------------------

_SET_TEXT = st.one_of(
    st.integers(1, 9000).map(lambda k: "9" * k),
    st.integers(1, 4000).map(lambda k: "[" * k + "]" * k),
    st.integers(1, 4000).map(lambda k: "{a=" * k + "1" + "}" * k),
    st.text(max_size=40),
    st.from_regex(r"-?\d{1,30}(\.\d{0,30})?(e-?\d{1,5})?", fullmatch=True),
)


@fuzz_settings(40)
@given(st.sampled_from(["seed", "delta.tau_m", "td.weight", "run.duration", "rand.rate", "dc.delay", "network.dt"]),
       _SET_TEXT)
@example(path="td.weight", text="[]")   # refused by the built network, which did not name the --set
def test_any_set_value_runs_or_is_refused(good, path, text):
    o = run_cli(["run", good["scenario"], "--steps", "2", "--backend", "numpy", "--no-progress",
                 "--set", f"{path}={text}"])
    assert_clean(o, f"--set {path}={text[:60]!r}")
    if o.rc == 2:
        assert "--set" in o.lines[0]


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                     max_leaves=6)


@fuzz_settings(30)
@given(st.one_of(_JSON.map(json.dumps), _JSON.map(lambda v: json.dumps({"address": v})),
                 st.binary(max_size=64).map(lambda b: b.decode("latin-1"))))
def test_any_scheduler_file_is_refused_in_one_line(good, text):
    pytest.importorskip("distributed", reason="sweeps run on Dask distributed (the distributed extra)")
    from spikelm.scaleout.cluster import _ADDRESS

    try:
        address = json.loads(text).get("address")
    except (ValueError, AttributeError):
        address = None
    assume(not (isinstance(address, str) and _ADDRESS.match(address)))   # a real address: Dask would dial it
    f = good["dir"] / "scheduler.json"
    f.write_text(text, encoding="latin-1")
    o = run_cli(["sweep", good["scenario"], "--set", "seed=0,1", "--steps", "2", "--out", good["dir"] / "sweep",
                 "--scheduler", f, "--no-progress"])
    assert_refused(o, str(f), what=f"scheduler file {text[:60]!r}")


def test_the_reported_set_and_scheduler_cases(good):
    """A --set value of 6,000 digits and one nested 3,000 deep raised; a garbage scheduler file raised
    an AssertionError inside distributed."""
    run = ["run", good["scenario"], "--steps", "2", "--backend", "numpy", "--no-progress"]
    assert_refused(run_cli([*run, "--set", "seed=" + "9" * 6000]), "--set seed", "4,300 digits")
    assert_refused(run_cli([*run, "--set", "seed=" + "[" * 3000 + "]" * 3000]), "--set seed", "nested")
    assert_refused(run_cli([*run, "--set", "delta.tau_m=" + "9" * 400]), "populations.delta.params.tau_m", "64-bit")
    pytest.importorskip("distributed", reason="sweeps run on Dask distributed (the distributed extra)")
    for text in ("garbage", '{"address": 5}', "[1, 2]", '{"address": "nowhere"}'):
        f = good["dir"] / "scheduler.json"
        f.write_text(text)
        o = run_cli(["sweep", good["scenario"], "--set", "seed=0,1", "--out", good["dir"] / "sweep", "--scheduler", f])
        assert_refused(o, str(f), what=text)
