"""``spikelm lm evaluate``: documents in, one row per document, the same on a cluster as serially."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from spikelm.cli import main
from spikelm.errors import ConfigError, FileFormatError
from spikelm.lm.convert import demo_model_path
from spikelm.scaleout import corpus
from spikelm.scaleout.table import read_table

SNN_TOKENS = 20


@pytest.fixture(scope="module")
def demo():
    from spikelm.lm import load_demo

    return load_demo(bits=8, calibration_chars=corpus.CALIBRATION_CHARS)


@pytest.fixture(scope="module")
def texts():
    held = (demo_model_path() / "heldout.txt").read_text()
    return [held[i * 90 : (i + 1) * 90] for i in range(4)]


def without_timing(row):
    return {k: v for k, v in row.items() if k != "wall_s"}


def test_directory_and_jsonl_give_the_same_documents(tmp_path, texts):
    d = tmp_path / "docs"
    d.mkdir()
    for i, t in enumerate(texts):
        (d / f"doc{i}.txt").write_text(t)
    (d / "notes.md").write_text("not a document")
    j = tmp_path / "docs.jsonl"
    j.write_text("".join(json.dumps({"id": f"doc{i}.txt", "text": t}) + "\n\n" for i, t in enumerate(texts)))
    assert corpus.read_documents(d) == corpus.read_documents(j) == [(f"doc{i}.txt", t) for i, t in enumerate(texts)]
    k = tmp_path / "noid.jsonl"
    k.write_text(json.dumps({"text": "ab"}) + "\n" + json.dumps({"text": "cd"}) + "\n")
    assert corpus.read_documents(k) == [("line 1", "ab"), ("line 2", "cd")]


@pytest.mark.parametrize("content,needle", [
    ('{"text": "a"}\nnot json\n', "line 2: not JSON"),
    ('{"txt": "a"}\n', "line 1: expected an object with a string field \"text\""),
    ('{"text": "a", "id": 1}\n{"text": "b", "id": "1"}\n', "line 2: id '1' appears twice"),
    ('{"text": "a", "id": [1]}\n', "line 1: id: expected a string or an integer"),
    ("\n\n", "no documents"),
])
def test_bad_jsonl_names_the_line(tmp_path, content, needle):
    p = tmp_path / "c.jsonl"
    p.write_text(content)
    with pytest.raises(FileFormatError, match=None) as e:
        corpus.read_documents(p)
    assert needle in str(e.value) and str(p) in str(e.value)


def test_missing_or_empty_sources_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such directory or file"):
        corpus.read_documents(tmp_path / "nope")
    with pytest.raises(ConfigError, match="no .txt files"):
        corpus.read_documents(tmp_path)


def test_a_document_row_agrees_with_the_lm_api(demo, texts):
    from spikelm.lm.evaluate import evaluate

    snn, tok = demo
    opts = corpus.EvalOptions(snn_tokens=SNN_TOKENS)
    row = corpus.evaluate_text(snn, tok, texts[0], opts)
    ids = tok.encode(tok.clean(texts[0]))
    ref = evaluate(snn, ids, SNN_TOKENS)
    assert row["tokens"] == ref["tokens"] == ids.size - 1
    assert row["float_ppl"] == ref["float_ppl"] and row["qann_ppl"] == ref["qann_ppl"]
    assert row["top1_agreement"] == ref["top1_agreement"]
    assert row["snn_tokens"] == ref["snn_tokens"] == SNN_TOKENS - 1
    assert row["snn_ppl"] == pytest.approx(ref["snn_ppl"], rel=1e-12)
    assert row["snn_exact"] is True and ref["snn_logits_exact"] is True
    sim = snn.simulate(ids[:SNN_TOKENS])
    assert row["synops"] == sim.synops["total"] > 0 and row["steps"] == int(sim.steps.sum())


def test_corpus_totals_weight_documents_by_tokens(demo, texts):
    snn, tok = demo
    opts = corpus.EvalOptions(snn_tokens=SNN_TOKENS)
    a = dict(corpus.evaluate_text(snn, tok, texts[1], opts), doc="a")
    one = corpus.totals([a])
    assert one["float_ppl"] == pytest.approx(a["float_ppl"]) and one["snn_ppl"] == pytest.approx(a["snn_ppl"])
    twice = corpus.totals([a, dict(a, doc="b")])
    assert twice["tokens"] == 2 * a["tokens"] and twice["synops"] == 2 * a["synops"]
    assert twice["qann_ppl"] == pytest.approx(a["qann_ppl"])
    b = dict(corpus.evaluate_text(snn, tok, texts[2][:30], opts), doc="c")
    mixed = corpus.totals([a, b, {"doc": "x", "status": "error", "error": "e"}])
    want = math.exp((math.log(a["float_ppl"]) * a["tokens"] + math.log(b["float_ppl"]) * b["tokens"])
                    / (a["tokens"] + b["tokens"]))
    assert mixed["float_ppl"] == pytest.approx(want) and mixed["status"] == "2 of 3 ok"


@pytest.mark.slow  # two workers each convert the demo model: ~20-50 s on 2 cores
def test_cluster_of_two_workers_equals_serial_and_converts_once_per_worker(texts):
    pytest.importorskip("distributed", reason="needs the distributed extra (dask[distributed])")
    from distributed import Client

    from spikelm.scaleout import worker
    from spikelm.scaleout.cluster import local_cluster

    docs = [(f"d{i}", t) for i, t in enumerate(texts)] + [("short", "x")]
    opts = corpus.EvalOptions(snn_tokens=SNN_TOKENS)
    serial = corpus.evaluate_corpus(docs, opts, "serial", progress=False)
    with local_cluster(2) as cluster, Client(cluster) as client:
        rows = corpus.evaluate_corpus(docs, opts, client, progress=False)
        converted = client.run(worker.conversions)
    assert [without_timing(r) for r in rows] == [without_timing(r) for r in serial]
    assert [r["status"] for r in rows] == ["ok"] * 4 + ["error"]
    assert "at least 2 needed" in rows[-1]["error"]
    assert sorted(converted.values()) in ([1, 1], [0, 1])


def test_cli_text_writes_the_table(tmp_path, texts, capsys):
    src = tmp_path / "t.txt"
    src.write_text(texts[3])
    out = tmp_path / "t.h5"
    assert main(["lm", "evaluate", "--text", str(src), "--snn-tokens", str(SNN_TOKENS), "--out", str(out)]) == 0
    docs, total = read_table(out, "documents"), read_table(out, "corpus")
    assert [d["doc"] for d in docs] == ["t.txt"] and docs[0]["snn_exact"] is True
    assert total[0]["tokens"] == docs[0]["tokens"] and total[0]["snn_ppl"] == pytest.approx(docs[0]["snn_ppl"])
    assert "t.txt" in capsys.readouterr().out


def test_cli_docs_serial_reports_a_failing_document_and_finishes_the_others(tmp_path, texts, capsys):
    d = tmp_path / "docs"
    d.mkdir()
    (d / "a.txt").write_text(texts[0][:40])
    (d / "b.txt").write_text("ééé")  # nothing left after dropping non-ASCII
    out = tmp_path / "c.h5"
    assert main(["lm", "evaluate", "--docs", str(d), "--scheduler", "serial", "--snn-tokens", "8",
                 "--out", str(out), "--no-progress"]) == 1
    rows = read_table(out, "documents")
    assert [r["status"] for r in rows] == ["ok", "error"] and "b.txt" in capsys.readouterr().out


@pytest.mark.parametrize("argv,needle", [
    (["--docs", "/nonexistent/x"], "--docs /nonexistent/x: no such directory or file"),
    (["--text", "/nonexistent/x"], "/nonexistent/x: no such file; expected a UTF-8 text file (--text)"),
    (["--text", "{docs}/a.txt", "--window", "1"], "--window 1"),
    (["--text", "{docs}/a.txt", "--json", "/nonexistent-dir/x.json"], "--json /nonexistent-dir/x.json"),
    (["--docs", "{docs}", "--scheduler", "what"], "--scheduler 'what'"),
    (["--text", "{docs}/a.txt", "--bits", "17"], "--bits=17"),
    (["--text", "{docs}/a.txt", "--snn-tokens", "-1"], "--snn-tokens -1"),
    (["--text", "{docs}/a.txt", "--model", "{docs}"], "not a model folder"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, needle):
    d = tmp_path / "docs"
    d.mkdir()
    (d / "a.txt").write_text("Return the value.")
    argv = [a.replace("{docs}", str(d)) for a in argv]
    needle = needle.replace("{docs}", str(d))
    assert main(["lm", "evaluate", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("spikelm: error: ") and needle in err and err.count("\n") == 1


def test_cli_default_text_is_the_built_in_held_out_text(capsys):
    assert main(["lm", "evaluate", "--snn-tokens", "12", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "python-topics (built-in held-out text)" in out and "logits equal to the QANN's: yes" in out


def test_results_do_not_depend_on_document_order(demo, texts):
    snn, tok = demo
    opts = corpus.EvalOptions(snn_tokens=SNN_TOKENS)
    cache = corpus.ModelCache()
    cache._models[opts.key] = demo
    fwd = [corpus.evaluate_document(f"d{i}", t, opts, cache) for i, t in enumerate(texts[:3])]
    back = [corpus.evaluate_document(f"d{i}", t, opts, cache) for i, t in reversed(list(enumerate(texts[:3])))]
    assert [without_timing(r) for r in fwd] == [without_timing(r) for r in reversed(back)]
    assert cache.conversions == 0
    assert np.isfinite([r["snn_ppl"] for r in fwd]).all()
