"""The cost methods of issue 22: clamps per point group, fisher steps, row exponents, the residual
rotation; each keeps the spiking network equal to its QANN bit for bit, the rotation keeps the
float model, and every bad option is one line (exit 2 from the command line)."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_lm_helpers import assert_lm_agree, assert_matches_reference, scaled, token_ids
from test_lm_llama import random_llama, save_llama
from spikelm.errors import ConfigError
from spikelm.lm import convert
from spikelm.lm.codings import CODINGS
from spikelm.lm.families.llama import forward as L
from spikelm.lm.families.llama.rotate import hadamard, rotate, rotation
from spikelm.lm.load import open_model
from spikelm.lm.methods import METHODS, parse_methods
from spikelm.lm.precision import CLAMP_GROUPS, parse_clamp
from spikelm.lm.quantize import fixed_point, folded_weight_codes
from spikelm.lm.report import macs_per_layer, synops_of_codes

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
METHOD_SETS = [(), ("row-exponents",), ("fisher",), ("fisher", "row-exponents"), ("rotate",),
               ("rotate", "fisher", "row-exponents")]


@st.composite
def cases(draw):
    kv = draw(st.integers(1, 2))
    ctx = draw(st.integers(3, 12))
    return dict(family=draw(st.sampled_from(["llama", "qwen2", "mistral"])), seed=draw(st.integers(0, 2**16)),
                layers=draw(st.integers(1, 2)), kv_heads=kv, heads=kv * draw(st.integers(1, 2)),
                head_dim=draw(st.sampled_from([8, 12, 16])), inner=draw(st.sampled_from([8, 24])),
                tied=draw(st.booleans()), std=draw(st.sampled_from([0.1, 0.3, 1.0])), ctx=ctx,
                length=draw(st.integers(1, min(ctx - 1, 5))), vocab=draw(st.integers(10, 120)),
                coding=draw(st.sampled_from(CODINGS)), weight_bits=draw(st.sampled_from([6, 8, 12])),
                methods=draw(st.sampled_from(METHOD_SETS)),
                clamp=draw(st.one_of(st.integers(1, 64), st.fixed_dictionaries(
                    {g: st.integers(1, 64) for g in CLAMP_GROUPS}))))


def build(case, **extra):
    model = random_llama(case["family"], case["seed"], case["vocab"], case["ctx"], case["layers"], case["heads"],
                         case["kv_heads"], case["head_dim"], case["inner"], case["tied"], case["std"])
    unit = case["coding"] == "unit"  # the NumPy runner spells unit codes one spike a step: keep them small
    return model, convert(model, calibration=token_ids(case["seed"] + 1, 40, case["vocab"]), bits=4 if unit else None,
                          coding=case["coding"], weight_bits=case["weight_bits"], clamp=2 if unit else case["clamp"],
                          methods=case["methods"] or "none", **extra)


@settings(max_examples=scaled(6), **SETTINGS)
@given(case=cases())
def test_every_method_keeps_the_snn_equal_to_its_qann_on_numpy_and_numba(case):
    _, snn = build(case)
    ids = token_ids(case["seed"] + 2, case["length"], case["vocab"])
    ref = snn.reference(ids)
    run = snn.simulate(ids, backend="numba", record=True)
    assert_matches_reference(snn, ids, run, ref)
    assert_lm_agree(snn.simulate(ids, backend="numpy", record=True), run)
    # SynOps in closed form from the QANN's codes (what the frontier benchmark counts)
    assert synops_of_codes(snn.graph, ref.codes, len(ids), snn.graph.n_prefix) == run.synops["total"]
    assert snn.graph.meta["methods"] == list(case["methods"])


@settings(max_examples=scaled(4), **SETTINGS)
@given(case=cases(), budget=st.floats(0.5, 8.0))
def test_a_budget_is_met_or_refused_naming_the_least_reachable(case, budget):
    case["methods"] = ("fisher",)
    try:
        _, snn = build(case, budget=budget)
    except ConfigError as e:
        assert "the least this model reaches is" in str(e) and "\n" not in str(e)
        least = float(str(e).split("reaches is ")[1].split()[0])
        assert least > budget
        return
    ids = token_ids(case["seed"] + 2, case["length"], case["vocab"])
    run = snn.simulate(ids, backend="numba")
    assert_matches_reference(snn, ids, run)


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral"])
@pytest.mark.parametrize("tied", [False, True])
def test_the_rotation_leaves_the_float_logits_unchanged(family, tied):
    model = random_llama(family, 11, vocab=50, layers=2, heads=4, kv_heads=2, head_dim=8, tied=tied, std=0.3)
    loaded = open_model(model)
    ids = token_ids(3, 12, 50)
    want = L.float_forward(loaded.config, loaded.params, ids)
    random_q = np.linalg.qr(np.random.default_rng(4).standard_normal((32, 32)))[0]
    for Q in (None, random_q):  # the Hadamard matrix of order 32, and any orthogonal matrix
        cfg, P = rotate(loaded.config, loaded.params, Q)
        got = L.float_forward(cfg, P, ids)
        assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_hadamard_matrices_are_orthogonal_where_built():
    for n in (1, 2, 12, 24, 48, 64, 96, 576):
        H = hadamard(n)
        assert H is not None and np.allclose(H @ H.T, np.eye(n), atol=1e-12), n
        assert np.allclose(np.abs(H), 1 / math.sqrt(n))
    assert hadamard(20) is None
    Q = rotation(20, seed=1)
    assert np.allclose(Q @ Q.T, np.eye(20), atol=1e-12)


def test_the_fisher_gradients_match_finite_differences():
    """F_j = E[(dL/dx_j)^2]: the torch twin's gradient at a point against central differences of
    the NumPy forward's loss (which the graph is built from)."""
    from spikelm.lm.families.llama.grad import _forward

    import torch

    model = random_llama("qwen2", 5, vocab=30, layers=1, heads=2, kv_heads=1, head_dim=8, std=0.3)
    loaded = open_model(model)
    cfg, P = loaded.config, loaded.params
    ids = token_ids(6, 7, 30)

    def loss_np(delta=None):
        def record(name, x):
            if delta is not None and name == "h0.act":
                x += delta  # float_forward hands over its own array: the change flows on
        logits = L.float_forward(cfg, P, ids, record)
        z = logits[:-1] - logits[:-1].max(-1, keepdims=True)
        lp = z - np.log(np.exp(z).sum(-1, keepdims=True))
        return -lp[np.arange(len(ids) - 1), ids[1:]].sum()

    seen = {}
    Pt = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in P.items()}
    with torch.enable_grad():
        logits = _forward(torch, cfg, Pt, ids, {"h0.act"}, seen)
        assert np.allclose(logits.detach().numpy(), L.float_forward(cfg, P, ids), rtol=1e-9, atol=1e-9)
        lp = torch.log_softmax(logits[:-1], -1)
        (-lp.gather(1, torch.from_numpy(ids[1:])[:, None]).sum()).backward()
    grad = seen["h0.act"].grad.numpy()
    for pos, ch in ((0, 3), (4, 10), (6, 1)):
        d = np.zeros((len(ids), cfg.intermediate_size))
        d[pos, ch] = 1e-6
        fd = (loss_np(d) - loss_np(-d)) / 2e-6
        assert abs(fd - grad[pos, ch]) <= 1e-5 * max(1.0, abs(fd)), (pos, ch)


def test_clamps_set_each_group_code_range():
    model = random_llama("llama", 2, layers=1, heads=2, kv_heads=1)
    snn = convert(model, calibration=token_ids(1, 40, 40), bits="lin=6,act=7,res=8,att=9,oth=5",
                  clamp="lin=3,act=5,res=2", methods="none")
    from spikelm.lm.families.llama.build import DEFAULT_CLAMP

    oth = parse_clamp(DEFAULT_CLAMP).to_dict()["oth"]  # a group not named keeps the default's clamp
    want = {"lin": 3 * 31, "act": 5 * 63, "res": 2 * 127, "oth": oth * 15}
    for p in snn.graph.pops:
        if p.spiking and p.name.rsplit(".", 1)[-1] != "att":
            g = {"norm1": "lin", "ctx": "lin", "norm2": "lin", "normf": "lin", "act": "act", "emb": "res",
                 "res1": "res", "res2": "res"}.get(p.name.rsplit(".", 1)[-1], "oth")
            assert (p.qmin, p.qmax) == (-want[g], want[g]), p.name
    assert parse_clamp("lin=3,act=5,res=2", parse_clamp(32)).to_dict() == {"lin": 3, "act": 5, "res": 2, "oth": 32}


def test_a_wide_clamp_warns_nothing():
    """SiLU tables over codes far below the calibration range (exp(-x) overflows to inf there)."""
    from test_lm_family_helpers import random_model as decoder_model

    llama = random_llama("llama", 2, layers=1, heads=2, kv_heads=1, std=1.0)
    phi3 = decoder_model("phi3", 2, 1.0, vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, intermediate_size=24, max_position_embeddings=12, hidden_act="silu",
                         bos_token_id=1, eos_token_id=2, pad_token_id=0)
    for model in (llama, phi3):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            convert(model, calibration=token_ids(1, 40, 40), bits=8, clamp=1024, methods="none")


@given(w=st.integers(0, 2**16), bits=st.integers(4, 12))
@settings(max_examples=scaled(40), **SETTINGS)
def test_row_exponents_keep_every_row_within_half_its_step(w, bits):
    rng = np.random.default_rng(w)
    wt = rng.standard_normal((9, 5)) * np.exp(rng.uniform(-6, 3, size=(9, 1)))  # rows of very different size
    s_in = np.exp(rng.uniform(-3, 3, size=9))
    codes, s_w = folded_weight_codes(wt, s_in, bits, row_exponents=True)
    assert codes.dtype in (np.int8, np.int16) and np.abs(codes.astype(np.int64)).max() <= 2**15 - 1
    wf = wt * s_in[:, None]
    got = codes * s_w[None, :]
    plain, s0 = folded_weight_codes(wt, s_in, bits)
    q = 2 ** (bits - 1) - 1
    for j in range(9):  # row j's step: the column step / 2^e_j, e_j as large as fits (at most 16 - bits)
        e = min(16 - bits, max(0, math.floor(math.log2(q / max((np.abs(wf[j]) / s0).max(), 1e-300)))))
        assert np.all(np.abs(got[j] - wf[j]) <= 0.5 * s0 / 2**e * (1 + 1e-9)), j
    assert np.all(np.abs(got - wf) <= np.abs(plain * s0[None, :] - wf) + 0.5 * s0[None, :] * 1e-9)


def test_a_too_wide_rescaling_names_the_settings_to_lower():
    with pytest.raises(ConfigError, match=r"^x: its accumulator can reach 2\^61\.0, .*; lower bits lin \(16\) by 19 bits in all$"):
        fixed_point(np.array([3.0]), 2.0**61, "x", "bits lin (16)")
    model = random_llama("llama", 2, layers=1, heads=2, kv_heads=1, std=1.0)
    with pytest.raises(ConfigError, match="weight bits") as e:
        convert(model, calibration=token_ids(1, 40, 40), bits=16, weight_bits=16, clamp=1024, methods="none")
    assert "\n" not in str(e.value) and "lower" in str(e.value)


def test_methods_parse_and_refuse_in_one_line():
    assert parse_methods("row-exponents, fisher") == ("fisher", "row-exponents")  # applied in METHODS order
    assert parse_methods("none") == () and parse_methods(None) == ()
    assert set(METHODS) == {"rotate", "fisher", "row-exponents"}
    with pytest.raises(ConfigError, match="unknown method 'gptq'; allowed: rotate, fisher, row-exponents"):
        parse_methods("fisher,gptq")
    model = random_llama("llama", 2, layers=1, heads=2, kv_heads=1)
    with pytest.raises(ConfigError, match="budget=1.5: needs the fisher method"):
        convert(model, calibration=token_ids(1, 40, 40), methods="row-exponents", budget=1.5)
    with pytest.raises(ConfigError, match="budget=0.001: the least this model reaches is"):
        convert(model, calibration=token_ids(1, 40, 40), budget=0.001)


@pytest.fixture(scope="module")
def llama_folder(tmp_path_factory):
    from spikelm.lm.tokenizer import CharTokenizer

    tok = CharTokenizer()
    path = save_llama(random_llama("llama", 4, vocab=tok.vocab_size, ctx=24, layers=1, heads=2, kv_heads=1),
                      tmp_path_factory.mktemp("llama") / "m")
    tok.save(path / "tokenizer.json")
    (path / "calib.txt").write_text("Return the value of the attribute. " * 8)
    (path / "empty.txt").write_text("  \n")
    return path


@pytest.mark.parametrize("args, message", [
    (["--methods", "fisher,gptq"], "--methods: unknown method 'gptq'"),
    (["--budget", "0.001"], "the least this model reaches is"),
    (["--clamp", "att=4"], "group 'att' has no clamp"),
    (["--clamp", "2000"], "--clamp=2000; allowed: an integer 1-1024"),
    (["--calibration", "{folder}/empty.txt"], "empty.txt: the file is empty"),
    (["--calibration", "{folder}/none.txt"], "none.txt: no such file; expected a UTF-8 text file (--calibration)"),
    (["--bits", "16", "--weight-bits", "16", "--clamp", "1024", "--methods", "none"], "lower bits"),
])
def test_bad_cost_options_are_one_line_exit_2(llama_folder, capsys, args, message):
    from spikelm.cli import main

    args = [a.replace("{folder}", str(llama_folder)) for a in args]
    rc = main(["lm", "check", "--model", str(llama_folder), "--prompts", "1", "--length", "4", *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and "\n" not in err, err


def test_cost_options_reach_the_conversion_from_the_command_line(llama_folder, capsys):
    from spikelm.cli import main

    rc = main(["lm", "check", "--model", str(llama_folder), "--prompts", "1", "--length", "4", "--clamp",
               "lin=4,act=4", "--methods", "rotate,row-exponents", "--calibration", str(llama_folder / "calib.txt")])
    assert rc == 0, capsys.readouterr().err
    rc = main(["lm", "check", "--model", str(llama_folder), "--prompts", "1", "--length", "4", "--methods", "none"])
    assert rc == 0


def test_gpt2_refuses_the_llama_methods_in_one_line():
    from test_lm_helpers import random_tiny_gpt

    model = random_tiny_gpt(0, vocab=20, ctx=8, width=8, layers=1, heads=2)
    with pytest.raises(ConfigError, match="method 'fisher' is not built for GPT-2 models"):
        convert(model, calibration=token_ids(0, 16, 20), methods="fisher")
    with pytest.raises(ConfigError, match=r"budget=1.0: only for Gemma, Llama-family and Qwen3 models \(the conversion methods are built on"):
        convert(model, calibration=token_ids(0, 16, 20), budget=1.0)


def test_the_dense_macs_of_the_cost_estimate_match_the_report():
    from spikelm.lm.families.llama.calibrate import dense_macs

    model = random_llama("qwen2", 3, layers=2, heads=4, kv_heads=2)
    snn = convert(model, calibration=token_ids(1, 40, 40), methods="none")
    n0 = snn.graph.n_prefix
    assert dense_macs(snn.graph.config, np.arange(n0, n0 + 9)) == macs_per_layer(snn.graph, 9, n0)["total"]


def test_the_meta_records_what_was_built():
    model = random_llama("mistral", 3, layers=1, heads=2, kv_heads=1)
    snn = convert(model, calibration=token_ids(1, 40, 40))
    meta = snn.graph.meta
    assert meta["methods"] == ["row-exponents"] and meta["clamp"] == "64"
    json.dumps({k: meta[k] for k in ("methods", "clamp", "budget", "weight_bits", "weight_top")}, default=int)


# ---------------------------------------------------------------- the families built on the Llama decoder

FAMILY_CASE = dict(seed=7, vocab=40, ctx=12, layers=2, heads=4, kv_heads=2, head_dim=8, hidden=16, inner=24,
                   tied=True, std=0.3, window=3, rope="yarn", bias=True, first_window_layer=1, pattern=2, scalar=16,
                   softcap=(5.0, 3.0))
POST_NORMS = ("gemma2", "gemma3_text")


@pytest.mark.parametrize("model_type", ["qwen3", "gemma", "gemma2", "gemma3_text", "qwen2", "mistral", "llama"])
def test_the_fisher_twin_follows_every_hook_of_the_forward(model_type):
    """The torch twin the gradients come from computes the NumPy forward's logits and points
    (windows, scaled RoPE, q/k norms, post norms, 1 + w gains, GeGLU, soft-caps)."""
    import torch

    from lm_hf_families import random_model
    from spikelm.lm.families.llama.grad import _forward

    loaded = open_model(random_model({**FAMILY_CASE, "model_type": model_type}))
    cfg, P = loaded.config, loaded.params
    ids = token_ids(2, 10, 40)
    points = {}
    want = L.float_forward(cfg, P, ids, lambda name, x: points.__setitem__(name, x.copy()))
    seen = {}
    Pt = {k: torch.from_numpy(np.asarray(v, dtype=np.float64)) for k, v in P.items()}
    with torch.enable_grad():
        got = _forward(torch, cfg, Pt, ids, set(points), seen)
    assert np.allclose(got.detach().numpy(), want, rtol=1e-9, atol=1e-9)
    assert set(seen) == set(points)
    for name, x in points.items():
        assert np.allclose(seen[name].detach().numpy().reshape(x.shape), x, rtol=1e-9, atol=1e-9), name


@pytest.mark.parametrize("model_type", ["qwen3", "gemma", "qwen2", "llama"])
def test_the_rotation_keeps_the_float_model_of_the_families_without_post_norms(model_type):
    from lm_hf_families import random_model

    loaded = open_model(random_model({**FAMILY_CASE, "model_type": model_type}))
    ids = token_ids(3, 10, 40)
    want = L.float_forward(loaded.config, loaded.params, ids)
    cfg, P = rotate(loaded.config, loaded.params)
    assert np.abs(L.float_forward(cfg, P, ids) - want).max() <= 1e-5 * np.abs(want).max()


@pytest.mark.parametrize("model_type", POST_NORMS)
def test_the_rotation_is_refused_for_post_norms_in_one_line(model_type):
    from lm_hf_families import random_model

    model = random_model({**FAMILY_CASE, "model_type": model_type})
    with pytest.raises(ConfigError, match=f"'rotate' is not built for {model_type} models .*; leave it out$"):
        convert(model, calibration=token_ids(1, 40, 40), methods="rotate")


@st.composite
def family_cases(draw):
    from lm_hf_families import cases as hf_cases

    case = draw(hf_cases(["qwen3", "gemma", "gemma2", "gemma3_text"]))
    choices = [m for m in METHOD_SETS if case["model_type"] not in POST_NORMS or "rotate" not in m]
    return {**case, "methods": draw(st.sampled_from(choices)), "length": min(case["length"], 5)}


@settings(max_examples=scaled(6), **SETTINGS)
@given(case=family_cases())
def test_every_method_keeps_qwen3_and_gemma_exact_on_numpy_and_numba(case):
    from lm_hf_families import random_model

    bits = 4 if case["coding"] == "unit" else case["bits"]
    snn = convert(random_model(case), calibration=token_ids(case["seed"] + 1, 60, case["vocab"]), bits=bits,
                  coding=case["coding"], weight_bits=case["weight_bits"], sink=case["sink"],
                  methods=case["methods"] or "none")
    ids = token_ids(case["seed"] + 2, case["length"], case["vocab"])
    ref = snn.reference(ids)
    run = snn.simulate(ids, backend="numba", record=True)
    assert_matches_reference(snn, ids, run, ref)
    assert_lm_agree(snn.simulate(ids, backend="numpy", record=True), run)
    assert synops_of_codes(snn.graph, ref.codes, len(ids), snn.graph.n_prefix) == run.synops["total"]


def test_the_shared_decoder_takes_clamps_per_group_and_refuses_the_methods():
    """GPT-NeoX, OPT and Phi-3 (the shared decoder builder): per-group clamps set their code
    ranges too; the conversion methods are refused in one line."""
    from test_lm_family_helpers import random_model as decoder_model

    model = decoder_model("gpt_neox", 3, vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                          intermediate_size=24, max_position_embeddings=12, bos_token_id=1, eos_token_id=2)
    snn = convert(model, calibration=token_ids(1, 40, 40), bits=6, clamp="lin=3,res=5")
    ranges = {p.name.rsplit(".", 1)[-1]: p.qmax for p in snn.graph.pops if p.spiking}
    assert ranges["norm1"] == 3 * 31 and ranges["emb"] == 5 * 31 and ranges["q"] == 8 * 31  # oth: the default 8
    with pytest.raises(ConfigError, match="method 'fisher' is not built for GPT-NeoX models; they take: none"):
        convert(model, calibration=token_ids(1, 40, 40), methods="fisher")
