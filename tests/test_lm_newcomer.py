"""What a newcomer to the LM commands tripped over (issue 27), each fixed and held here.

- ``python -m spikelm.lm.smollm2`` printed a path after importing torch (8-18 s);
- the per-token table of ``lm generate`` was cryptic: ``token`` was the predicted next token,
  a Llama's attention-sink prefix made it one position off, long tokens pushed the columns;
- ``lm evaluate`` printed ``snn_ppl`` beside ``float_ppl`` of other tokens;
- kill -9 could lose the last token *printed* (the line came before the file's flush).
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fuzzing import lm_model_folder, run_cli

REPO = Path(__file__).resolve().parents[1]


def test_the_smollm2_path_entry_point_imports_neither_torch_nor_transformers():
    code = ("import sys, spikelm.lm.smollm2 as m; m.models_dir(); "
            "print(sorted({'torch', 'transformers', 'numba'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}).stdout
    assert out.strip() == "[]"


def test_spikelm_lm_convert_stays_the_function_whoever_imports_the_submodule_first():
    pytest.importorskip("torch", reason="spikelm.lm.convert needs torch (the lm extra)")
    code = ("import importlib; module = importlib.import_module('spikelm.lm.convert'); import spikelm.lm as lm; "
            "from spikelm.lm import convert; "
            "print(callable(convert), convert is lm.convert, type(module).__name__, module.convert is convert)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}).stdout
    assert out.split() == ["True", "True", "module", "True"]


def test_readme_unpacks_smollm2_once():
    assert (REPO / "README.md").read_text().count("$(python -m spikelm.lm.smollm2)") == 1


# -- the per-token table of lm generate ----------------------------------------------------------


def _rows(out: str, width: int):
    """(pos, input, next) of every token line: cells are fixed-width Python reprs."""
    rows = []
    for line in out.splitlines():
        if line[:5].strip().isdigit() and line[5:7] == "  ":
            cells = line[7:7 + width], line[7 + width:7 + 2 * width]
            rows.append((int(line[:5]), *(ast.literal_eval(c.strip()) if c.strip() else None for c in cells)))
    return rows


@pytest.mark.parametrize("family", ["gpt2", "llama with an attention sink"])
def test_each_line_shows_the_token_run_and_the_token_predicted_from_it(family, tmp_path):
    """Every position after the first runs the token the line before predicted; the `next`
    cells, from the last prompt token on, spell the generated text; no line for the sink."""
    from spikelm.lm.report import TokenTable

    if family == "gpt2":
        pytest.importorskip("torch", reason="the test model is built with torch (the lm extra)")
        model, prompt, first = lm_model_folder(tmp_path / "m"), "Re", 0
    else:
        pytest.importorskip("gguf", reason="the test GGUF file is written with gguf (the lm extra)")
        pytest.importorskip("transformers", reason="GGUF files are read through transformers (the lm extra)")
        from gguf_files import write_llama

        model, prompt, first = write_llama(tmp_path / "t.gguf"), "ab", 1
    o = run_cli(["lm", "generate", "--model", model, "--prompt", prompt, "--tokens", "4"])
    assert o.rc == 0, o.err
    rows = _rows(o.out, TokenTable.WIDTH)
    assert [r[0] for r in rows] == list(range(first, first + len(prompt) + 3))   # positions, the sink's not shown
    assert "".join(r[1] for r in rows[: len(prompt)]) == prompt
    assert all(r[2] is None for r in rows[: len(prompt) - 1])                       # prompt: nothing generated yet
    assert all(r[2] == s[1] for r, s in zip(rows, rows[1:]) if r[2] is not None)    # next runs at the next position
    generated = next(ln for ln in o.out.splitlines() if ln.startswith("generated:"))
    assert ast.literal_eval(generated.split(": ", 1)[1]) == prompt + "|" + "".join(r[2] for r in rows[len(prompt) - 1:])
    assert "shift-adds:" in o.out and "op evals:" in o.out       # the layer table's legend


def test_long_tokens_keep_the_columns():
    from spikelm.lm.report import TokenTable

    for text in ("a", "x" * 40, "é" * 9, "\n\t"):
        cell = TokenTable(lambda ids, t=text: t, [], 0).cell(0)
        assert len(cell) == TokenTable.WIDTH and cell[-2:] == "  "


# -- lm evaluate ----------------------------------------------------------------------------------


def test_evaluate_puts_the_qann_and_float_on_the_snns_tokens_beside_snn_ppl(tmp_path):
    """With the SNN on every token the subset figures are the whole text's; on a few tokens
    the QANN's equals the exact SNN's."""
    pytest.importorskip("torch", reason="the test model is built with torch (the lm extra)")
    model = lm_model_folder(tmp_path / "m")
    (tmp_path / "t.txt").write_text("Return the value of the file. Return the value.")
    for n in (1000, 9):
        o = run_cli(["lm", "evaluate", "--model", model, "--text", tmp_path / "t.txt", "--snn-tokens", n,
                     "--no-progress", "--json", tmp_path / f"e{n}.json"])
        assert o.rc == 0, o.err
        r = json.loads((tmp_path / f"e{n}.json").read_text())["documents"][0]
        assert r["snn_ppl"] == r["qann_ppl_snn_tokens"]
        line = next(ln for ln in o.out.splitlines() if ln.startswith("SNN on the first"))
        assert f"QANN {r['qann_ppl_snn_tokens']:.3f}, float {r['float_ppl_snn_tokens']:.3f}" in line
        if n == 1000:
            assert r["snn_tokens"] == r["tokens"]
            assert r["float_ppl_snn_tokens"] == pytest.approx(r["float_ppl"], rel=1e-12)
        else:
            assert r["snn_tokens"] < r["tokens"]


# -- crash safety: the file before the line ---------------------------------------------------------


def test_the_spike_file_is_flushed_before_a_token_line_is_printed():
    """kill -9 right after a line is printed must find its token on disk (the kill -9 test in
    test_crash_safety.py can only catch a wrong order by chance)."""
    from spikelm.lm.cli import _token_done

    events = []

    class Writer:
        def flush(self):
            events.append("flush")

    class CtrlC:
        def check(self):
            events.append("ctrl-c")

    _token_done(lambda *a: events.append("print"), Writer(), CtrlC())(0, None, None)
    assert events == ["flush", "print", "ctrl-c"]
