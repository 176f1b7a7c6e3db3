"""Fuzz: a scenario file with every feature, broken in every field (issue 12, "Done when" 1).

Generated from ``tests/data/every_feature.toml``: every key deleted, every value replaced by
values of each wrong type, every number by NaN and infinities and by extreme magnitudes,
plus text garbage (hypothesis), truncations, and any value at any place (hypothesis). Each
case runs ``spikelm run`` in-process (tiny run, numpy backend, a time bound) and must exit 2
with one line naming the file and the broken field, or (where the change leaves a valid
scenario: an optional key deleted, a large but finite number) exit 0; never a traceback or a
hang, and the scenario and an existing output file stay as they were.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import (DELETE, EXTREME, NON_FINITE, WRONG_TYPES, assert_clean, assert_refused, assert_unchanged,
                     digest, dotted, fuzz_settings, kind_of, leaves, replaced, run_cli)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib
tomli_w = pytest.importorskip("tomli_w", reason="tomli-w writes the generated scenarios (dev extra)")

BASE = Path(__file__).parent / "data" / "every_feature.toml"
DATA = tomllib.loads(BASE.read_text())
#: Keys whose values are "values" (a number, a list or a distribution): a number replacing
#: their table is valid there, so it is not a wrong type.
VALUE_FIELDS = ("weight", "delay")


def _is_value_field(path):
    return path[-1] in VALUE_FIELDS or (len(path) >= 2 and path[-2] in ("init", "random"))


def scenario_cases():
    """(kind, path, new value, expected) for every field of the base scenario."""
    cases = []
    for path, value in leaves(DATA):
        cases.append(("deleted", path, DELETE, "either"))
        kind = kind_of(value)
        for w in WRONG_TYPES[kind]:
            if path == ("description",) and isinstance(w, str):
                continue                     # free text: any string is a description
            if _is_value_field(path) and isinstance(w, (int, float)) and not isinstance(w, bool):
                continue
            cases.append(("wrong type", path, w, "refused"))
        if kind == "number":
            cases += [("non-finite", path, w, "refused") for w in NON_FINITE]
            cases += [("extreme", path, w, "either") for w in EXTREME]
    return cases


CASES = scenario_cases()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_scenarios")


def run_scenario(workdir, text, name):
    f = workdir / f"{name}.toml"
    out = workdir / f"{name}.h5"
    if isinstance(text, bytes):
        f.write_bytes(text)
    else:
        f.write_text(text)
    out.write_bytes(b"an earlier result")      # must survive a refused run
    before = digest([f])
    o = run_cli(["run", f, "--steps", "2", "--backend", "numpy", "--no-progress", "--out", out, "--overwrite"])
    assert_unchanged(before, name)
    if o.rc != 0:
        assert out.read_bytes() == b"an earlier result", f"{name}: the existing output was changed"
        assert not Path(str(out) + ".partial").exists() or o.rc == 2
    return f, o


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}:{dotted(c[1])}={c[2] if c[2] is not DELETE else ''}"[:90]
                                             for c in CASES])
def test_broken_field(workdir, case):
    kind, path, value, expected = case
    name = f"case{CASES.index(case)}"
    text = tomli_w.dumps(replaced(DATA, path, value))
    f, o = run_scenario(workdir, text, name)
    what = f"{kind} {dotted(path)} = {value!r}"
    if expected == "refused":
        # the message names the file and the field (or the table holding it: a value too
        # large for its population is refused at the population)
        assert_refused(o, str(f), what=what)
        prefixes = [dotted(path[:k]) for k in range(min(2, len(path)), len(path) + 1)]
        assert any(p in o.lines[0] for p in prefixes), f"{what}: no field of {prefixes} in {o.lines[0]}"
    else:
        assert_clean(o, what)
        if o.rc == 2:
            assert str(f) in o.lines[0]


def test_the_cases_cover_every_kind_and_are_many():
    """At least 300 inputs that must be refused, of every kind the issue lists."""
    kinds = {c[0] for c in CASES}
    assert kinds == {"deleted", "wrong type", "non-finite", "extreme"}
    assert sum(c[3] == "refused" for c in CASES) >= 300
    assert {c[1][0] for c in CASES} >= {"network", "populations", "projections", "stimuli", "record", "run"}


TEXT_GARBAGE = [
    b"", b"\xff\xfe\x00garbage", b"x = " + b"[" * 3000 + b"]" * 3000, b"[network]\ndt = \n",
    b"[network\n", b"[network]\ndt = 0.1\n[populations.a]\nmodel = 'lif'\nn = 5\n[populations.a]\nn = 3\n",
    BASE.read_bytes()[:200], BASE.read_bytes().replace(b"=", b"==", 1), b"\x00" * 64,
]


@pytest.mark.parametrize("blob", TEXT_GARBAGE, ids=range(len(TEXT_GARBAGE)))
def test_text_garbage_is_refused(workdir, blob):
    f, o = run_scenario(workdir, blob, f"garbage{TEXT_GARBAGE.index(blob)}")
    assert_refused(o, str(f))


@fuzz_settings(30)
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode)))
def test_random_bytes_are_refused(workdir, blob):
    f, o = run_scenario(workdir, blob, "random_bytes")
    assert_refused(o, str(f))


@fuzz_settings(30)
@given(st.integers(0, len(BASE.read_bytes())))
def test_any_truncation_runs_or_is_refused(workdir, cut):
    f, o = run_scenario(workdir, BASE.read_bytes()[:cut], "truncated")
    assert_clean(o, f"truncated at byte {cut}")


_TOML_VALUES = st.recursive(
    st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(min_size=1, max_size=5), inner, max_size=3),
    max_leaves=8)
_PATHS = [p for p, _ in leaves(DATA)]


@fuzz_settings(60)
@given(st.sampled_from(_PATHS), _TOML_VALUES)
def test_any_value_anywhere_runs_or_is_refused(workdir, path, value):
    text = tomli_w.dumps(replaced(DATA, path, value))
    f, o = run_scenario(workdir, text, "any_value")
    assert_clean(o, f"{dotted(path)} = {value!r}")
