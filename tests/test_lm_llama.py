"""Llama-family models (issue 10): random Llama, Qwen2, Mistral and GPT-2 configs converted and
run spike by spike; the reference against an independent fake-quantized torch forward; loading
(bf16, fp16, sharded safetensors, state dicts) and the features refused by name."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_lm_exact import independent_synops
from test_lm_helpers import assert_lm_agree, assert_matches_reference, random_hf_gpt2, scaled, token_ids
from spikelm.errors import ConfigError
from spikelm.lm import convert
from spikelm.lm.codings import CODINGS
from spikelm.lm.precision import GROUPS

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


def random_llama(family, seed, vocab=40, ctx=16, layers=1, heads=2, kv_heads=1, head_dim=8, inner=24,
                 tied=False, std=0.3):
    """A transformers Llama / Qwen2 / Mistral causal LM with large random weights."""
    import transformers

    cls = {"llama": ("LlamaConfig", "LlamaForCausalLM"), "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
           "mistral": ("MistralConfig", "MistralForCausalLM")}[family]
    torch.manual_seed(seed)
    kw = dict(vocab_size=vocab, hidden_size=heads * head_dim, intermediate_size=inner, num_hidden_layers=layers,
              num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=head_dim,
              max_position_embeddings=ctx, tie_word_embeddings=tied, bos_token_id=1, eos_token_id=2,
              rope_theta=100.0, rms_norm_eps=1e-5)
    if family == "mistral":
        kw["sliding_window"] = None
    if family == "qwen2":
        kw["use_sliding_window"] = False
    model = getattr(transformers, cls[1])(getattr(transformers, cls[0])(**kw)).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(std * torch.randn(p.shape, generator=g))
    return model


@st.composite
def llama_cases(draw):
    kv = draw(st.integers(1, 2))
    coding = draw(st.sampled_from(CODINGS))
    top = 8 if coding == "unit" else 12
    bits = draw(st.one_of(st.integers(2, 8), st.fixed_dictionaries({g: st.integers(3, top) for g in GROUPS})))
    ctx = draw(st.integers(3, 16))
    return dict(family=draw(st.sampled_from(["llama", "qwen2", "mistral"])), seed=draw(st.integers(0, 2**16)),
                layers=draw(st.integers(1, 3)), kv_heads=kv, heads=kv * draw(st.integers(1, 4)),
                head_dim=draw(st.sampled_from([8, 12, 16, 32])), inner=draw(st.sampled_from([8, 24, 40])),
                tied=draw(st.booleans()), std=draw(st.sampled_from([0.1, 0.3, 1.0])), ctx=ctx,
                length=draw(st.integers(1, ctx - 1)), vocab=draw(st.integers(10, 200)), bits=bits, coding=coding,
                weight_bits=draw(st.sampled_from([8, 10, 12])), sink=draw(st.booleans()))


def build(case):
    model = random_llama(case["family"], case["seed"], case["vocab"], case["ctx"], case["layers"], case["heads"],
                         case["kv_heads"], case["head_dim"], case["inner"], case["tied"], case["std"])
    snn = convert(model, calibration=token_ids(case["seed"] + 1, 40, case["vocab"]), bits=case["bits"],
                  coding=case["coding"], weight_bits=case["weight_bits"], sink=case["sink"])
    return model, snn


@settings(max_examples=scaled(60), **SETTINGS)
@given(case=llama_cases())
def test_random_llama_family_runs_exact_and_matches_a_fake_quantized_torch_forward(case):
    model, snn = build(case)
    ids = token_ids(case["seed"] + 2, case["length"], case["vocab"])
    ref = snn.reference(ids)
    run = snn.simulate(ids, backend="numba")
    assert_matches_reference(snn, ids, run, ref)
    assert (run.synops["total"], run.shift_adds["total"]) == independent_synops(snn, ref.codes, len(ids),
                                                                               start=snn.graph.n_prefix)
    fq = fake_quant_llama(snn, model, ids)
    assert np.abs(ref.logits - fq).max() <= 1e-6 * max(np.abs(fq).max(), 1e-12)


@settings(max_examples=scaled(12), **SETTINGS)
@given(case=llama_cases())
def test_random_llama_family_numpy_and_numba_agree_bit_for_bit(case):
    if case["coding"] == "unit":  # the NumPy runner is the slow oracle: keep unit spike trains short
        case["bits"] = 4
    case["length"] = min(case["length"], 5)
    _, snn = build(case)
    ids = token_ids(case["seed"] + 2, case["length"], case["vocab"])
    assert_lm_agree(snn.simulate(ids, backend="numpy", record=True), snn.simulate(ids, backend="numba", record=True))


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral"])
def test_float_forward_equals_transformers(family):
    model = random_llama(family, 3, layers=2, heads=4, kv_heads=2, std=0.2)
    snn = convert(model, calibration=token_ids(1, 40, 40), sink=True)
    ids = token_ids(2, 9, 40)
    with torch.no_grad():
        want = model(torch.tensor(np.concatenate([[1], ids]))[None]).logits[0, 1:].double().numpy()
    assert np.abs(snn.float_logits(ids) - want).max() <= 1e-4 * np.abs(want).max()


def test_generate_on_a_llama_is_greedy_reference_and_the_sink_never_spikes():
    model = random_llama("llama", 8, layers=2, heads=4, kv_heads=2, ctx=12)
    snn = convert(model, calibration=token_ids(1, 40, 40))
    prompt = token_ids(2, 3, 40)
    gen = snn.generate(prompt, 5, record=True)
    ids = list(prompt)
    for _ in range(5):
        ids.append(int(np.argmax(snn.reference(np.array(ids)).logits[-1])))
    assert gen.tokens.tolist() == ids
    steps, pops, nodes, _ = gen.simulation.events
    sizes = np.array([p.size for p in snn.graph.pops])
    assert (nodes // sizes[pops]).min() == snn.graph.n_prefix == 1  # position 0 (BOS) is constant
    with pytest.raises(ConfigError, match="exceed the model's context of 11"):
        snn.generate(token_ids(2, 8, 40), 5)


# ---------------------------------------------------------------- an independent fake-quantized forward

def fake_quant_llama(snn, model, ids, trace=None):
    """A float64 torch forward of ``model`` that rounds at every quantizer point as docs/lm.md
    defines it (per-channel scales, the graph's code ranges, folded per-channel weight codes with
    the row exponents of docs/lm-llama.md when that method is on, 1/(2^b - 1)
    attention probabilities, the constant BOS prefix), written from the definitions."""
    g = snn.graph
    cfg, meta = g.config, g.meta
    S = {k: torch.tensor(np.asarray(v, dtype=np.float64)) for k, v in meta["scales"].items()}
    prec, wb, row_exp = meta["precision"], meta["weight_bits"], "row-exponents" in meta["methods"]
    # each point's code range (clamp x the code of its calibration maximum) is the graph's
    rng = {p.name: (p.qmin, p.qmax) for p in g.pops}
    P = {k: v.detach().double() for k, v in model.state_dict().items()}

    def fq(x, name):
        c = torch.clamp(torch.floor(x / S[name] + 0.5), *rng[name])
        if trace is not None:
            trace[name] = c
        return c * S[name]

    def lin(x, w, s_in, bias=None):  # w [out, in]; the input scales folded, per output channel
        q = 2 ** (wb - 1) - 1
        wf = w * s_in
        sw = torch.clamp(wf.abs().max(1).values, min=1e-30)[:, None] / q
        if row_exp and wb < 16:  # input row j at the step sw / 2^e_j, e_j the largest in 0..16-wb that fits
            top = (wf.abs() / sw).max(0).values
            sw = sw / 2.0 ** torch.clamp(torch.floor(torch.log2(q / top.clamp(min=1e-300))), 0, 16 - wb)[None, :]
        wq = torch.clamp(torch.floor(wf / sw + 0.5), -q, q) * sw / s_in
        y = x @ wq.T
        return y if bias is None else y + bias

    full = np.concatenate([g.prefix.ids, ids]) if g.prefix is not None else np.asarray(ids)
    P0, Lf = g.n_prefix, len(full)
    H, G, dh = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    half = dh // 2
    inv = 1.0 / (cfg.rope_theta ** (torch.arange(half, dtype=torch.float64) * 2 / dh))
    ang = torch.arange(Lf, dtype=torch.float64)[:, None] * inv
    cos, sin = torch.cos(ang), torch.sin(ang)

    def rope(x, heads):
        x = x.reshape(Lf, heads, dh)
        a, b = x[..., :half], x[..., half:]
        return torch.cat([a * cos[:, None] - b * sin[:, None], b * cos[:, None] + a * sin[:, None]], -1).reshape(Lf, -1)

    def rms(x, w):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + cfg.rms_norm_eps) * w

    t = torch.tensor(full)
    x = fq(P["model.embed_tokens.weight"][t], "emb")
    amax = 2**prec.att - 1
    mask = torch.ones(Lf, Lf, dtype=torch.bool).tril()
    float_kv = _float_prefix_kv(model, g) if P0 else {}
    for i in range(cfg.num_hidden_layers):
        p, n = f"model.layers.{i}.", f"h{i}."
        h = fq(rms(x, P[p + "input_layernorm.weight"]), n + "norm1")
        bias = (lambda nm: P[p + f"self_attn.{nm}.bias"]) if cfg.attention_bias else (lambda nm: None)
        s1 = S[n + "norm1"]
        q = fq(lin(h, P[p + "self_attn.q_proj.weight"], s1, bias("q_proj")), n + "q")
        k = fq(lin(h, P[p + "self_attn.k_proj.weight"], s1, bias("k_proj")), n + "k")
        v = fq(lin(h, P[p + "self_attn.v_proj.weight"], s1, bias("v_proj")), n + "v")
        qr, kr = fq(rope(q, H), n + "qr"), fq(rope(k, G), n + "kr")
        if P0:  # the constant prefix: float K (after RoPE) and V, rounded to the graph's codes
            kr[:P0] = fq(float_kv[n + "kr"], n + "kr")
            v[:P0] = fq(float_kv[n + "v"], n + "v")
        qh = qr.reshape(Lf, H, dh).transpose(0, 1)
        kh = kr.reshape(Lf, G, dh).transpose(0, 1)[torch.arange(H) // (H // G)]
        vh = v.reshape(Lf, G, dh).transpose(0, 1)[torch.arange(H) // (H // G)]
        # docs/lm.md: E_j = floor(exp(-(max S - S_j) / sqrt(dh)) 2^40 + 1/2), code = round(E_j amax / sum E)
        z = (qh @ kh.transpose(1, 2) / math.sqrt(dh)).masked_fill(~mask, -torch.inf)
        E = torch.floor(torch.exp(z - z.max(-1, keepdim=True).values) * 2.0**40 + 0.5)
        a = torch.floor(E * amax / E.sum(-1, keepdim=True) + 0.5) / amax
        o = fq((a @ vh).transpose(0, 1).reshape(Lf, H * dh), n + "ctx")
        y = fq(lin(o, P[p + "self_attn.o_proj.weight"], S[n + "ctx"]), n + "o")
        x = fq(x + y, n + "res1")
        h = fq(rms(x, P[p + "post_attention_layernorm.weight"]), n + "norm2")
        s2 = S[n + "norm2"]
        gt = fq(lin(h, P[p + "mlp.gate_proj.weight"], s2), n + "gate")
        up = fq(lin(h, P[p + "mlp.up_proj.weight"], s2), n + "up")
        sg = fq(torch.nn.functional.silu(gt), n + "silu")
        act = fq(sg * up, n + "act")
        y = fq(lin(act, P[p + "mlp.down_proj.weight"], S[n + "act"]), n + "down")
        x = fq(x + y, n + "res2")
    h = fq(rms(x, P["model.norm.weight"]), "normf")
    head = P["model.embed_tokens.weight"] if cfg.tie_word_embeddings else P["lm_head.weight"]
    return lin(h, head, S["normf"]).numpy()[P0:]


def _float_prefix_kv(model, graph):
    """The float model's K (after RoPE) and V at the prefix positions, from transformers' own run."""
    import copy

    out = {}
    with torch.no_grad():
        res = copy.deepcopy(model).double()(torch.tensor(graph.prefix.ids)[None], use_cache=True)
    cache = res.past_key_values
    for i in range(graph.config.num_hidden_layers):
        k, v = cache.layers[i].keys, cache.layers[i].values  # [1, kv_heads, P0, dh]
        out[f"h{i}.kr"] = k[0].transpose(0, 1).reshape(k.shape[2], -1).double()
        out[f"h{i}.v"] = v[0].transpose(0, 1).reshape(v.shape[2], -1).double()
    return out


# ---------------------------------------------------------------- loading and refusals

def save_llama(model, path, dtype=None, shards=1):
    from safetensors.torch import save_file

    path.mkdir(exist_ok=True)
    cfg = model.config.to_dict()
    (path / "config.json").write_text(json.dumps(cfg, default=str))
    state = {k: v.contiguous() if dtype is None else v.to(dtype).contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    if shards == 1:
        save_file(state, str(path / "model.safetensors"))
        return path
    names = sorted(state)
    weight_map = {}
    for s in range(shards):
        part = {k: state[k] for k in names[s::shards]}
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        save_file(part, str(path / fname))
        weight_map.update(dict.fromkeys(part, fname))
    (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return path


@pytest.mark.parametrize("dtype, shards", [(None, 1), (torch.bfloat16, 1), (torch.float16, 3), (torch.bfloat16, 2)])
def test_folders_in_every_float_dtype_and_sharded_load_the_same_weights(tmp_path, dtype, shards):
    model = random_llama("qwen2", 4, layers=2, heads=2, kv_heads=1, std=0.2)
    folder = save_llama(model, tmp_path / "m", dtype, shards)
    from spikelm.lm.load import open_model

    got = open_model(folder).params
    for k, v in model.state_dict().items():
        if k == "lm_head.weight" and model.config.tie_word_embeddings:
            continue
        want = (v if dtype is None else v.to(dtype)).double().numpy()
        assert np.array_equal(got[k], want), k
    snn = convert(folder, calibration=token_ids(1, 30, 40))
    ids = token_ids(2, 5, 40)
    assert np.array_equal(snn.simulate(ids).logits, snn.reference(ids).logits)


def test_state_dict_with_a_transformers_config_and_a_module_convert_alike():
    model = random_llama("llama", 6, layers=1)
    calib = token_ids(1, 30, 40)
    a = convert(model, calibration=calib)
    b = convert(dict(model.state_dict()), calibration=calib, config=model.config)
    ids = token_ids(2, 6, 40)
    assert np.array_equal(a.reference(ids).logits, b.reference(ids).logits)


@pytest.mark.parametrize("field, value, match", [
    ("sliding_window", 0, "sliding_window=0; must be a positive integer or null"),
    ("rope_scaling", {"rope_type": "longrope", "factor": 2.0}, "rope_scaling of type 'longrope' is not built"),
    ("rope_parameters", {"rope_type": "llama3", "rope_theta": 1e4}, "rope_parameters of type 'llama3' needs 'factor'"),
    ("rope_scaling", {"rope_type": "linear", "factor": -2}, r"rope_scaling.factor=-2; must be a finite number > 0"),
    ("partial_rotary_factor", 0.5, "partial_rotary_factor=0.5 is not supported here"),
    ("num_local_experts", 8, "num_local_experts=8: mixture-of-experts"),
    ("hidden_act", "gelu", "hidden_act='gelu' is not supported"),
    ("mlp_bias", True, "mlp_bias=true is not supported"),
    ("architectures", ["MixtralForCausalLM"], r"architectures=\['MixtralForCausalLM'\]: they disagree"),
    ("model_type", "falcon", "model_type='falcon'"),
    ("rms_norm_eps", "tiny", "rms_norm_eps='tiny'"),
    ("layer_types", ["full_attention", "sliding_attention"], "layer_types holds"),
])
def test_unsupported_features_are_refused_naming_the_field(tmp_path, field, value, match):
    model = random_llama("mistral", 1, layers=1)
    folder = save_llama(model, tmp_path / "m")
    cfg = json.loads((folder / "config.json").read_text())
    cfg[field] = value
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=match) as e:
        convert(folder, calibration=token_ids(1, 30, 40))
    assert "\n" not in str(e.value) and str(folder / "config.json") in str(e.value) or field == "model_type"


def test_gpt2_still_converts_alongside():
    model = random_hf_gpt2(3, vocab=30, ctx=8, width=16, layers=1, heads=2)
    snn = convert(model, calibration=token_ids(1, 30, 30))
    ids = token_ids(2, 6, 30)
    assert np.array_equal(snn.simulate(ids).logits, snn.reference(ids).logits)
    with pytest.raises(ConfigError, match="weight_bits=12: only for .*Llama-family"):
        convert(model, calibration=token_ids(1, 30, 30), weight_bits=12)


def test_gguf_without_the_lm_extra_names_it(tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **kw):
        if name == "gguf":
            raise ImportError("No module named 'gguf'", name="gguf")
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", fake)
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    with pytest.raises(ConfigError, match=r"needs the lm extra .*pip install 'spikelm\[lm\]' \(gguf is missing\)"):
        convert(f, calibration=token_ids(1, 30, 40))


def test_a_model_folder_without_tokenizer_is_refused_by_the_commands(tmp_path):
    from spikelm.errors import FileFormatError
    from spikelm.lm.models import open_for_cli

    folder = save_llama(random_llama("llama", 2, layers=1), tmp_path / "m")
    with pytest.raises(FileFormatError, match="no tokenizer in the model folder; looked for tokenizer.json"):
        open_for_cli(str(folder))


@settings(max_examples=scaled(15), **SETTINGS)
@given(case=llama_cases(), workers=st.integers(2, 4), n=st.integers(20, 90))
def test_calibration_windows_side_by_side_give_the_serial_maxima_bit_for_bit(case, workers, n):
    """The calibration's windows run in threads (each as alone): every quantizer point's maxima
    equal the serial pass's, bit for bit, whatever the number of workers."""
    from spikelm.lm.families.llama import calibrate as C
    from spikelm.lm.load import open_model

    model = random_llama(case["family"], case["seed"], case["vocab"], case["ctx"], case["layers"], case["heads"],
                         case["kv_heads"], case["head_dim"], case["inner"], case["tied"], case["std"])
    loaded = open_model(model, None, None)
    ids, prefix = token_ids(case["seed"] + 1, n, case["vocab"]), np.array([1], np.int64)
    assert len(C.windows(ids, prefix, loaded.config.n_positions - 1)) >= 2
    serial = C.maxabs(loaded.config, loaded.params, ids, prefix, workers=1)
    side = C.maxabs(loaded.config, loaded.params, ids, prefix, workers=workers)
    assert serial.keys() == side.keys()
    for name in serial:
        assert np.asarray(serial[name]).tobytes() == np.asarray(side[name]).tobytes(), name


@given(cores=st.integers(1, 64), model_mib=st.integers(0, 8192), ctx=st.integers(16, 8192),
       heads=st.integers(1, 64), ffn=st.integers(64, 16384))
@settings(max_examples=scaled(60), deadline=None)
def test_calibration_windows_side_by_side_stay_within_a_quarter_of_the_float_model(cores, model_mib, ctx, heads,
                                                                                  ffn):
    """Windows run side by side on the idle cores, but the windows beyond the first hold at most
    WINDOW_SHARE of the float model's bytes."""
    from types import SimpleNamespace

    from spikelm.lm.families.llama import calibrate as C

    cfg = SimpleNamespace(n_positions=ctx, num_attention_heads=heads, intermediate_size=ffn)
    params = SimpleNamespace(nbytes=model_mib * 2**20)
    window = 8 * (heads * ctx * ctx + 4 * ctx * ffn)
    import spikelm.lm.threads as T

    real, env = T.idle_cores, os.environ.pop("SPIKELM_THREADS", None)
    T.idle_cores = lambda: cores
    try:
        n = C.window_workers(cfg, params)
    finally:
        T.idle_cores = real
        if env is not None:
            os.environ["SPIKELM_THREADS"] = env
    assert 1 <= n <= cores
    assert (n - 1) * window <= C.WINDOW_SHARE * params.nbytes
    assert n == cores or n * window > C.WINDOW_SHARE * params.nbytes  # no worker left out that fits


@settings(max_examples=scaled(10), **SETTINGS)
@given(case=llama_cases())
def test_the_reference_for_logits_alone_gives_the_same_logits_in_less_memory(case):
    """``reference(ids, codes=False)``: the readout's accumulators become the logits in place and
    each population's codes are dropped once read; its logits are the full reference's, bit for bit."""
    _, snn = build(case)
    ids = token_ids(case["seed"] + 2, case["length"], case["vocab"])
    full, alone = snn.reference(ids), snn.reference(ids, codes=False)
    assert alone.codes == {} and alone.head_acc is None
    assert alone.logits.dtype == np.float64 and alone.logits.shape == full.logits.shape
    assert alone.logits.tobytes() == full.logits.tobytes()


@pytest.mark.parametrize("threads", ["1", "2"])
def test_calibration_windows_side_by_side_stay_within_spikelm_threads(threads, monkeypatch):
    """``$SPIKELM_THREADS`` bounds the calibration's windows as it bounds a run's threads (a
    model large enough for every core); a bad value is the one-line error a run gives."""
    from types import SimpleNamespace

    from spikelm.lm import threads as T
    from spikelm.lm.families.llama import calibrate as C

    cfg = SimpleNamespace(n_positions=64, num_attention_heads=2, intermediate_size=64)
    params = SimpleNamespace(nbytes=2**34)
    monkeypatch.setattr(T, "cores", lambda: 64)
    monkeypatch.setattr(T, "idle_cores", lambda: 64)
    monkeypatch.setenv("SPIKELM_THREADS", threads)
    assert C.window_workers(cfg, params) == int(threads)
    monkeypatch.delenv("SPIKELM_THREADS")
    assert C.window_workers(cfg, params) == 64
    monkeypatch.setenv("SPIKELM_THREADS", "two")
    with pytest.raises(ConfigError, match=r"^SPIKELM_THREADS: must be an integer number of threads, got 'two'$"):
        C.window_workers(cfg, params)
