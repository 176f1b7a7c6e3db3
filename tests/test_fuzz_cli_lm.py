"""Fuzz: bad command-line arguments and bad language-model folders (issue 12, "Done when" 1).

Arguments: every numeric option of ``spikelm run``/``plot`` given NaN, infinities, zero,
negative, huge, tiny and non-numbers; every path option given a directory, a missing
directory, an input of the same command, a wrong suffix. Model folders: a small GPT-2 folder
whose ``config.json`` has every key deleted, every value of a wrong type and extreme numbers,
and whose files are missing, directories, not JSON, not UTF-8, truncated or of the wrong
shape. Each case exits 2 with one line naming the option or the file (and field), or exits 0
where the value is valid; never a traceback; no existing file changed.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from fuzzing import (DELETE, Tally, EXTREME, NON_FINITE, WRONG_TYPES, assert_clean, assert_refused, assert_unchanged,
                     bad_outputs, digest, kind_of, lm_model_folder, replaced, run_cli)

BASE = Path(__file__).parent / "data" / "every_feature.toml"
NUMBERS = ["nan", "inf", "-inf", "0", "-1", "1e308", "1e-9", "abc", "", "9" * 40]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz_cli")
    scenario = d / "s.toml"
    shutil.copy(BASE, scenario)
    o = run_cli(["run", scenario, "--steps", "20", "--backend", "numpy", "--no-progress", "--out", d / "run.h5",
                 "--checkpoint", d / "ck.h5"])
    assert o.rc == 0, o.err
    (d / "text.txt").write_text("not a spike file\n")
    (d / "adir").mkdir()
    return d


def _run_argv(d, **over):
    opts = {"--steps": "2", "--backend": "numpy", "--out": str(d / "out.h5")}
    opts.update(over)
    argv = ["run", str(d / "s.toml"), "--no-progress", "--overwrite"]
    for k, v in opts.items():
        if v is not None:
            argv += [k, v]
    return argv


def cli_cases(d):
    """(id, argv, needle the error must name or None when the value may be valid)."""
    cases = []
    for flag in ("--steps", "--duration", "--seed", "--max-steps", "--max-memory"):
        for v in NUMBERS:
            over = {flag: v}
            if flag == "--duration":
                over["--steps"] = None      # one of --steps / --duration
            cases.append((f"run {flag} {v!r}", _run_argv(d, **over), flag if v in ("nan", "inf", "-inf", "-1") else None))
    for flag in ("--out", "--plot", "--checkpoint"):
        for what, path in {"a directory": d / "adir", "in a missing directory": d / "nope" / "x.h5",
                           "the scenario": d / "s.toml", "an empty name": ""}.items():
            cases.append((f"run {flag} {what}", _run_argv(d, **{flag: str(path)}), flag))
    cases.append(("run --plot .txt", _run_argv(d, **{"--plot": str(d / "x.txt")}), "--plot"))
    cases.append(("run --out = --checkpoint", _run_argv(d, **{"--checkpoint": str(d / "out.h5")}), "--checkpoint"))
    cases.append(("run --out = --resume", _run_argv(d, **{"--resume": str(d / "ck.h5"), "--out": str(d / "ck.h5")}),
                  "--out"))
    for what, path in {"missing": d / "nope.h5", "a directory": d / "adir", "a text file": d / "text.txt",
                       "a run file": d / "run.h5", "the scenario": d / "s.toml"}.items():
        cases.append((f"run --resume {what}", _run_argv(d, **{"--resume": str(path)}), str(path)))
    cases.append(("run --backend bogus", _run_argv(d, **{"--backend": "bogus"}), "--backend"))
    cases.append(("run missing scenario", ["run", str(d / "nope.toml")], "nope.toml"))
    cases.append(("run a directory", ["run", str(d / "adir")], "adir"))
    cases.append(("run a run file", ["run", str(d / "run.h5")], "run.h5"))
    for what, path in {"missing": d / "nope.h5", "a directory": d / "adir", "a text file": d / "text.txt",
                       "a scenario": d / "s.toml", "a checkpoint": d / "ck.h5"}.items():
        cases.append((f"info {what}", ["info", str(path)], str(path)))
        cases.append((f"plot {what}", ["plot", str(path), "--out", str(d / "p.png")], str(path)))
    plot = ["plot", str(d / "run.h5")]
    for what, extra, needle in [
        ("--out a directory", ["--out", str(d / "adir")], "--out"),
        ("--out missing directory", ["--out", str(d / "nope" / "r.png")], "--out"),
        ("--out .txt", ["--out", str(d / "r.txt")], "--out"),
        ("--out the run file", ["--out", str(d / "run.png"), "--out", str(d / "run.h5")], "--out"),
        ("--window nan", ["--out", str(d / "r.png"), "--window", "nan", "5"], "t_range"),
        ("--window inf", ["--out", str(d / "r.png"), "--window", "0", "inf"], "t_range"),
        ("--window reversed", ["--out", str(d / "r.png"), "--window", "5", "1"], "t_range"),
        ("--window words", ["--out", str(d / "r.png"), "--window", "a", "b"], "--window"),
        ("--max-neurons 0", ["--out", str(d / "r.png"), "--max-neurons", "0"], "--max-neurons"),
        ("--state unknown population", ["--out", str(d / "r.png"), "--state", "nobody"], "nobody"),
        ("--state unknown variable", ["--out", str(d / "r.png"), "--state", "exc.zz"], "zz"),
        ("--weights unknown", ["--out", str(d / "r.png"), "--weights", "nothing"], "nothing"),
        ("--weights with --window", ["--out", str(d / "r.png"), "--weights", "ee", "--window", "0", "1"], "--window"),
    ]:
        cases.append((f"plot {what}", plot + extra, needle))
    cases += [("no command", [], "command"), ("unknown command", ["bogus"], "bogus"),
              ("run without scenario", ["run"], "scenario")]
    return cases


def test_bad_arguments(files):
    cases = cli_cases(files)
    assert len(cases) >= 80
    watched = [files / n for n in ("s.toml", "run.h5", "ck.h5", "text.txt")]
    for what, argv, needle in cases:
        (files / "out.h5").write_bytes(b"an earlier result")
        before = digest(watched + [files / "out.h5"])
        o = run_cli(argv)
        if needle is None:
            assert_clean(o, what)
        else:
            assert_refused(o, needle, what=what)
        if o.rc != 0:
            assert_unchanged(before, what)
        else:
            assert_unchanged({k: v for k, v in before.items() if not k.endswith("out.h5")}, what)
        for png in files.glob("*.png"):
            assert o.rc == 0, f"{what}: a refused command left {png}"
            png.unlink()


# -- model folders -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    pytest.importorskip("torch", reason="building the test model needs torch (the lm extra)")
    return lm_model_folder(tmp_path_factory.mktemp("fuzz_model") / "good")


def _generate(folder, *extra):
    return run_cli(["lm", "generate", "--model", folder, "--prompt", "Re", "--tokens", "2", *extra])


def config_cases(cfg):
    cases = []
    for key, value in cfg.items():
        cases.append((f"config without {key}", replaced(cfg, (key,), DELETE), None))
        kind = kind_of(value)
        for w in WRONG_TYPES[kind] if kind != "list" else ["GPT2LMHeadModel", 5, {"a": 1}, [5]]:
            cases.append((f"config {key}={w!r}", replaced(cfg, (key,), w), key))
        if kind == "number":
            cases += [(f"config {key}={w!r}", replaced(cfg, (key,), w), key) for w in NON_FINITE]
            cases += [(f"config {key}={w!r}", replaced(cfg, (key,), w), None) for w in EXTREME]
    cases += [("layer_norm_epsilon tiny", dict(cfg, layer_norm_epsilon="tiny"), "layer_norm_epsilon"),
              ("architectures 5", dict(cfg, architectures=5), "architectures"),
              ("tie_word_embeddings no", dict(cfg, tie_word_embeddings="no"), "tie_word_embeddings"),
              ("n_head not dividing", dict(cfg, n_head=3), "n_head"),
              ("n_layer a billion", dict(cfg, n_layer=10**9), "n_layer")]
    return cases


def test_bad_config_json(model_dir, tmp_path):
    cfg = json.loads((model_dir / "config.json").read_text())
    cases = config_cases(cfg)
    assert len(cases) >= 60
    folder = tmp_path / "m"
    shutil.copytree(model_dir, folder)
    for what, broken, needle in cases:
        (folder / "config.json").write_text(json.dumps(broken))
        before = digest(folder.iterdir())
        o = _generate(folder)
        if needle is None:
            assert_clean(o, what)
        else:
            assert_refused(o, needle, what=what)
        if o.rc == 2:
            assert "config.json" in o.lines[0] or "model config" in o.lines[0] or str(folder) in o.lines[0], what
        assert_unchanged(before, what)


def _tensor_file(path, tensors):
    from safetensors.numpy import save_file

    save_file(tensors, str(path))


def folder_cases(good):
    from safetensors.numpy import load_file

    weights = load_file(str(good / "model.safetensors"))
    some = sorted(weights)[0]
    return [
        ("config.json a directory", lambda f: ((f / "config.json").unlink(), (f / "config.json").mkdir()), "config.json"),
        ("config.json not JSON", lambda f: (f / "config.json").write_text("{vocab"), "config.json"),
        ("config.json not UTF-8", lambda f: (f / "config.json").write_bytes(b"\xff\xfe{}"), "config.json"),
        ("config.json a list", lambda f: (f / "config.json").write_text("[1, 2]"), "config.json"),
        ("config.json nested deep", lambda f: (f / "config.json").write_text("[" * 100000 + "]" * 100000),
         "config.json"),
        ("config.json missing", lambda f: (f / "config.json").unlink(), "config.json"),
        ("weights missing", lambda f: (f / "model.safetensors").unlink(), "model.safetensors"),
        ("weights truncated", lambda f: (f / "model.safetensors").write_bytes(
            (good / "model.safetensors").read_bytes()[:300]), "model.safetensors"),
        ("weights garbage", lambda f: (f / "model.safetensors").write_bytes(b"\x10" * 64), "model.safetensors"),
        ("weights a directory", lambda f: ((f / "model.safetensors").unlink(), (f / "model.safetensors").mkdir()),
         "model.safetensors"),
        ("a tensor of the wrong shape", lambda f: _tensor_file(f / "model.safetensors", dict(
            weights, **{some: np.zeros((3, 3), np.float32)})), some),
        ("a tensor missing", lambda f: _tensor_file(f / "model.safetensors", {k: v for k, v in weights.items()
                                                                               if k != some}), some),
        ("NaN weights", lambda f: _tensor_file(f / "model.safetensors", dict(
            weights, **{some: np.full_like(weights[some], np.nan)})), some),
        ("calibration not UTF-8", lambda f: (f / "calibration.txt").write_bytes(b"Return \xff\xfe the"),
         "calibration.txt"),
        ("calibration a directory", lambda f: ((f / "calibration.txt").unlink(), (f / "calibration.txt").mkdir()),
         "calibration.txt"),
        ("tokenizer not JSON", lambda f: (f / "tokenizer.json").write_text("{tok"), "tokenizer.json"),
        ("no tokenizer", lambda f: (f / "tokenizer.json").unlink(), "tokenizer"),
    ]


def test_bad_model_folders(model_dir, tmp_path):
    for k, (what, mutate, needle) in enumerate(folder_cases(model_dir)):
        folder = tmp_path / f"m{k}"
        shutil.copytree(model_dir, folder)
        mutate(folder)
        before = digest(p for p in folder.iterdir() if p.is_file())
        o = _generate(folder)
        assert_refused(o, needle, what=what)
        assert_unchanged(before, what)


def test_bad_lm_arguments(model_dir, tmp_path):
    (tmp_path / "adir").mkdir()
    for what, extra, needle in [
        ("--out a directory", ["--out", str(tmp_path / "adir")], "--out"),
        ("--out in a missing directory", ["--out", str(tmp_path / "no" / "x.h5")], "--out"),
    ]:
        assert_refused(_generate(model_dir, *extra), needle, what=what)
    report = ["lm", "report", "--model", model_dir, "--length", "4"]
    for what, extra, needle in [
        ("--e-ac nan", ["--out", tmp_path / "r.png", "--e-ac", "nan"], "--e-ac"),
        ("--e-mac inf", ["--out", tmp_path / "r.png", "--e-mac", "inf"], "--e-mac"),
        ("--e-ac negative", ["--out", tmp_path / "r.png", "--e-ac", "-1"], "--e-ac"),
        ("--json a directory", ["--out", tmp_path / "r.png", "--json", tmp_path / "adir"], "--json"),
        ("--json in a missing directory", ["--out", tmp_path / "r.png", "--json", tmp_path / "no" / "c.json"],
         "--json"),
        ("--out .txt", ["--out", tmp_path / "r.txt"], "--out"),
    ]:
        o = run_cli(report + extra)
        assert_refused(o, needle, what=what)
        assert not (tmp_path / "r.png").exists(), f"{what}: the run went ahead before the option was checked"


def test_the_unbroken_folder_and_arguments_work(model_dir, files, tmp_path):
    """The bases the cases above break are good: each refusal is the broken part's doing."""
    o = _generate(model_dir, "--out", tmp_path / "g.h5")
    assert o.rc == 0, o.err
    assert (tmp_path / "g.h5").exists()
    o = run_cli(_run_argv(files))
    assert o.rc == 0, o.err
    o = run_cli(["plot", files / "run.h5", "--out", tmp_path / "r.png", "--state", "exc.v"])
    assert o.rc == 0, o.err


# -- every option of lm that writes (issue 27) ----------------------------------------------------

RULES = '[projections."h*.fc".plasticity]\nrule = "braingpt_stdp"\neta_w = 0.01\n'


@pytest.fixture(scope="module")
def lm_inputs(model_dir, tmp_path_factory):
    """A text, a plasticity file and a checkpoint of the model: what lm commands read besides it."""
    d = tmp_path_factory.mktemp("lm_outputs")
    (d / "text.txt").write_text("Return the value of the file. " * 4)
    (d / "rules.toml").write_text(RULES)
    o = _generate(model_dir, "--plasticity", d / "rules.toml", "--checkpoint", d / "ck.h5")
    assert o.rc == 0, o.err
    return d


def writing_commands(model, d):
    """(what, argv before the output option, the option, the inputs it must never be)."""
    files = sorted(p for p in Path(model).iterdir() if p.is_file())
    gen = ["lm", "generate", "--model", model, "--prompt", "Re", "--tokens", "2"]
    ev = ["lm", "evaluate", "--model", model, "--text", d / "text.txt", "--no-progress"]
    return [
        ("generate --out", gen, "--out", files),
        ("generate --checkpoint", gen + ["--plasticity", d / "rules.toml"], "--checkpoint", files + [d / "rules.toml"]),
        ("generate --resume --checkpoint", gen[:-4] + ["--tokens", "1", "--resume", d / "ck.h5"], "--checkpoint",
         files + [d / "ck.h5"]),
        ("evaluate --out", ev, "--out", files + [d / "text.txt"]),
        ("evaluate --json", ev, "--json", files + [d / "text.txt"]),
        ("evaluate --plasticity --json", ev + ["--plasticity", d / "rules.toml"], "--json",
         files + [d / "text.txt", d / "rules.toml"]),
        ("report --json", ["lm", "report", "--model", model, "--length", "4", "--out", d / "chart.png"], "--json",
         files),
    ]


def test_every_writing_option_is_checked_before_any_work(model_dir, lm_inputs):
    """A directory, a missing directory, a named pipe, an empty name, every input (by name, link
    and '..') and an existing result: refused in one line before the model is read, nothing changed."""
    d = lm_inputs
    tally = Tally()
    for what, argv, flag, inputs in writing_commands(model_dir, d):
        for case, path, needle in bad_outputs(d, inputs):
            before = digest(list(inputs) + [d / "existing.out", d / "ck.h5"])
            o = run_cli([*argv, flag, path], bound=30)
            tally.judge(o, f"{what} {case}", flag, [needle], before)
            left = [p.name for p in d.iterdir() if p.name.endswith((".partial", ".tmp")) or p.name == "chart.png"]
            for name in left:
                tally.fail("file changed", f"{what} {case}: a refused command left {name}")
                (d / name).unlink()
    tally.check(120)


def test_save_model_must_be_a_new_or_empty_folder(model_dir, lm_inputs, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("kept")
    (tmp_path / "file").write_text("kept")
    gen = ["lm", "generate", "--model", model_dir, "--prompt", "Re", "--tokens", "1", "--plasticity",
           lm_inputs / "rules.toml", "--save-model"]
    for what, path, needle in [("an existing file", tmp_path / "file", "not a folder"),
                               ("a folder with files", tmp_path / "full", "not empty"),
                               ("the model folder", model_dir, "not empty"),
                               ("in a missing directory", tmp_path / "no" / "m", "does not exist"),
                               ("an empty name", "", "empty")]:
        before = digest([tmp_path / "file", tmp_path / "full" / "keep.txt", *Path(model_dir).iterdir()])
        assert_refused(run_cli(gen + [path]), "--save-model", needle, what=what)
        assert_unchanged(before, what)
    (tmp_path / "empty").mkdir()
    o = run_cli(gen + [tmp_path / "empty"])
    assert o.rc == 0, o.err
    assert (tmp_path / "empty" / "learned.h5").is_file() and not list(tmp_path.glob(".*.tmp"))


def test_overwrite_replaces_an_existing_result(model_dir, tmp_path):
    out = tmp_path / "run.h5"
    out.write_bytes(b"an earlier result")
    assert_refused(_generate(model_dir, "--out", out), "--out", "--overwrite")
    assert out.read_bytes() == b"an earlier result"
    o = _generate(model_dir, "--out", out, "--overwrite")
    assert o.rc == 0, o.err
    assert out.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"


def test_bad_plasticity_files_calibration_and_context(model_dir, tmp_path):
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 3000 + "]" * 3000 + "\n")
    overlap = tmp_path / "overlap.toml"
    overlap.write_text('[populations."h0.*"]\nneuron = "eiif_exact"\n[populations."h*.q"]\nunit = 2\n')
    pipe = tmp_path / "pipe.toml"
    os.mkfifo(pipe)
    for what, path, needles in [("nested 3,000 deep", deep, ["deep.toml", "nested"]),
                                ("overlapping globs", overlap, ["overlap.toml", "'h0.q'", "h0.*", "h*.q"]),
                                ("a named pipe", pipe, ["pipe.toml", "named pipe"])]:
        assert_refused(_generate(model_dir, "--plasticity", path), *needles, what=what)
    short = tmp_path / "short"
    shutil.copytree(model_dir, short)
    for text in ("Re", "\x00\x01\x02 \x03\x04", ""):   # fewer than 8 characters the tokenizer knows
        (short / "calibration.txt").write_text(text)
        assert_refused(_generate(short), "calibration.txt", "at least 8", what=f"calibration {text!r}")
