"""A team of threads runs a converted LM exactly as one thread does (issue 23): every neuron
receives the same integer additions whichever thread adds them, so logits, codes, spikes,
steps, SynOps and events agree bit for bit, and all of them equal the quantized reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lm_hf_families import CLASSES as HF_CLASSES, cases as hf_cases, convert_case
from test_lm_exact import SETTINGS, gpt_cases
from test_lm_helpers import assert_lm_agree, assert_matches_reference, random_tiny_gpt, scaled, token_ids
from test_lm_llama import build as build_llama, llama_cases, random_llama
from test_lm_plasticity import EVERYTHING
from spikelm.errors import ConfigError
from spikelm.lm import convert
from spikelm.lm.numba_runner import NumbaRunner, split
from spikelm.lm.results import drive
from spikelm.lm.sync import BAR_STRIDE
from spikelm.lm.threads import resolve


def run_on(snn, ids, threads):
    """``ids`` on a numba runner of ``threads`` threads (any count: more than the cores too)."""
    return drive(NumbaRunner(snn.graph, record=True, threads=threads), ids, None, None, "numba")


def assert_threads_agree(snn, ids, teams=(2, 3)):
    one = run_on(snn, ids, 1)
    assert_matches_reference(snn, ids, one)
    for t in teams:
        assert_lm_agree(one, run_on(snn, ids, t))


def quick_gpt2(case):
    """A drawn GPT-2 case converted, and at most 6 token ids for it (unit coding at 4 bits: its
    spike trains are long, keep the example quick)."""
    if case["coding"] == "unit":
        case["bits"] = 4
    model = random_tiny_gpt(case["seed"], case["vocab"], case["ctx"], case["width"], case["layers"],
                            case["heads"], case["std"], case["tied"], case["activation"], case["inner"])
    snn = convert(model, calibration=token_ids(case["seed"] + 1, 30, case["vocab"]), bits=case["bits"],
                  coding=case["coding"])
    return snn, token_ids(case["seed"] + 2, min(case["length"], 6), case["vocab"])


@settings(max_examples=scaled(6), **SETTINGS)
@given(case=gpt_cases())
def test_threads_run_random_gpt2_models_bit_for_bit_as_one_thread(case):
    assert_threads_agree(*quick_gpt2(case))


@settings(max_examples=scaled(6), **SETTINGS)
@given(case=llama_cases())
def test_threads_run_random_llama_models_bit_for_bit_as_one_thread(case):
    if case["coding"] == "unit":
        case["bits"] = 4
    case["length"] = min(case["length"], 6)
    _, snn = build_llama(case)
    assert_threads_agree(snn, token_ids(case["seed"] + 2, case["length"], case["vocab"]))


@settings(max_examples=scaled(5), **SETTINGS)
@given(case=hf_cases(list(HF_CLASSES)))
def test_threads_run_windowed_and_soft_capped_families_bit_for_bit_as_one_thread(case):
    """Qwen3, Gemma 1/2/3 and Llama-family models with sliding windows shorter than the
    sequence (a Q spike reaches only the window's keys, in its thread's heads), soft-caps and
    RoPE scaling."""
    case = {**case, "length": min(case["length"], 6)}
    if case["coding"] == "unit":
        case["bits"] = 4
    _, snn = convert_case(case)
    assert_threads_agree(snn, token_ids(case["seed"] + 2, case["length"], case["vocab"]))


@pytest.mark.parametrize("family", ["neox", "opt", "phi3"])
def test_threads_run_neox_opt_and_phi3_bit_for_bit_as_one_thread(family):
    """GPT-NeoX (parallel residuals, partial rotary), OPT and Phi-3, one drawn case each."""
    import importlib

    mod = importlib.import_module(f"test_lm_family_{family}")

    @settings(max_examples=scaled(2), **SETTINGS)
    @given(case=mod.__dict__[f"{family}_cases"]())
    def check(case):
        model = mod.__dict__[family](case)
        bits = 4 if case["coding"] == "unit" else case["bits"]  # unit spike trains are long
        snn = convert(model, calibration=token_ids(case["seed"] + 1, 40, case["vocab"]), bits=bits,
                      coding=case["coding"], weight_bits=case["weight_bits"], sink=case["sink"])
        assert_threads_agree(snn, token_ids(case["seed"] + 2, min(case["length"], 5), case["vocab"]))

    check()


@settings(max_examples=scaled(20), deadline=None)
@given(threads=st.integers(1, 6), seed=st.integers(0, 100))
def test_each_neuron_has_one_thread_and_attention_splits_by_whole_heads(threads, seed):
    snn = convert(random_tiny_gpt(seed % 3, width=32, heads=4), calibration=token_ids(seed, 20, 40), bits=4)
    g = snn.graph
    lo, hi = (a.reshape(threads, -1) for a in split(g, threads))
    for p, pop in enumerate(g.pops):
        assert lo[0, p] == 0 and hi[-1, p] == pop.size
        assert np.array_equal(lo[1:, p], hi[:-1, p]) and np.all(hi[:, p] >= lo[:, p])
    # the scores, their queries and the mix's output split by whole heads at the same cuts as
    # the scores and probabilities that feed them (so their spikes stay on their thread)
    for ed in g.edges:
        if ed.kind in ("scores", "mix"):
            cuts = [lo[:, p] // (g.pops[p].size // ed.heads) for p in (ed.a, ed.out)]
            assert np.all(lo[:, ed.a] % (g.pops[ed.a].size // ed.heads) == 0)
            assert np.all(lo[:, ed.out] % (g.pops[ed.out].size // ed.heads) == 0)
            assert np.array_equal(*cuts)


def test_quiet_steps_skip_the_barrier_after_propagate_and_change_nothing():
    """On steps where no spike leaves its thread, nothing settles and no held rows wait, the team
    skips its second barrier: each thread's barrier count (sync.barrier keeps one per thread)
    ends below two a step, and the run still equals one thread's bit for bit."""
    model = random_llama("llama", 3, vocab=50, ctx=12, layers=2, heads=4, kv_heads=2, head_dim=16, inner=64)
    snn = convert(model, calibration=token_ids(4, 40, 50), bits=8)
    ids = token_ids(5, 8, 50)
    one = run_on(snn, ids, 1)
    runner = NumbaRunner(snn.graph, threads=2)
    two = drive(runner, ids, None, None, "numba")
    assert_lm_agree(one, run_on(snn, ids, 2))
    np.testing.assert_array_equal(one.logits, two.logits)
    steps = int(np.sum(two.steps))
    counts = runner.split.bar[::BAR_STRIDE]
    assert counts[0] == counts[1]  # every thread passed the same barriers
    assert steps < counts[0] < 2 * steps


def test_generation_with_two_threads_is_the_greedy_reference_of_one():
    snn = convert(random_tiny_gpt(5, width=64, heads=4, layers=2), calibration=token_ids(4, 30, 40), bits=6)
    one = snn.generate([1, 2, 3], 5, threads=1)
    two = snn.generate([1, 2, 3], 5, threads=2)
    assert np.array_equal(one.tokens, two.tokens)
    assert_lm_agree(one.simulation, two.simulation)


def test_thread_counts_come_from_the_argument_then_the_environment(monkeypatch):
    snn = convert(random_tiny_gpt(1), calibration=token_ids(1, 20, 40), bits=4)
    g = snn.graph
    monkeypatch.setenv("SPIKELM_THREADS", "1")
    assert resolve(None, g) == 1
    assert resolve(1, g) == 1
    monkeypatch.delenv("SPIKELM_THREADS")
    assert resolve(None, g) == 1  # a tiny model: one thread by default (a second does not pay)
    assert resolve(None, g, backend="numpy") == 1


@pytest.mark.parametrize("threads, env, match", [
    (0, None, "threads: must be an integer from 1"),
    (2.5, None, "threads: must be an integer from 1"),
    (10**6, None, "threads: must be an integer from 1"),
    (None, "two", "SPIKELM_THREADS: must be an integer"),
    (None, "0", "SPIKELM_THREADS: must be an integer from 1"),
])
def test_bad_thread_counts_are_one_line_errors(monkeypatch, threads, env, match):
    snn = convert(random_tiny_gpt(1), calibration=token_ids(1, 20, 40), bits=4)
    if env is not None:
        monkeypatch.setenv("SPIKELM_THREADS", env)
    with pytest.raises(ConfigError, match=match) as err:
        snn.simulate([1, 2], threads=threads)
    assert "\n" not in str(err.value)


def test_the_numpy_backend_and_learning_runs_refuse_more_threads_in_one_line():
    snn = convert(random_tiny_gpt(1), calibration=token_ids(1, 20, 40), bits=4)
    with pytest.raises(ConfigError, match="numpy backend runs on one thread"):
        snn.simulate([1, 2], backend="numpy", threads=2)
    with pytest.raises(ConfigError, match="learning runs .* run on one thread"):
        snn.simulate([1, 2], plasticity=EVERYTHING, threads=2)


def test_the_commands_take_threads_and_print_what_one_thread_prints(tmp_path, capsys):
    import json

    from safetensors.torch import save_file

    from test_lm_cli import TEXT, parse
    from spikelm.lm.tokenizer import CharTokenizer

    tok = CharTokenizer()
    model = random_tiny_gpt(5, vocab=tok.vocab_size, ctx=24, width=32, layers=1, heads=2, std=0.2)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(model.config.to_dict()))
    tok.save(tmp_path / "tokenizer.json")
    (tmp_path / "calibration.txt").write_text(TEXT)
    outs = {}
    for threads in ("1", "2"):
        for cmd in (["generate", "--prompt", "Return the", "--tokens", "4"], ["check", "--prompts", "2", "--length", "6"]):
            args = parse(["lm", *cmd, "--model", str(tmp_path), "--bits", "6", "--threads", threads])
            assert args.func(args) == 0
            outs[threads, cmd[0]] = [ln for ln in capsys.readouterr().out.splitlines() if "simulated in" not in ln]
    assert outs["1", "generate"] == outs["2", "generate"] and outs["1", "check"] == outs["2", "check"]
    assert "exact agreement: yes" in outs["2", "check"][-1]


@pytest.mark.parametrize("load, expect", [(0.3, 2), (1.4, 2), (2.0, 1), (7.0, 1)])
def test_the_default_leaves_out_busy_cores_and_small_models(monkeypatch, load, expect):
    from spikelm.lm import threads

    monkeypatch.delenv("SPIKELM_THREADS", raising=False)
    monkeypatch.setattr(threads, "cores", lambda: 2)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (load, load, load))
    snn = convert(random_tiny_gpt(1), calibration=token_ids(1, 20, 40), bits=4)
    monkeypatch.setattr(threads, "WEIGHTS_PER_THREAD", 1)  # as if every weight were worth a thread
    assert resolve(None, snn.graph) == expect
    monkeypatch.setattr(threads, "WEIGHTS_PER_THREAD", 10**9)
    assert resolve(None, snn.graph) == 1


@settings(max_examples=scaled(8), **SETTINGS)
@given(case=llama_cases())
def test_the_batched_reference_equals_the_reference_run_position_by_position(case):
    """All positions' codes at once (integer matrix products over the sequence) are those of
    each position run alone after its prefix: the prompt's reference is exact whatever its length."""
    _, snn = build_llama(case)
    ids = token_ids(case["seed"] + 2, case["length"], case["vocab"])
    whole = snn.reference(ids)
    for n in range(len(ids)):
        part = snn.reference(ids[: n + 1])
        assert np.array_equal(part.logits[n], whole.logits[n])
        for name, codes in whole.codes.items():
            assert np.array_equal(part.codes[name][n], codes[n]), name
