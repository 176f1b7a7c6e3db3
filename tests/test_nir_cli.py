"""The worked example of docs/nir.md, run as written: export, info, import, run twice, same spikes."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("nir", reason="the NIR tests need the optional nir package (pip install -e '.[nir]')")

from spikelm import cli
from spikelm.io.sonata import read_spikes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _example():
    text = open(os.path.join(ROOT, "docs", "nir.md"), encoding="utf-8").read()
    return re.search(r"```toml\n(.*?)```", text, re.S).group(1)


def test_worked_example_round_trips_through_the_cli(tmp_path, capsys):
    src = tmp_path / "example.toml"
    src.write_text(_example())
    nirf, again = tmp_path / "example.nir", tmp_path / "again.toml"
    assert cli.main(["nir", "export", str(src), "-o", str(nirf)]) == 0
    assert cli.main(["info", str(nirf)]) == 0
    info = capsys.readouterr().out
    for line in ("hidden_to_out_2", "Delay", "CubaLIF", "stimulus0_scale", "spikelm can import it"):
        assert line in info, info
    assert cli.main(["nir", "import", str(nirf), "--dt", "0.1", "-o", str(again)]) == 0
    runs = []
    for scen, out in ((src, "a.h5"), (again, "b.h5")):
        assert cli.main(["run", str(scen), "--out", str(tmp_path / out), "--no-progress"]) == 0
        runs.append(read_spikes(tmp_path / out))
    a, b = runs
    assert set(a) == set(b) == {"input", "hidden", "out"}
    for pop in a:
        assert np.array_equal(a[pop].timestamps, b[pop].timestamps)
        assert np.array_equal(a[pop].node_ids, b[pop].node_ids)
    assert a["out"].timestamps.size > 0, "the example should make its output neurons fire"


def test_cli_errors_are_one_line_in_a_fresh_process(tmp_path):
    """As a user runs it: a console process, exit 2, one line on stderr, no traceback."""
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"\x89HDF but not really")
    env = dict(os.environ, PYTHONPATH=ROOT)
    r = subprocess.run([sys.executable, "-m", "spikelm.cli", "nir", "import", str(bad), "--dt", "0.1",
                        "-o", str(tmp_path / "x.toml")], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and str(bad) in r.stderr, r.stderr
