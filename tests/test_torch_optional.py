"""torch is an extra: classic simulations never import it, and the shipped demo model loads,
converts and runs from safetensors without it.

Each test runs spikelm in a fresh interpreter whose import system refuses the packages of the
``lm`` extra (as if they were not installed), so the result does not depend on what this
machine has. The CI script (``.ci/run``) also builds a real clean venv with only the core
install and runs ``spikelm run scenarios/cuba.toml`` there: that proves the install metadata;
these tests prove the code paths, quickly, on every run.
"""
from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LM_EXTRA = {"torch", "transformers", "safetensors"}

# Runs `spikelm ARGS` with BLOCKED unimportable, then prints which lm-extra modules got imported.
_RUNNER = r"""
import importlib.abc, json, sys
blocked = set(sys.argv[1].split(",")) - {""}
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, Refuse())
from spikelm.cli import main
rc = main(sys.argv[2:])
seen = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "transformers", "safetensors"})
print("IMPORTED " + json.dumps(seen))
sys.exit(rc)
"""


def spikelm(tmp_path, blocked, *args):
    """Run the CLI in a fresh interpreter; return (exit code, stdout, stderr, lm-extra modules imported)."""
    r = subprocess.run([sys.executable, "-c", _RUNNER, ",".join(sorted(blocked)), *map(str, args)],
                       capture_output=True, text=True, cwd=tmp_path, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"})
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("IMPORTED ")]
    return r.returncode, r.stdout, r.stderr, json.loads(line[-1][9:]) if line else None


def test_core_install_requires_no_torch():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    core = {line.split(">")[0].split(";")[0].strip().lower()
            for line in cfg["options"]["install_requires"].splitlines() if line.strip()}
    assert core & LM_EXTRA == set()
    lm = {line.split(">")[0].strip().lower() for line in cfg["options.extras_require"]["lm"].splitlines()
          if line.strip()}
    assert LM_EXTRA <= lm


def test_run_never_imports_torch_even_when_installed(tmp_path):
    """Nothing blocked: `spikelm run` + `info` + `plot` still load none of the lm extra."""
    rc, out, err, seen = spikelm(tmp_path, set(), "run", REPO / "scenarios" / "cuba.toml", "--steps", "300",
                                 "--no-progress", "--out", tmp_path / "c.h5", "--plot", tmp_path / "c.png")
    assert rc == 0, err
    assert seen == []
    for args in (("info", tmp_path / "c.h5"), ("plot", tmp_path / "c.h5", "--out", tmp_path / "p.png")):
        rc, _, err, seen = spikelm(tmp_path, set(), *args)
        assert rc == 0 and seen == [], err


def test_run_works_with_the_whole_lm_extra_missing(tmp_path):
    rc, out, err, seen = spikelm(tmp_path, LM_EXTRA, "run", REPO / "scenarios" / "cuba.toml", "--steps", "300",
                                 "--no-progress")
    assert rc == 0, err
    assert "exc" in out and "SynOps" in out and seen == []


@pytest.mark.slow
def test_demo_generates_without_torch_and_as_with_it(tmp_path):
    """The shipped demo (safetensors) converts and runs with only the safetensors package: the
    same text as with torch (integer products are exact in any BLAS)."""
    args = ("lm", "generate", "--prompt", "Return the ", "--tokens", "4")
    rc, without, err, seen = spikelm(tmp_path, {"torch", "transformers"}, *args, "--out", tmp_path / "g.h5")
    assert rc == 0, err
    assert seen == ["safetensors"]
    rc, with_torch, err, _ = spikelm(tmp_path, set(), *args)
    assert rc == 0, err
    pick = [ln for ln in without.splitlines() if ln.startswith("generated:")]
    assert pick and pick == [ln for ln in with_torch.splitlines() if ln.startswith("generated:")]


def test_missing_packages_give_one_line_naming_the_lm_extra(tmp_path):
    """A PyTorch checkpoint without torch, safetensors without the package: one line each."""
    demo = REPO / "spikelm" / "data"
    folder = tmp_path / "bin_model"
    folder.mkdir()
    (folder / "config.json").write_text((demo / "config.json").read_text())
    (folder / "tokenizer.json").write_text((demo / "tokenizer.json").read_text())
    (folder / "pytorch_model.bin").write_bytes(b"not needed: torch is missing")
    cases = [({"torch"}, folder, "pytorch_model.bin: a PyTorch checkpoint needs PyTorch"),
             ({"safetensors"}, demo, "reading safetensors needs the safetensors package")]
    for blocked, model, words in cases:
        rc, _, err, seen = spikelm(tmp_path, blocked, "lm", "generate", "--model", model, "--prompt", "a",
                                   "--tokens", "1")
        assert rc == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("spikelm: error:"), err
        assert words in lines[0] and "pip install 'spikelm[lm]'" in lines[0]


def test_tinygpt_without_torch_names_the_lm_extra(tmp_path):
    code = ("import sys, importlib.abc\n"
            "class R(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path, target=None):\n"
            "        if name.split('.')[0] == 'torch': raise ModuleNotFoundError(name)\n"
            "sys.meta_path.insert(0, R())\n"
            "from spikelm.lm import TinyGPT, GPTConfig\n"
            "from spikelm.errors import ConfigError\n"
            "try:\n"
            "    TinyGPT(GPTConfig(vocab_size=8, n_positions=4, n_embd=4, n_layer=1, n_head=1))\n"
            "except ConfigError as e:\n"
            "    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "TinyGPT needs PyTorch, which is not installed; install the lm extra: " \
                               "pip install 'spikelm[lm]'"
