"""One calibration reused across conversions (:class:`spikelm.lm.calibration.Calibration`): the
graphs it builds are those calibrating again builds, bit for bit, without a float pass; one made
for another model, context, sink or rotate is refused in one line naming what differs; the
SmolLM2 benchmark's frontier calibrates no more."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_lm_helpers import random_hf_gpt2, scaled, token_ids
from test_lm_llama import SETTINGS, llama_cases, random_llama, save_llama
from spikelm.errors import ConfigError
from spikelm.lm import convert
from spikelm.lm.calibration import Calibration
from spikelm.lm.families.llama import calibrate as C
from spikelm.lm.precision import GROUPS


def assert_same(a, b, where="graph"):
    """``a`` and ``b`` hold the same values all the way down: arrays by dtype, shape and bytes;
    mappings, sequences, dataclasses and plain objects field by field."""
    if isinstance(a, (np.ndarray, np.generic)) or isinstance(b, (np.ndarray, np.generic)):
        a, b = np.asarray(a), np.asarray(b)
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        assert a.tobytes() == b.tobytes(), where
    elif isinstance(a, Mapping):
        assert isinstance(b, Mapping) and list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif dataclasses.is_dataclass(a) and not isinstance(a, type):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif hasattr(a, "__dict__") and not isinstance(a, type):
        assert type(a) is type(b), where
        assert_same(vars(a), vars(b), where)
    else:
        assert type(a) is type(b) and a == b, where


def counting_maxabs():
    """C.maxabs wrapped by a mock that counts its calls (the builder reaches it through C)."""
    return mock.patch.object(C, "maxabs", wraps=C.maxabs)


def model_of(case, **over):
    c = {**case, **over}
    return random_llama(c["family"], c["seed"], c["vocab"], c["ctx"], c["layers"], c["heads"], c["kv_heads"],
                        c["head_dim"], c["inner"], c["tied"], c["std"])


@st.composite
def bits_settings(draw):
    one = st.one_of(st.integers(3, 8), st.fixed_dictionaries({g: st.integers(3, 12) for g in GROUPS}))
    return draw(st.lists(one, min_size=2, max_size=3))


@settings(max_examples=scaled(10), **SETTINGS)
@given(case=llama_cases(), others=bits_settings(), keep_float=st.booleans(),
       methods=st.sampled_from(["row-exponents", "none", "rotate,row-exponents", "fisher,row-exponents"]))
def test_settings_converted_from_one_calibration_are_the_graphs_calibrating_each_gives(case, others, keep_float,
                                                                                    methods):
    """The first conversion's calibration converts other bits settings (its methods and sink, any
    coding, weight bits, keep_float) with no float pass; every population, weight row, edge, the
    prefix and the meta equal those of a conversion that calibrates on the same token ids."""
    model, calib = model_of(case), token_ids(case["seed"] + 1, 40, case["vocab"])
    common = dict(coding="bitplane" if case["coding"] == "unit" else case["coding"], sink=case["sink"],
                  methods=methods)
    with counting_maxabs() as spy:
        first = convert(model, calibration=calib, bits=case["bits"], weight_bits=case["weight_bits"], **common)
        assert spy.call_count == 1
        reused = [convert(model, calibration=first.calibration, bits=b, keep_float=keep_float, **common)
                  for b in others]
        assert spy.call_count == 1  # no calibration pass for the reused settings
        fresh = [convert(model, calibration=calib, bits=b, **common) for b in others]
        assert spy.call_count == 1 + len(others)
    for b, r, f in zip(others, reused, fresh):
        assert r.calibration is first.calibration
        assert str(r.bits) == str(f.bits) and f.calibration is not first.calibration
        assert_same(r.graph, f.graph, f"graph (bits {b})")
    assert first.calibration.methods == (("rotate",) if "rotate" in methods else ())
    assert first.calibration.ids.tobytes() == calib.astype(np.int64).tobytes()


@pytest.fixture(scope="module")
def first():
    """A qwen2 model and the calibration of its default conversion (sink on, no rotate)."""
    case = dict(family="qwen2", seed=3, vocab=50, ctx=12, layers=2, heads=2, kv_heads=1, head_dim=8, inner=24,
                tied=False, std=0.3)
    model = model_of(case)
    return case, model, convert(model, calibration=token_ids(1, 40, 50)).calibration


@pytest.mark.parametrize("change, message", [
    (dict(seed=4), r"computed for other weights of this shape \(another checkpoint or quantization\); give token "
                   r"ids to calibrate this model"),
    (dict(layers=3), r"computed for num_hidden_layers=2, this model has num_hidden_layers=3; give token ids"),
    (dict(inner=40), r"computed for intermediate_size=24, this model has intermediate_size=40; give token ids"),
    (dict(family="llama"), r"computed for a qwen2 model, this one is llama; give token ids"),
    (dict(family="mistral"), r"computed for a qwen2 model, this one is mistral; give token ids"),
    ({"context": 8}, r"computed for context=12, this conversion has context=8; give context=12 or token ids"),
    ({"sink": False}, r"computed with the attention sink \(prefix \[1\]\), this conversion has no attention sink "
                      r"\(sink=False\); give sink=True or token ids"),
    ({"methods": "rotate,row-exponents"}, r"computed with method rotate off \(it changes the float model\), this "
                                          r"conversion has it on; turn it off \(methods\) or give token ids"),
])
def test_a_calibration_made_for_another_conversion_is_refused_naming_what_differs(first, change, message):
    case, model, calibration = first
    options = {k: v for k, v in change.items() if k in ("context", "sink", "methods")}
    other = model_of(case, **{k: v for k, v in change.items() if k not in options}) if len(options) < len(change) \
        else model
    with counting_maxabs() as spy, pytest.raises(ConfigError, match=f"^calibration: {message}") as err:
        convert(other, calibration=calibration, **options)
    assert "\n" not in str(err.value) and spy.call_count == 0


def test_rotate_on_one_side_only_is_refused_both_ways(first):
    case, model, _ = first
    rotated = convert(model, calibration=token_ids(1, 40, 50), methods="rotate").calibration
    with pytest.raises(ConfigError, match=r"^calibration: computed with method rotate on \(it changes the float "
                                          r"model\), this conversion has it off; turn it on \(methods\)"):
        convert(model, calibration=rotated)
    # with rotate on both sides it converts, and other methods (fisher) need no new calibration
    convert(model, calibration=rotated, methods="rotate,fisher", bits=6)


def test_families_that_calibrate_their_own_way_refuse_a_calibration(first):
    _, _, calibration = first
    with pytest.raises(ConfigError, match=r"^calibration: a Calibration is reused by Llama-family, .*Qwen3.* models "
                                          r"only; give GPT-2 models calibration token ids$"):
        convert(random_hf_gpt2(1), calibration=calibration)


@pytest.mark.parametrize("family", ["neox", "opt", "phi3"])
def test_the_shared_decoders_families_reuse_a_calibration_too(family):
    """GPT-NeoX, OPT and Phi-3 (the shared decoder's builder): two settings converted from one
    calibration are the graphs calibrating each gives; another family's, or another context's,
    is refused in one line."""
    import importlib

    from spikelm.lm.families.decoder import build as decoder_build

    mod = importlib.import_module(f"test_lm_family_{family}")

    @settings(max_examples=scaled(2), **SETTINGS)
    @given(case=mod.__dict__[f"{family}_cases"](), others=bits_settings())
    def check(case, others):
        model = mod.__dict__[family](case)
        ids = token_ids(case["seed"] + 1, 40, case["vocab"])
        opts = dict(coding=case["coding"], weight_bits=case["weight_bits"], sink=case["sink"])
        first = convert(model, calibration=ids, bits=case["bits"], **opts)
        calibration = first.calibration
        assert isinstance(calibration, Calibration)
        for bits in others:
            with mock.patch.object(decoder_build, "calibrate", wraps=decoder_build.calibrate) as calls:
                again = convert(model, calibration=calibration, bits=bits, **opts)
            assert calls.call_count == 0  # no float pass
            fresh = convert(model, calibration=ids, bits=bits, **opts)
            meta = {k: v for k, v in again.graph.meta.items() if k != "calibration"}
            assert_same(meta, {k: v for k, v in fresh.graph.meta.items() if k != "calibration"})
            assert_same(again.graph.pops, fresh.graph.pops, "pops")
            assert_same(again.graph.projections, fresh.graph.projections, "projections")
            assert_same(again.graph.edges, fresh.graph.edges, "edges")
        with pytest.raises(ConfigError, match=r"^calibration: computed for a llama model, this one is "):
            convert(model, calibration=llama_calibration(), bits=case["bits"], **opts)

    check()


def llama_calibration():
    """The calibration of a small random Llama model (another family's, for a refusal)."""
    snn = convert(random_llama("llama", 0, 40, 8, 1, 2, 1, 8, 24), calibration=token_ids(1, 40, 40), bits=6)
    return snn.calibration


def test_open_for_cli_takes_a_calibration_alone(tmp_path, first):
    from spikelm.lm.models import open_for_cli
    from spikelm.lm.tokenizer import CharTokenizer

    tok = CharTokenizer()
    path = save_llama(random_llama("llama", 4, vocab=tok.vocab_size, ctx=24, layers=1, heads=2, kv_heads=1),
                      tmp_path / "m")
    tok.save(path / "tokenizer.json")
    with counting_maxabs() as spy:
        snn, _, _ = open_for_cli(str(path), bits=8)
        again, _, _ = open_for_cli(str(path), bits=5, calibration=snn.calibration)
        assert spy.call_count == 1 and again.calibration is snn.calibration
    with pytest.raises(ConfigError, match=r"^open_for_cli: calibration_text and calibration \(a Calibration\) both "
                                          r"given; give one$"):
        open_for_cli(str(path), calibration=snn.calibration, calibration_text="Some text " * 4)
    with pytest.raises(ConfigError, match=r"^calibration: expected a Calibration \(SpikingLM.calibration of an "
                                          r"earlier conversion\), got a ndarray$"):
        open_for_cli(str(path), calibration=np.arange(20))
    with pytest.raises(ConfigError, match=r"^calibration: computed for a qwen2 model, this one is llama"):
        open_for_cli(str(path), calibration=first[2])


def test_a_calibration_is_read_only(first):
    _, _, calibration = first
    assert isinstance(calibration, Calibration)
    with pytest.raises(ValueError):
        calibration.ids[0] = 0
    with pytest.raises(ValueError):
        next(iter(calibration.maxabs.values()))[...] = 0
    with pytest.raises(TypeError):
        calibration.maxabs["x"] = np.zeros(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        calibration.ids = np.arange(8)


def test_a_calibration_pickles_and_converts_as_the_original(first):
    """Sent to another process (pickled), a calibration comes back read-only and equal, and a model
    converted from it is the one its original gives."""
    import pickle

    case, model, calibration = first
    back = pickle.loads(pickle.dumps(calibration))  # noqa: S301 (its own bytes)
    assert_same(back, calibration, "calibration")
    assert not back.ids.flags.writeable and all(not m.flags.writeable for m in back.maxabs.values())
    with counting_maxabs() as spy:
        assert_same(convert(model, calibration=back, bits=5).graph.pops,
                    convert(model, calibration=calibration, bits=5).graph.pops, "pops")
        assert spy.call_count == 0


def test_the_benchmark_frontier_runs_no_calibration_pass(tmp_path, capsys):
    """``benchmarks.lm_llama`` end to end on a tiny model folder: one calibration in all, the
    frontier says it reuses it, and its figures are those of conversions that calibrate each."""
    from benchmarks import lm_llama
    from spikelm.lm.tokenizer import CharTokenizer

    tok = CharTokenizer()
    path = save_llama(random_llama("llama", 4, vocab=tok.vocab_size, ctx=24, layers=1, heads=2, kv_heads=1),
                      tmp_path / "m")
    tok.save(path / "tokenizer.json")
    settings_ = ["lin=6,act=8,res=12,att=12,oth=12", "lin=4,act=6,res=10,att=10,oth=10"]
    frontiers = []
    real = lm_llama.frontier

    def spy_frontier(model, settings, calibration, held, held_floats, ids):
        frontiers.append((calibration, held, held_floats, ids))
        return real(model, settings, calibration, held, held_floats, ids)

    with counting_maxabs() as spy, mock.patch.object(lm_llama, "frontier", spy_frontier):
        lm_llama.main(["--model", str(path), "--tokens", "3", "--prompt", "The", "--chars", "300", "--rounds", "1",
                       "--threads", "1", "--skip-quality", "--settings", *settings_])
        assert spy.call_count == 1  # the main conversion's, and none in the frontier
    out = capsys.readouterr().out
    assert "converted from the first conversion's calibration" in out and "no calibration pass" in out
    (calibration, held, held_floats, ids), = frontiers
    assert isinstance(calibration, Calibration)
    with counting_maxabs() as spy:
        real(str(path), settings_, None, held, held_floats, ids)  # each setting calibrated again
        assert spy.call_count == len(settings_)
    again = capsys.readouterr().out

    def figures(text):  # each setting's row, less its conversion time and memory
        return [ln.split("   converted in")[0] for ln in text.splitlines() if ln.split(" ")[0] in settings_]

    assert len(figures(out)) == len(settings_) and figures(out) == figures(again)
