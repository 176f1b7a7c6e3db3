"""``spikelm lm generate / check / report`` on a small model folder (built here, no download)."""

from __future__ import annotations

import argparse
import re
import json

import numpy as np
import pytest

from test_lm_helpers import random_tiny_gpt
from spikelm.errors import ConfigError, FileFormatError, SpikelmError
from spikelm.lm import cli
from spikelm.lm.tokenizer import CharTokenizer

TEXT = "Return the value of the attribute.\nIf the file does not exist, raise an error.\n" * 20


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("model")
    tok = CharTokenizer()
    model = random_tiny_gpt(5, vocab=tok.vocab_size, ctx=24, width=16, layers=1, heads=2, std=0.2)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps(model.config.to_dict()))
    tok.save(path / "tokenizer.json")
    (path / "heldout.txt").write_text(TEXT)
    (path / "calibration.txt").write_text(TEXT[::-1])
    return path


def parse(argv):
    ap = argparse.ArgumentParser(prog="spikelm")
    cli.add_parser(ap.add_subparsers(dest="command"))
    return ap.parse_args(argv)


def test_generate_streams_tokens_and_writes_sonata(folder, tmp_path, capsys):
    from spikelm.io.sonata import read_metadata, read_spikes

    out = tmp_path / "run.h5"
    args = parse(["lm", "generate", "--model", str(folder), "--prompt", "Return the", "--tokens", "5",
                  "--bits", "6", "--out", str(out)])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "generated: 'Return the|" in text and "SynOps" in text and f"spikes written to {out}" in text
    assert len([ln for ln in text.splitlines() if re.match(r"\s+\d+\s+'", ln)]) == 10 + 4  # pos, input token
    spikes = read_spikes(out)
    assert "h0.q" in spikes and "emb" in spikes and "head" not in spikes
    total = sum(len(t) for t in spikes.values())
    meta = read_metadata(out)
    assert meta["steps"] > 0 and total > 0
    assert meta["coding"] == "signed_digit" and meta["bits"] == "6"
    for t in spikes.values():  # signed powers of two
        m = np.abs(t.values.astype(np.int64))
        assert ((m & (m - 1)) == 0).all() and (m > 0).all()
    assert not (tmp_path / "run.h5.partial").exists()


@pytest.mark.parametrize("coding", ["unit", "bitplane", "signed_digit"])
def test_spike_file_values_sum_to_every_neurons_code(folder, tmp_path, coding):
    """The file stores values wide enough for the coding (int16 past ±127): per neuron, the
    signed sum of its spike values is its reference code."""
    from spikelm.io.sonata import read_metadata, read_spikes
    from spikelm.lm import convert

    out = tmp_path / f"{coding}.h5"
    bits = "lin=6,act=6,res=6,att=9,oth=6" if coding != "unit" else "5"
    args = parse(["lm", "generate", "--model", str(folder), "--prompt", "Return the", "--tokens", "3",
                  "--bits", bits, "--coding", coding, "--out", str(out)])
    assert args.func(args) == 0
    spikes, meta = read_spikes(out), read_metadata(out)
    assert meta["coding"] == coding and meta["precision"]["att"] == (9 if coding != "unit" else 5)
    tok = CharTokenizer.load(folder / "tokenizer.json")
    snn = convert(folder, calibration=tok.encode(tok.clean(TEXT[::-1][:4000])), bits=bits, coding=coding)
    ids = np.array(meta["tokens"][:-1])  # the last new token is not run
    ref = snn.reference(ids)
    for name, codes in ref.codes.items():
        t = spikes[name]
        sums = np.zeros(codes.size, np.int64)
        np.add.at(sums, t.node_ids.astype(np.int64), t.values.astype(np.int64))
        assert np.array_equal(sums.reshape(codes.shape), codes), name
    if coding != "unit":
        att = spikes["h0.att"].values
        assert att.dtype == np.int16 and np.abs(att).max() > 127


def test_generate_matches_api(folder, capsys):
    from spikelm.lm import convert

    args = parse(["lm", "generate", "--model", str(folder), "--prompt", "If the", "--tokens", "3"])
    assert args.func(args) == 0
    shown = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("generated:")][0]
    tok = CharTokenizer.load(folder / "tokenizer.json")
    snn = convert(folder, calibration=tok.encode(tok.clean(TEXT[::-1][:4000])), bits=8)
    gen = snn.generate(tok.encode("If the"), 3)
    assert shown == "generated: " + repr("If the|" + tok.decode(gen.new_tokens))


def test_check_reports_exact_agreement(folder, capsys):
    args = parse(["lm", "check", "--model", str(folder), "--prompts", "2", "--length", "12", "--bits", "5"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "exact agreement: yes on 2 prompts of 12 tokens; largest code difference 0" in out


def test_report_compares_codings_in_a_table_a_chart_and_json(folder, tmp_path, capsys):
    from spikelm.lm import convert
    from spikelm.lm.report import energy

    png, js = tmp_path / "synops.png", tmp_path / "counts.json"
    args = parse(["lm", "report", "--model", str(folder), "--out", str(png), "--length", "10",
                  "--e-ac", "1.0", "--e-shift", "0.5", "--json", str(js)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "energy estimate" in out and "1.0 pJ/AC, +0.5 pJ per shift-add" in out and png.stat().st_size > 1000
    assert "codings side by side" in out
    data = json.loads(js.read_text())
    assert data["tokens"] == 10 and list(data["codings"]) == ["unit", "bitplane", "signed_digit"]
    tok = CharTokenizer.load(folder / "tokenizer.json")
    snn = convert(folder, calibration=tok.encode(tok.clean(TEXT[::-1][:4000])), bits=8)
    ids = tok.encode(tok.clean(TEXT)[:10])
    for coding, d in data["codings"].items():
        sim = snn.with_coding(coding).simulate(ids)
        assert d["synops"] == sim.synops and d["shift_adds"] == sim.shift_adds  # what the API counts
        e = energy(sim.synops["total"], sim.macs["total"], 1.0, 4.6, sim.shift_adds["total"], 0.5)
        assert d["energy_estimate_j"]["snn_j"] == pytest.approx(e["snn_j"])
        assert f"{coding:<14}{sim.synops['total'] / 10:>15,.0f}" in out
    unit, sd = data["codings"]["unit"]["summary"], data["codings"]["signed_digit"]["summary"]
    assert sd["synops_over_macs"] < unit["synops_over_macs"] and sd["steps_per_token"] < unit["steps_per_token"]


@pytest.mark.parametrize("argv, match", [
    (["generate", "--prompt", "x" * 30, "--tokens", "1"], "30 tokens exceed the model's context of 24"),
    (["generate", "--prompt", "abc", "--tokens", "30"], "exceed the model's context of 24"),
    (["generate", "--prompt", "", "--tokens", "2"], "prompt: empty"),
    (["generate", "--prompt", "caf\u00e9", "--tokens", "2"], "not in the tokenizer's vocabulary"),
    (["generate", "--prompt", "abc", "--tokens", "2", "--bits", "17"], "--bits=17; allowed: an integer 2-16"),
    (["check", "--bits", "lin=8,foo=3"], "--bits='lin=8,foo=3': 'foo=3' is not understood; allowed: .*lin, act"),
    (["report", "--out", "x.png", "--codings", "unit,ternary"], "--codings 'unit,ternary': 'ternary' is not a "
     "coding; allowed: unit, bitplane, signed_digit"),
    (["report", "--out", "x.png", "--e-shift", "nan"], "--e-shift nan: allowed: a finite energy"),
    (["report", "--out", "/nonexistent-dir/x.png"], "does not exist"),
])
def test_bad_arguments_raise_one_line_errors(folder, argv, match, tmp_path):
    args = parse(["lm", argv[0], "--model", str(folder), *argv[1:]])
    with pytest.raises(ConfigError, match=match) as info:
        args.func(args)
    assert "\n" not in str(info.value)


def test_bad_out_path_writes_nothing(folder, tmp_path, capsys):
    out = tmp_path / "run.h5"
    args = parse(["lm", "generate", "--model", str(folder), "--prompt", "abc", "--tokens", "2",
                  "--out", str(out), "--max-steps", "1"])
    with pytest.raises(SpikelmError, match="no quiescence") as info:
        args.func(args)
    assert not out.exists()  # only the .partial file of the failed run remains
    # ... and the one-line error says where it is, so it is not a surprise
    assert f"{out}.partial" in str(info.value) and "--max-steps" in str(info.value)
    assert "\n" not in str(info.value)


def test_main_exits_2_on_errors(folder, capsys):
    assert cli.main(["lm", "generate", "--model", str(folder / "nope"), "--prompt", "a", "--tokens", "1"]) == 2
    assert "not a model folder" in capsys.readouterr().err


def test_generate_says_prompt_plus_new_tokens(folder, capsys):
    """'--tokens 3' with a 4-token prompt: 4 + 3 tokens, 6 positions run (the last new token
    is read off the logits and never run), not '6 tokens simulated'."""
    args = parse(["lm", "generate", "--model", str(folder), "--prompt", "Retu", "--tokens", "3"])
    assert args.func(args) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if "positions simulated" in ln][0]
    assert line.startswith("4 prompt + 3 new tokens: 6 positions simulated")


@pytest.mark.parametrize("present", [[], ["vocab.json"]])
def test_folder_without_tokenizer_names_the_files_looked_for(folder, tmp_path, present):
    """Without a tokenizer the user read '--prompt: empty' / 'token ids are empty'."""
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors", "calibration.txt"):
        (bare / name).write_bytes((folder / name).read_bytes())
    for name in present:          # half a GPT-2 tokenizer (merges.txt missing) is none
        (bare / name).write_text("{}")
    args = parse(["lm", "generate", "--model", str(bare), "--prompt", "abc", "--tokens", "1"])
    with pytest.raises(FileFormatError) as info:
        args.func(args)
    msg = str(info.value)
    assert "\n" not in msg and str(bare) in msg and "no tokenizer" in msg
    from spikelm.lm.models import TOKENIZER_FILES

    for looked_for in TOKENIZER_FILES:
        assert looked_for in msg


@pytest.mark.slow
def test_default_output_is_read_by_libsonata(tmp_path, capsys):
    """The main job's default file (the shipped demo, scaleoffset-filtered) opens in the SONATA
    reference reader, spike for spike equal to what spikelm reads, with honest step units;
    deflate (the default before) does not."""
    libsonata = pytest.importorskip("libsonata", reason="libsonata not installed (it comes with the dev extra)")
    from spikelm.io.sonata import read_metadata, read_spikes

    paths = {}
    for compression in ("default", "none", "deflate"):
        paths[compression] = out = tmp_path / f"{compression}.h5"
        extra = [] if compression == "default" else ["--compression", compression]
        args = parse(["lm", "generate", "--prompt", "Return the ", "--tokens", "2", "--out", str(out), *extra])
        assert args.func(args) == 0
    capsys.readouterr()
    ours = read_spikes(paths["default"])
    assert read_metadata(paths["default"])["time_unit"] == "step"
    reader = libsonata.SpikeReader(str(paths["default"]))
    assert sorted(reader.get_population_names()) == sorted(ours)
    for name, table in ours.items():
        pop = reader[name]
        assert pop.time_units == "step" and pop.sorting == "by_time"
        got = pop.get_dict()
        np.testing.assert_array_equal(np.asarray(got["node_ids"]), table.node_ids)
        np.testing.assert_array_equal(np.asarray(got["timestamps"]), table.timestamps)
        assert np.array_equal(table.timestamps, np.rint(table.timestamps))   # whole steps
    plain = read_spikes(paths["none"])
    for name, table in ours.items():     # the filter is lossless
        np.testing.assert_array_equal(plain[name].node_ids, table.node_ids)
        np.testing.assert_array_equal(plain[name].timestamps, table.timestamps)
        np.testing.assert_array_equal(plain[name].values, table.values)
    sizes = {k: p.stat().st_size for k, p in paths.items()}
    assert sizes["deflate"] < sizes["default"] < sizes["none"]
    with pytest.raises(RuntimeError):    # what users met before: deflate is not in libsonata's wheel
        libsonata.SpikeReader(str(paths["deflate"]))[next(iter(ours))].get()


def test_info_of_a_converted_lm_file_speaks_of_steps_not_ms(folder, tmp_path, capsys):
    from spikelm.io.sonata import summary

    out = tmp_path / "lm.h5"
    args = parse(["lm", "generate", "--model", str(folder), "--prompt", "abc", "--tokens", "2", "--out", str(out)])
    assert args.func(args) == 0
    text = summary(out)
    assert "time unit: step" in text and "per 1k steps" in text and "step span" in text
    assert " ms" not in text and "Hz" not in text


@pytest.mark.parametrize("argv", [
    ["lm", "generate", "--tokens", "x"],
    ["lm", "report", "--coding", "morse"],
    ["lm", "bogus"],
])
def test_usage_errors_of_spikelm_lm_are_one_line(argv, capsys):
    from spikelm.cli import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.count("\n") == 1 and err.startswith("spikelm: error: spikelm lm"), err


def test_generate_prints_compile_time_apart_from_the_run(folder):
    """A fresh process compiles or loads the token loop: generate's timing line gives the run's
    seconds and, apart, the compiler's (issue 27: "simulated in 17.35 s" cold, 2.10 s warm)."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "spikelm.cli", "lm", "generate", "--model", str(folder),
                           "--prompt", "Return the", "--tokens", "3"],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if " positions simulated in " in ln)
    m = re.search(r"simulated in ([\d.]+) s \(besides ([\d.]+) s (compiling|loading compiled code): "
                  r"once per kind of model, cached for later runs\)", line)
    assert m, line
    run_s, compile_s = float(m.group(1)), float(m.group(2))
    assert compile_s >= 0.005 and run_s + compile_s <= wall
