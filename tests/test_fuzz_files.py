"""Fuzz: damaged run files (``spikelm info`` / ``plot``) and checkpoints (``run --resume``), issue 12.

A good run file (spikes, state report, weight snapshots, metadata) and a good checkpoint (with
plasticity state) are written from ``tests/data/every_feature.toml``, then broken in
generated ways: every object deleted, every group made a dataset and every dataset a group
or a scalar, every attribute deleted or given a string, links (external, to itself,
dangling), the damage the issue lists (string dt, non-JSON metadata, NaN times and weights,
scalar ``mapping/node_ids``, swapped report entries, a damaged compressed chunk), truncations
and flipped bytes (hypothesis). Every case exits 2 with one line naming the file, or (where
the damage leaves a readable file: an optional object deleted) 0; never a traceback; the
damaged file itself is never changed and no picture is left behind by a refusal.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzzing import (make_scalar, swap_kind, assert_clean, assert_refused, assert_unchanged, digest, fuzz_settings,
                     run_cli, structural_mutations)

BASE = Path(__file__).parent / "data" / "every_feature.toml"
COMMANDS = {   # what reads a run file: the summary and every kind of plot
    "info": lambda f, png: ["info", f],
    "raster": lambda f, png: ["plot", f, "--out", png],
    "state": lambda f, png: ["plot", f, "--state", "exc.v", "--out", png],
    "weights": lambda f, png: ["plot", f, "--weights", "ee", "--out", png],
}


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A good run file, a good checkpoint and the scenario they come from."""
    d = tmp_path_factory.mktemp("fuzz_files")
    scenario = d / "s.toml"
    shutil.copy(BASE, scenario)
    o = run_cli(["run", scenario, "--steps", "60", "--backend", "numpy", "--no-progress",
                 "--out", d / "run.h5", "--checkpoint", d / "ck.h5"])
    assert o.rc == 0, o.err
    return {"dir": d, "scenario": scenario, "run": d / "run.h5", "ck": d / "ck.h5"}


def _set_json(f, key, text):
    del f["spikelm/json"][key]
    f["spikelm/json"].create_dataset(key, data=text, dtype=h5py.string_dtype())


def _nan_times(f, pop="exc"):
    ts = f[f"spikes/{pop}/timestamps"]
    ts[0] = np.nan


#: The damage the issue names: each must be refused with one line.
KNOWN_DAMAGE = {
    "string dt": lambda f: f["spikelm"].attrs.__setitem__("dt", "0.5"),
    "negative dt": lambda f: f["spikelm"].attrs.__setitem__("dt", -1.0),
    "NaN dt": lambda f: f["spikelm"].attrs.__setitem__("dt", np.nan),
    "metadata JSON not JSON": lambda f: _set_json(f, "populations", "{not json"),
    "metadata JSON of the wrong shape": lambda f: _set_json(f, "populations", "[1, 2]"),
    "population sizes not integers": lambda f: _set_json(f, "populations", json.dumps({"exc": "twelve"})),
    "NaN timestamp": _nan_times,
    "infinite timestamp": lambda f: f["spikes/exc/timestamps"].__setitem__(0, np.inf),
    "node id beyond the population": lambda f: f["spikes/exc/node_ids"].__setitem__(0, 10**6),
    "scalar mapping/node_ids": lambda f: make_scalar(f, "report/exc/mapping/node_ids"),
    "report group made a dataset": lambda f: swap_kind(f, "report/exc", True),
    "report data made a group": lambda f: swap_kind(f, "report/exc/data", False),
    "decreasing index pointers": lambda f: f["report/exc/mapping/index_pointers"].__setitem__(slice(None), [2, 1, 0]),
    "mapping/time with dt 0": lambda f: f["report/exc/mapping/time"].__setitem__(slice(None), [0.0, 1.0, 0.0]),
    "unknown sorting": lambda f: f["spikes/exc"].attrs.__setitem__("sorting", "by_colour"),
    "unknown time unit": lambda f: f["spikes/exc/timestamps"].attrs.__setitem__("units", "fortnights"),
    "synops names and counts differ": lambda f: (f["spikelm/synops"].__delitem__("counts"),
                                                 f["spikelm/synops"].__setitem__("counts", np.arange(2))),
    "spikes a dataset": lambda f: swap_kind(f, "spikes", True),
    "external link to another file": lambda f: (f.__delitem__("spikes/exc/node_ids"),
                                                f.__setitem__("spikes/exc/node_ids", h5py.ExternalLink("/etc/passwd", "/"))),
    "link to itself": lambda f: (f.__delitem__("spikes/exc"), f.__setitem__("spikes/exc", h5py.SoftLink("/spikes/exc"))),
    "dangling link": lambda f: (f.__delitem__("spikes/exc/timestamps"),
                                f.__setitem__("spikes/exc/timestamps", h5py.SoftLink("/nowhere"))),
}


def _broken_copy(src, dst, mutate):
    shutil.copy(src, dst)
    with h5py.File(dst, "a") as f:
        mutate(f)


def _commands_for(name):
    """The summary, and the plot that reads the damaged part (a raster reads what the summary reads)."""
    if name.startswith("report/exc"):
        return ("info", "state")
    if name.startswith("report/ee"):
        return ("info", "weights")
    return ("info",)


def _read_every_way(good, f, what, refused, commands=tuple(COMMANDS)):
    """Run the commands on ``f``; all must refuse (or may succeed when not ``refused``)."""
    before = digest([f])
    for cmd in commands:
        argv = COMMANDS[cmd]
        png = good["dir"] / f"{cmd}.png"
        png.unlink(missing_ok=True)
        o = run_cli(argv(f, png))
        if refused and cmd == "info":     # the summary reads everything: it must refuse
            assert_refused(o, str(f), what=f"{what} / {cmd}")
        else:                             # a plot reads a part: the damage may lie elsewhere
            assert_clean(o, f"{what} / {cmd}")
        if o.rc == 2:
            assert str(f) in o.lines[0] or cmd != "info", f"{what} / {cmd}: file not named: {o.lines[0]}"
            assert not png.exists(), f"{what} / {cmd}: a picture was left by a refused plot"
    assert_unchanged(before, what)


def test_known_damage_is_refused_by_info_and_plot(good):
    for what, mutate in KNOWN_DAMAGE.items():
        f = good["dir"] / "known.h5"
        _broken_copy(good["run"], f, mutate)
        _read_every_way(good, f, what, refused=True)


def test_every_object_and_attribute_broken(good):
    cases = structural_mutations(good["run"])
    assert len(cases) > 150
    for what, mutate, _ in cases:
        f = good["dir"] / "structural.h5"
        _broken_copy(good["run"], f, mutate)
        _read_every_way(good, f, what, refused=False, commands=_commands_for(what.split(" ")[-1].split("@")[0]))


def test_damaged_compressed_chunk_is_refused(good, tmp_path):
    from spikelm.io.sonata import SpikeWriter

    f = tmp_path / "deflate.h5"
    with SpikeWriter(f, {"a": 100}, 0.5, compress="deflate", chunk=256) as w:
        w.append("a", np.arange(2000) // 4, np.arange(2000) % 100)
    with h5py.File(f, "r") as h:
        info = h["spikes/a/node_ids"].id.get_chunk_info(0)
    raw = bytearray(f.read_bytes())
    raw[info.byte_offset + 4: info.byte_offset + 40] = b"\xa5" * 36    # inside the deflated stream
    f.write_bytes(bytes(raw))
    o = run_cli(["info", f])
    assert_refused(o, str(f), "damaged")


def test_truncated_and_zeroed_headers_are_refused(good, tmp_path):
    data = good["run"].read_bytes()
    for what, blob in {"superblock zeroed": bytes(64) + data[64:], "cut in half": data[: len(data) // 2],
                       "first 100 bytes": data[:100], "empty": b""}.items():
        f = tmp_path / "cut.h5"
        f.write_bytes(blob)
        _read_every_way(good, f, what, refused=True)


@fuzz_settings(40)
@given(st.data())
def test_flipped_bytes_never_crash(good, data):
    blob = bytearray(good["run"].read_bytes())
    for _ in range(data.draw(st.integers(1, 8), label="flips")):
        i = data.draw(st.integers(0, len(blob) - 1), label="offset")
        blob[i] = data.draw(st.integers(0, 255), label="byte")
    f = good["dir"] / "flipped.h5"
    f.write_bytes(bytes(blob))
    _read_every_way(good, f, "flipped bytes", refused=False, commands=("info", "state"))


# -- checkpoints -------------------------------------------------------------------------------


def _resume(good, ck, what, refused=True):
    out = good["dir"] / "resumed.h5"
    out.write_bytes(b"an earlier result")
    before = digest([ck, good["scenario"], out])
    o = run_cli(["run", good["scenario"], "--resume", ck, "--steps", "2", "--backend", "numpy",
                 "--no-progress", "--out", out, "--overwrite"])
    if refused:
        assert_refused(o, str(ck), what=what)
        assert_unchanged(before, what)
    else:
        assert_clean(o, what)
        assert_unchanged({k: v for k, v in before.items() if k != str(out)}, what)
    return o


def checkpoint_mutations(path):
    cases = []
    with h5py.File(path, "r") as f:
        g = f["checkpoint"]
        attrs = list(g.attrs)
        names = []
        g.visititems(lambda n, o: names.append((n, isinstance(o, h5py.Group))))
    for key in attrs:
        need = key in ("format", "fingerprint", "t")
        cases.append((f"delete @{key}", lambda c, k=key: c.attrs.__delitem__(k), need))
    for name, is_group in names:
        cases.append((f"delete {name}", lambda c, n=name: c.__delitem__(n), True))
        cases.append((f"swap {name}", lambda c, n=name, g=is_group: swap_kind(c, n, g), True))
        if not is_group:
            cases.append((f"reshape {name}", lambda c, n=name: (c.__delitem__(n), c.__setitem__(n, np.zeros(7))), True))
            cases.append((f"strings {name}", lambda c, n=name: (c.__delitem__(n), c.create_dataset(
                n, data=np.array(["x"] * 3, dtype=object), dtype=h5py.string_dtype())), True))
    for what, value in {"string t": "6", "negative t": -5, "huge t": 2**62, "float t": 6.5,
                        "non-JSON fingerprint": "{", "JSON list fingerprint": "[]",
                        "another network's fingerprint": json.dumps({"dt_ms": 0.1, "seed": 0})}.items():
        key = "t" if what.endswith(" t") else "fingerprint"
        cases.append((what, lambda c, k=key, v=value: c.attrs.__setitem__(k, v), True))
    return cases


def test_every_part_of_a_checkpoint_broken(good):
    cases = checkpoint_mutations(good["ck"])
    assert len(cases) > 60
    for what, mutate, refused in cases:
        ck = good["dir"] / "broken_ck.h5"
        shutil.copy(good["ck"], ck)
        with h5py.File(ck, "a") as f:
            mutate(f["checkpoint"])
        _resume(good, ck, what, refused)


def test_plasticity_state_deleted_is_refused_not_resumed_differently(good):
    """A plasticity checkpoint without its plasticity group would resume with fresh traces."""
    ck = good["dir"] / "no_plasticity.h5"
    shutil.copy(good["ck"], ck)
    with h5py.File(ck, "a") as f:
        del f["checkpoint/plasticity"]
    o = _resume(good, ck, "plasticity deleted")
    assert "plasticity" in o.lines[0]


@fuzz_settings(25)
@given(st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_checkpoints_are_refused(good, fraction):
    data = good["ck"].read_bytes()
    ck = good["dir"] / "truncated_ck.h5"
    ck.write_bytes(data[: int(len(data) * fraction)])
    _resume(good, ck, f"truncated to {fraction:.2f}")


def test_nan_weights_are_refused_by_the_weights_plot(good, tmp_path):
    """NaN or infinite weights made plot --weights raise inside matplotlib/numpy."""
    for bad in (np.nan, np.inf):
        f = tmp_path / "nan_w.h5"
        _broken_copy(good["run"], f, lambda h, b=bad: h["report/ee/weights"].__setitem__((0, 0), b))
        png = tmp_path / "w.png"
        o = run_cli(["plot", f, "--weights", "ee", "--out", png])
        assert_refused(o, str(f), "/report/ee/weights", "NaN or infinite")
        assert not png.exists()
