"""``--set PATH=VALUES``: path resolution, value parsing, checks, and `spikelm run --set`.

The defining property: overriding a field with --set gives exactly the run of a scenario
file in which that field was edited by hand.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from spikelm.cli import main
from spikelm.errors import ConfigError
from spikelm.io.scenario import load_scenario
from spikelm.io.sonata import read_metadata, read_spikes
from spikelm.scaleout import overrides as ov

SMALL = """
[network]
dt = 0.1
seed = 3

[run]
duration = 30.0

[populations.exc]
model = "lif"
n = 60
params = {{ e_l = -49.0, tau_m = {tau_m} }}
init.v = {{ uniform = [-60.0, -50.0] }}

[populations.inh]
model = "lif"
n = 15

[projections.ee]
pre = "exc"
post = "exc"
connect = {{ rule = "fixed_probability", p = {p} }}
weight = 1.5

[projections.ei]
pre = "exc"
post = "inh"
weight = 0.5

[[stimuli]]
kind = "constant_current"
population = "inh"
amplitude = 2.0
"""


def write(tmp_path, name="s.toml", tau_m=20.0, p=0.1):
    path = tmp_path / name
    path.write_text(SMALL.format(tau_m=tau_m, p=p))
    return str(path)


@pytest.fixture
def sc(tmp_path):
    return load_scenario(write(tmp_path))


@pytest.mark.parametrize("name,path", [
    ("seed", ("network", "seed")),
    ("duration", ("run", "duration")),
    ("exc.tau_m", ("populations", "exc", "params", "tau_m")),
    ("exc.n", ("populations", "exc", "n")),
    ("exc.init.v", ("populations", "exc", "init", "v")),
    ("ee.connect.p", ("projections", "ee", "connect", "p")),
    ("ee.weight", ("projections", "ee", "weight")),
    ("network.dt", ("network", "dt")),
    ("stimuli.0.amplitude", ("stimuli", 0, "amplitude")),
])
def test_paths_resolve_to_scenario_fields(sc, name, path):
    assert ov.resolve(name, sc.data) == path


@pytest.mark.parametrize("name,needle", [
    ("nosuch.tau_m", "'nosuch' is not a population"),
    ("tau_m", "one-word path"),
    ("exc.tau_m.x", "one parameter name"),
    ("exc..tau_m", "empty path component"),
    ("exc.tau m", "not a field name"),
])
def test_bad_paths_name_what_is_allowed(sc, name, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)):
        ov.resolve(name, sc.data)


def test_a_name_both_population_and_projection_must_be_spelt_out(tmp_path):
    text = SMALL.format(tau_m=20.0, p=0.1).replace("[projections.ei]", "[projections.inh]")
    (tmp_path / "a.toml").write_text(text)
    sc = load_scenario(tmp_path / "a.toml")
    with pytest.raises(ConfigError, match="both a population and a projection"):
        ov.resolve("inh.weight", sc.data)
    assert ov.resolve("projections.inh.weight", sc.data) == ("projections", "inh", "weight")


numbers = st.one_of(st.integers(-10**6, 10**6),
                    st.floats(allow_nan=False, allow_infinity=False, width=64).filter(lambda x: abs(x) < 1e300))


@given(st.lists(numbers, min_size=1, max_size=8))
def test_comma_lists_of_numbers_parse_back_exactly(values):
    got = ov.parse_values(",".join(repr(v) for v in values), "--set x")
    assert len(got) == len(values)
    for a, b in zip(got, values):
        assert type(a) is type(b) and a == b


@given(st.integers(-1000, 1000), st.integers(0, 50))
def test_ranges_are_inclusive_integer_ranges(lo, width):
    assert ov.parse_values(f"{lo}..{lo + width}", "--set seed") == tuple(range(lo, lo + width + 1))


@given(st.text(max_size=30))
def test_any_value_text_parses_or_gives_one_line_config_error(raw):
    try:
        values = ov.parse_values(raw, "--set x")
    except ConfigError as e:
        assert "\n" not in str(e) and str(e).startswith("--set x")
    else:
        assert values and all(ov._plain(v) for v in values)


def test_brackets_and_quotes_do_not_split_values():
    got = ov.parse_values('{ uniform = [-60, -50] }, [1, 2], "a,b", numpy', "--set x")
    assert got == ({"uniform": [-60, -50]}, [1, 2], "a,b", "numpy")


@pytest.mark.parametrize("text,needle", [
    ("exc.tau_m=abc", "populations.exc.params.tau_m"),
    ("exc.tau_m=-5", "must be > 0"),
    ("exc.tau_x=1", "populations.exc.params.tau_x: unknown field"),
    ("ee.connect.p=1.5", "projections.ee.connect"),
    ("seed=-1", "network.seed"),
    ("exc.n=0", "populations.exc.n"),
    ("stimuli.3.amplitude=1", "index 3 out of range"),
    ("ee.weight={ uniform = [1] }", "projections.ee.weight.uniform"),
    ("exc.tau_m=1979-05-27", "dates"),
    ("exc.tau_m", "expected PATH=VALUES"),
])
def test_bad_values_name_option_and_field(sc, text, needle):
    with pytest.raises(ConfigError) as e:
        ov.check(sc, [ov.parse_set(text, sc.data)])
    msg = str(e.value)
    assert needle in msg and "\n" not in msg and msg.startswith("--set")


def test_grid_first_setting_varies_slowest_and_refuses_duplicates(sc):
    a, b = ov.parse_set("exc.tau_m=10,20", sc.data), ov.parse_set("seed=0..2", sc.data)
    pts = ov.grid([a, b])
    assert [(p[0][1], p[1][1]) for p in pts] == [(10, 0), (10, 1), (10, 2), (20, 0), (20, 1), (20, 2)]
    with pytest.raises(ConfigError, match="given twice"):
        ov.grid([a, ov.parse_set("populations.exc.params.tau_m=5", sc.data)])


def test_override_leaves_the_loaded_scenario_alone(sc):
    new = ov.override(sc, ["exc.tau_m=12.5", "seed=9"])
    assert new.data["populations"]["exc"]["params"]["tau_m"] == 12.5 and new.seed == 9
    assert sc.data["populations"]["exc"]["params"]["tau_m"] == 20.0 and sc.seed == 3
    assert new.build().populations["exc"].params.tau_m == 12.5
    assert new.overrides == [["populations.exc.params.tau_m", 12.5], ["network.seed", 9]]


def test_run_with_set_equals_the_hand_edited_scenario(tmp_path):
    base = write(tmp_path, "base.toml")
    edited = write(tmp_path, "edited.toml", tau_m=12.0, p=0.2)
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    assert main(["run", base, "--set", "exc.tau_m=12.0", "--set", "ee.connect.p=0.2", "--out", str(a),
                 "--no-progress"]) == 0
    assert main(["run", edited, "--out", str(b), "--no-progress"]) == 0
    sa, sb = read_spikes(a), read_spikes(b)
    assert sum(len(t) for t in sa.values()) > 0
    for pop in sb:
        np.testing.assert_array_equal(sa[pop].timestamps, sb[pop].timestamps)
        np.testing.assert_array_equal(sa[pop].node_ids, sb[pop].node_ids)
    assert read_metadata(a)["overrides"] == [["populations.exc.params.tau_m", 12.0],
                                             ["projections.ee.connect.p", 0.2]]
    # and the override did change something: the unedited scenario runs differently
    c = tmp_path / "c.h5"
    assert main(["run", base, "--out", str(c), "--no-progress"]) == 0
    assert len(read_spikes(c)["exc"]) != len(sa["exc"]) or not np.array_equal(
        read_spikes(c)["exc"].node_ids, sa["exc"].node_ids)


@pytest.mark.parametrize("argv,needle", [
    (["--set", "exc.tau_m=oops"], "--set exc.tau_m='oops'"),
    (["--set", "exc.tau_m=10,20"], "a run takes one"),
    (["--set", "bogus=1"], "--set bogus"),
])
def test_run_bad_set_is_one_line_exit_2(tmp_path, capsys, argv, needle):
    out = tmp_path / "x.h5"
    assert main(["run", write(tmp_path), "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spikelm: error: ") and needle in err and err.count("\n") == 1
    assert not out.exists()
