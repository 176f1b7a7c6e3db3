"""``spikelm repair``: a file a killed writer left opens with plain h5py and libsonata afterwards (issue 27).

A writer process is ended with ``os._exit`` right after a flush (what kill -9 leaves: no close,
no cleanup), optionally after growing one dataset alone, as a writer killed between two
appends does. The repaired file must hold exactly what spikelm's SWMR reader read from the
``.partial`` (cut to the entries every dataset of a group holds), open with plain h5py and
libsonata, and say that it was repaired.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from fuzzing import assert_refused, assert_unchanged, digest, run_cli
from spikelm.io.sonata import read_metadata, read_spikes, read_state, read_weights

REPO = Path(__file__).resolve().parents[1]

_KILLED_WRITER = r"""
import os, sys
import numpy as np
from spikelm.io.sonata import SpikeWriter

w = SpikeWriter(sys.argv[1], {"a": 10, "b": 4}, 0.5, signed={"b": True}, chunk=64,
                compress=sys.argv[2], state_populations={"a": 10})
for k in range(5):
    steps = np.arange(20 * k, 20 * k + 20)
    w.append("a", steps, steps % 10)
    w.append("b", steps[:3], np.arange(3), [1, -1, 1])
    w.add_state("a", "v", np.arange(3), steps[::5], np.ones((4, 3)) * k)
    w.add_weights("ab", 20 * k, np.arange(6.0) * k)
    w.flush()
if sys.argv[3] == "uneven":   # killed between two appends: timestamps got 7 more than node_ids
    ts = w._file["spikes/a/timestamps"]
    ts.resize(ts.shape[0] + 7, axis=0)
    w._file.flush()
os._exit(0)                   # no close: the file stays marked open for writing
"""


def _killed_file(tmp_path, compress="none", uneven=""):
    out = tmp_path / "run.h5"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(out), compress, uneven or "even"],
                       env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    partial = Path(str(out) + ".partial")
    with pytest.raises(OSError, match="open for write"):
        h5py.File(partial, "r")      # what plain tools meet before the repair
    return partial


@pytest.mark.parametrize("compress, uneven", [("none", ""), ("scaleoffset", "uneven"), ("deflate", "")])
def test_repair_makes_a_killed_partial_a_plain_file_with_the_same_record(tmp_path, compress, uneven):
    partial = _killed_file(tmp_path, compress, uneven)
    assert f"spikelm repair {partial}" in run_cli(["info", partial]).out      # info says what to do
    before = read_spikes(partial)
    state_before = read_state(partial, "a", "v")
    weights_before = read_weights(partial, "ab")
    o = run_cli(["repair", partial])
    assert o.rc == 0, o.err
    assert "marked open for writing" in o.out
    assert ("7 entries" in o.out) == bool(uneven)
    with h5py.File(partial, "r") as f:          # plain h5py, no SWMR
        assert f["spikelm"].attrs["repaired"] and not f["spikelm"].attrs["complete"]
        lengths = {k: f[f"spikes/a/{k}"].shape[0] for k in ("timestamps", "node_ids")}
    assert len(set(lengths.values())) == 1 and lengths["timestamps"] == 100
    after = read_spikes(partial)
    assert list(after) == list(before)
    for name in before:
        assert np.array_equal(after[name].timestamps, before[name].timestamps)
        assert np.array_equal(after[name].node_ids, before[name].node_ids)
        if before[name].values is not None:
            assert np.array_equal(after[name].values, before[name].values)
    for a, b in zip(read_state(partial, "a", "v"), state_before):
        assert np.array_equal(a, b)
    for a, b in zip(read_weights(partial, "ab"), weights_before):
        assert np.array_equal(a, b)
    assert read_metadata(partial)["complete"] is False
    assert "spikelm repair" not in run_cli(["info", partial]).out
    if compress != "deflate":       # libsonata's PyPI build has no deflate filter (docs/files.md)
        libsonata = pytest.importorskip("libsonata", reason="libsonata reads SONATA files (dev extra)")
        reader = libsonata.SpikeReader(str(partial))
        assert sorted(reader.get_population_names()) == ["a", "b"]
        assert len(reader["a"].get()) == 100


def test_repair_to_another_file_keeps_the_original(tmp_path):
    partial = _killed_file(tmp_path)
    before = digest([partial])
    fixed = tmp_path / "fixed.h5"
    assert run_cli(["repair", partial, "-o", fixed]).rc == 0
    assert_unchanged(before, "repair -o")
    with h5py.File(fixed, "r") as f:
        assert "spikes" in f
    fixed.write_bytes(b"an earlier result")
    assert_refused(run_cli(["repair", partial, "-o", fixed]), "-o", "--overwrite")
    assert fixed.read_bytes() == b"an earlier result"
    assert run_cli(["repair", partial, "-o", fixed, "--overwrite"]).rc == 0
    assert_refused(run_cli(["repair", partial, "-o", partial]), "-o", "is also the FILE")


def test_repair_refuses_what_is_no_run_file(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not a run file\n")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    for path, needle in ((text, "not an HDF5 file"), (tmp_path, "is a directory"), (fifo, "named pipe"),
                         (tmp_path / "nope.h5", "no such file")):
        before = digest([path])
        assert_refused(run_cli(["repair", path]), str(path), needle)
        assert_unchanged(before, str(path))


def test_readers_point_at_repair_for_a_file_marked_open(tmp_path):
    """Readers that do not read live files (checkpoints, NIR graphs) name the command that clears the mark."""
    partial = _killed_file(tmp_path)
    o = run_cli(["nir", "import", partial, "--dt", "0.1", "-o", tmp_path / "s.toml"])
    assert_refused(o, str(partial), "spikelm repair")
