"""Quantize a float Llama-family model (Llama, Qwen2, Mistral, SmolLM2) into an LMGraph.

What a real pretrained model needs (measured on SmolLM2-135M and Qwen2.5-0.5B; docs/lm-llama.md
has the figures):

- **Per-channel static scales** at every point that allows them: a linear layer's input
  scales are folded into its integer weights (``folded_weight_codes``), its output scales
  into the requantization multipliers, residual sums and RMSNorm take per-channel inputs.
  Q and K after RoPE, the gate and its SiLU have one scale per tensor (the Q·K^T dot
  product and the SiLU table need a common unit).
- **Code ranges wider than the calibration maximum at the same step** (``clamp`` per point
  group, :mod:`spikelm.lm.precision`): values beyond the calibration text's cost a few more
  spikes instead of being clipped. Measured on texts the calibration never saw, the
  attention output and the gated product reach 13 and 24 times their calibration maximum,
  everything else less than 4 times on SmolLM2, but Qwen2.5-0.5B's residual stream and linear
  inputs clip at 8 and 32: hence the default 64 for every group (``lin=64,act=64,res=64,oth=64``;
  on both models every text within +1 % of float).
- **The attention sink as a constant prefix**: the first position of these models carries
  activations hundreds of times larger than any other (SmolLM2's residual channel 507
  reaches ~24,000 there, ~180 elsewhere). The converted model starts every sequence with the
  BOS token; that position's K and V codes are computed once at conversion from the float
  model (they are in range: only the residual stream and the MLP explode there) and are
  constants of the graph (``LMGraph.prefix``), read by attention like any settled position.
  Calibration leaves that position out; every text token runs spike by spike.
- **Weights of 12 bits** by default, with a power-of-two exponent per input row
  (``row-exponents``): folding per-channel input scales spreads a column's range, and one
  large row would set the step of all others.
- **Steps of the linear layers' inputs by sensitivity** (``fisher``,
  :mod:`spikelm.lm.methods.steps`), on with a SynOps ``budget``: the budget sets their mean
  instead of the bits.

Populations per layer ``hI.``: norm1 (RMSNorm), q, k, v (synaptic), qr, kr (RoPE), att
(softmax of the qr·kr scores edge, grouped-query), ctx (the att·v mix edge), o (synaptic),
res1 (residual), norm2, gate, up (synaptic), silu (table on gate), act (the silu·up mul
edge), down (synaptic), res2 (residual); then normf and the readout ``head``.

The config's hooks (:mod:`.config`) add or change, for the families that vary this one:
qn, kn (per-head RMSNorm before RoPE: ``qk_norm``), onorm and dnorm (RMSNorm of o and of down
before their residual sums: ``post_norms``), gelu instead of silu (``activation``), the
embedding times ``embed_scale``, norm gains ``norm_offset + w``, each layer's rotary tables
(``rotary_of``) and sliding window (``window``: on the scores and mix edges), the soft-capped
softmax (``attn_softcap``: :func:`~spikelm.lm.ops.softmax.softcap_tables`) and the readout's
soft-cap (``final_softcap``).
"""

from __future__ import annotations

import math

import numpy as np

from spikelm.errors import ConfigError
from spikelm.lm.calibration import Calibration, weights_digest
from spikelm.lm.codings import coding_id
from spikelm.lm.families.llama import calibrate as C, forward as L
from spikelm.lm.graph import ACCUMULATE, LMGraph, LMPopulation, LMProjection, Prefix, ProductEdge, ReadoutParams
from spikelm.lm.ops.embed import EmbedParams
from spikelm.lm.ops.residual import ResidualParams
from spikelm.lm.ops.rmsnorm import RMSNormParams
from spikelm.lm.ops.rope import RopeParams
from spikelm.lm.ops.softmax import softcap_tables, tables
from spikelm.lm.ops.table import TableParams
from spikelm.lm.methods import parse_methods
from spikelm.lm.methods import steps as S
from spikelm.lm.precision import parse_bits, parse_clamp
from spikelm.lm.quantize import fixed_point, folded_weight_codes, round_half_up
from spikelm.lm.tensors import release, stored

#: the default precision of Llama-family models (docs/lm-llama.md has the measurements)
DEFAULT_BITS = "lin=8,act=8,res=12,att=12,oth=12"
DEFAULT_WEIGHT_BITS = 12
DEFAULT_CLAMP = 64
#: measured on SmolLM2 (docs/lm-llama.md): fisher steps at the bits' mean resolution cost more
#: perplexity than range steps at the same SynOps, so fisher is on only with a ``budget``
DEFAULT_METHODS = ("row-exponents",)
PER_TENSOR = C.PER_TENSOR
#: the methods that change the float model before it is calibrated (a Calibration records them)
CALIBRATION_METHODS = ("rotate",)
#: the linear layers' inputs: the points the fisher method steers
LINEAR_INPUTS = ("norm1", "ctx", "norm2", "act", "normf")
#: codes below 2^14 keep spike counts and spike values in int16 (a fisher step stays coarse
#: enough that clamp x the code of its calibration maximum does)
CODE_LIMIT = 2**14 - 1
#: the gradient pass of the fisher method: tokens per window (memory grows with its square) and in all
FISHER_WINDOW, FISHER_TOKENS = 256, 1024

GROUPS = {"emb": "res", "norm1": "lin", "q": "oth", "k": "oth", "v": "oth", "qn": "oth", "kn": "oth", "qr": "oth",
          "kr": "oth", "att": "att", "ctx": "lin", "o": "oth", "onorm": "oth", "res1": "res", "norm2": "lin",
          "gate": "oth", "up": "oth", "silu": "oth", "gelu": "oth", "act": "act", "down": "oth", "dnorm": "oth",
          "res2": "res", "normf": "lin"}


def point_group(name: str) -> str:
    return GROUPS[name.rsplit(".", 1)[-1]]


def fanout(cfg, name: str) -> int:
    """Synapses a spike of the linear input ``name`` reaches (its row length)."""
    H, G, dh = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    return {"norm1": (H + 2 * G) * dh, "ctx": cfg.hidden_size, "norm2": 2 * cfg.intermediate_size,
            "act": cfg.hidden_size, "normf": cfg.vocab_size}[name.rsplit(".", 1)[-1]]


def build(cfg, params: dict, calibration, bits=None, coding: str = "signed_digit",
          weight_bits: int = DEFAULT_WEIGHT_BITS, clamp=None, sink: bool = True,
          methods=None, budget: float | None = None) -> LMGraph:
    """Quantize a Llama-family model (``params`` with Hugging Face names, float64) into the graph
    (or a model of a family that varies it through the config's hooks: :mod:`.config`).

    ``calibration``: token ids, or a :class:`~spikelm.lm.calibration.Calibration` computed for
    this model, prefix and ``rotate`` (else refused, naming what differs), whose maxima and ids
    are used as they are; ``graph.meta["calibration"]`` holds the one used, computed or given.
    ``clamp``: per point group (:func:`~spikelm.lm.precision.parse_clamp`; groups not named keep
    DEFAULT_CLAMP's). ``methods``: names of :mod:`spikelm.lm.methods` (a string or sequence;
    "none": none; None: DEFAULT_METHODS, with ``fisher`` when a ``budget`` is given).
    ``budget``: SynOps per dense MAC (estimated on the calibration
    text) that the fisher steps are set to, instead of the ``lin`` / ``act`` bits."""
    prec = parse_bits(DEFAULT_BITS if bits is None else bits)
    if isinstance(weight_bits, bool) or not isinstance(weight_bits, int) or not 4 <= weight_bits <= 16:
        raise ConfigError(f"weight_bits={weight_bits!r}; allowed: an integer from 4 to 16")
    clamps = parse_clamp(DEFAULT_CLAMP if clamp is None else clamp, parse_clamp(DEFAULT_CLAMP))
    if methods is None:  # the default, and the fisher steps a budget sets
        methods = DEFAULT_METHODS + (("fisher",) if budget is not None else ())
    methods = parse_methods(methods)
    if budget is not None and "fisher" not in methods:
        raise ConfigError(f"budget={budget!r}: needs the fisher method (its steps are continuous); "
                          f"methods are {', '.join(methods) or 'none'}")
    bos = getattr(cfg, "bos_token_id", None)
    prefix = np.array([bos] if sink and bos is not None else [], dtype=np.int64)
    if cfg.n_positions <= len(prefix):
        raise ConfigError(f"context={cfg.n_positions} (--context): the attention sink takes {len(prefix)} position, "
                          f"leaving none for text; allowed: a context of at least {len(prefix) + 1}")
    made_for = dict(config=cfg, weights=weights_digest(params), prefix=prefix,
                    methods=tuple(m for m in methods if m in CALIBRATION_METHODS))
    if isinstance(calibration, Calibration):
        calibration.check(**made_for)
    qcfg, P = cfg, params
    if "rotate" in methods:
        from spikelm.lm.families.llama.rotate import rotate

        qcfg, P = rotate(cfg, params)
    if not isinstance(calibration, Calibration):
        ids = C.tokens(calibration, cfg)
        calibration = Calibration(**made_for, ids=ids, maxabs=C.maxabs(qcfg, P, ids, prefix))
    ids, maxabs = calibration.ids, calibration.maxabs

    def bits_of(name):
        return getattr(prec, point_group(name))

    def clamp_of(name):
        return clamps.of(point_group(name))

    # the step code of each point: the code of its calibration maximum
    top = {name: 2 ** bits_of(name) - 1 if point_group(name) == "att" else 2 ** (bits_of(name) - 1) - 1
           for name in list(maxabs) + ["att"]}
    scale = {}
    for name, m in maxabs.items():
        m = np.asarray(m, dtype=np.float64)
        floor = max(float(m.max(initial=0.0)) * 1e-6, 1e-12)  # a silent channel gets a tiny scale, not 0
        scale[name] = np.maximum(m, floor) / top[name]
    for i in range(cfg.num_hidden_layers):
        scale[f"h{i}.att"] = np.float64(1.0 / top["att"])

    def ranges(name):  # a point's code range: clamp x the code of its calibration maximum
        if point_group(name) == "att":
            return 0, top["att"]
        t = top.get(name, top.get(name.rsplit(".", 1)[-1]))
        return -clamp_of(name) * t, clamp_of(name) * t

    if "fisher" in methods:
        fisher_steps(qcfg, P, ids, prefix, maxabs, scale, top, ranges, clamp_of, bits_of, coding, budget)
    meta_extra = {"methods": list(methods), "clamp": str(clamps), "budget": budget, "calibration": calibration}
    return _graph(cfg, qcfg, P, prec, coding, weight_bits, methods, prefix, scale, ranges, clamp_of, bits_of,
                  meta_extra)


def fisher_steps(cfg, P, ids, prefix, maxabs, scale, top, ranges, clamp_of, bits_of, coding, budget) -> None:
    """Replace the linear inputs' range steps in ``scale`` by the fisher method's (and their
    entries of ``top``, the code of their calibration maximum), from the bits or ``budget``."""
    from spikelm.lm.families.llama.grad import fisher

    names = [n for n in maxabs if n.rsplit(".", 1)[-1] in LINEAR_INPUTS]
    fan = {n: fanout(cfg, n) for n in names}
    F = fisher(cfg, P, C.windows(ids, prefix, FISHER_WINDOW, FISHER_TOKENS), names, skip=len(prefix))
    u = S.units(F, fan)
    # the finest step: clamp x the code of the calibration maximum stays below CODE_LIMIT
    finest = {n: max(2 ** (bits_of(n) - 1) - 1, CODE_LIMIT // clamp_of(n)) for n in names}

    def steered(name, st):
        t = int(math.ceil(float((np.maximum(maxabs[name], 1e-300) / st[name]).max()) - 1e-9))
        return -clamp_of(name) * max(t, 1), clamp_of(name) * max(t, 1)

    if budget is not None:
        est = C.cost_estimate(cfg, P, ids, prefix, scale, ranges, fan, steered, top["att"], coding_id(coding))
        kappa = S.kappa_for_budget(budget, u, maxabs, finest, est)
    else:
        kappa = S.kappa_for_bits(u, {n: scale[n] for n in names}, fan)
    st = S.steps(u, kappa, maxabs, finest)
    for n in names:
        scale[n] = st[n]
        top[n] = steered(n, st)[1] // clamp_of(n)


def _graph(cfg, qcfg, P, prec, coding, weight_bits, methods, prefix, scale, ranges, clamp_of, bits_of,
           meta_extra) -> LMGraph:
    """The populations, rows and edges of the quantized model (``qcfg``, ``P``: the float model
    the methods made, e.g. rotated; ``cfg``: the source's, which the graph keeps)."""
    d, f, V = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    H, G, dh, ctx = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim, cfg.n_positions
    rows_exp = "row-exponents" in methods

    def settings(name, weights=False):  # what widens a population's accumulator, for a refusal
        g = point_group(name)
        out = [f"bits {g} ({bits_of(name)})"] + ([f"clamp {g} ({clamp_of(name)})"] if g != "att" else [])
        return ", ".join(out) + (f" or weight bits ({weight_bits})" if weights else "")

    pops: list[LMPopulation] = []
    projections: list[LMProjection] = []
    edges: list[ProductEdge] = []
    index: dict[str, int] = {}

    def add(name, layer, op, size, **kw):
        lo, hi = ranges(name)
        index[name] = len(pops)
        pops.append(LMPopulation(name, layer, op, size, lo, hi, scale[name], coding=coding, **kw))
        return index[name]

    def vec(name, n):
        return np.broadcast_to(np.asarray(scale[name], dtype=np.float64), (n,))

    def synaptic(name, layer, pre, key, b=None):
        """The weight ``key`` of ``P`` ([n_out, n_in], torch layout), the input's scales folded into
        its integer weights; its float tensor is released once folded (where ``P`` allows it)."""
        w = P[key]
        release(P, key)
        n_in = w.shape[1]
        codes, s_w = folded_weight_codes(w.T, vec(pops[pre].name, n_in), weight_bits, rows_exp)
        s_out = vec(name, w.shape[0])
        mag = float(max(abs(pops[pre].qmin), pops[pre].qmax))
        acc_bound = mag * float(np.abs(codes.astype(np.int64)).sum(0).max())
        M, k = fixed_point(s_w / s_out, acc_bound, name, settings(pops[pre].name, True))
        B = np.zeros(w.shape[0], np.int64)
        if b is not None:
            lim = acc_bound * float(np.abs(M).max()) + (ranges(name)[1] + 2) * 2.0**k
            B = np.clip(round_half_up(b / s_out * 2.0**k), -lim, lim).astype(np.int64)
        p = add(name, layer, ACCUMULATE, w.shape[0], inputs=(pre,), gain=M, offset=B, shift=k)
        projections.append(LMProjection(pre, p, np.ascontiguousarray(codes)))
        return p

    def product(name, layer, a, b, m, acc_bound, size):
        hint = ", ".join(dict.fromkeys(settings(pops[a].name).split(", ") + settings(pops[b].name).split(", ")))
        M, k = fixed_point(m, acc_bound, name, hint)
        return add(name, layer, ACCUMULATE, size, inputs=(a, b), gain=M, offset=np.zeros(size, np.int64), shift=k)

    def rmsnorm(name, layer, pre, gamma, group=0):
        """gamma: the stored weight (its gains are norm_offset + gamma), tiled over heads for a group."""
        n = pops[pre].size
        gain = np.tile(gamma + cfg.norm_offset, n // len(gamma))
        prm = RMSNormParams.of(gain, cfg.rms_norm_eps, vec(pops[pre].name, n), vec(name, n), pops[pre].qmax, group)
        return add(name, layer, "rmsnorm", n, inputs=(pre,), params=prm)

    def residual(name, layer, a, b):
        m = np.stack([vec(pops[a].name, d), vec(pops[b].name, d)]) / vec(name, d)
        M, k = fixed_point(m, float(max(pops[a].qmax, pops[b].qmax)), name, settings(name))
        return add(name, layer, "residual", d, inputs=(a, b), params=ResidualParams(M, k))

    rope_of = {}  # the cos/sin tables of each distinct rotary embedding

    def rope(name, layer, pre, heads, rotary):
        if rotary not in rope_of:
            rope_of[rotary] = rotary.tables(dh, ctx)
        cos, sin = rope_of[rotary]
        gain = vec(pops[pre].name, heads * dh) / float(scale[name])
        return add(name, layer, "rope", heads * dh, inputs=(pre,), params=RopeParams(cos, sin, gain, dh))

    # the sink's K and V codes from the float model, before its weights are folded (and released)
    graph_prefix = _prefix(qcfg, P, prefix, ranges, scale) if prefix.size else None
    act_fn, act_name = L.ACTIVATIONS[cfg.activation], L.ACT_POP[cfg.activation]
    # the table as stored (float32 for most models: the embed operator upcasts the rows it reads;
    # times 1.0 it is the same table) unless a scale multiplies it
    table = stored(P, "model.embed_tokens.weight")
    table = table if cfg.embed_scale == 1 else P["model.embed_tokens.weight"] * cfg.embed_scale
    x = add("emb", "emb", "embed", d, params=EmbedParams(table, None, vec("emb", d)))
    for i in range(cfg.num_hidden_layers):
        p, n, lay = f"model.layers.{i}.", f"h{i}.", f"h{i}"
        h = rmsnorm(n + "norm1", lay, x, P[p + "input_layernorm.weight"])
        bias = (lambda nm: P[p + f"self_attn.{nm}.bias"]) if cfg.attention_bias else (lambda nm: None)
        q = synaptic(n + "q", lay, h, p + "self_attn.q_proj.weight", bias("q_proj"))
        k = synaptic(n + "k", lay, h, p + "self_attn.k_proj.weight", bias("k_proj"))
        v = synaptic(n + "v", lay, h, p + "self_attn.v_proj.weight", bias("v_proj"))
        if cfg.qk_norm:  # one RMSNorm per head, over head_dim
            q = rmsnorm(n + "qn", lay, q, P[p + "self_attn.q_norm.weight"], group=dh)
            k = rmsnorm(n + "kn", lay, k, P[p + "self_attn.k_norm.weight"], group=dh)
        qr = rope(n + "qr", lay, q, H, cfg.rotary_of(i))
        kr = rope(n + "kr", lay, k, G, cfg.rotary_of(i))
        c = float(scale[n + "qr"]) * float(scale[n + "kr"]) / cfg.attn_divisor
        cap = cfg.attn_softcap
        att = add(n + "att", lay, "softmax", H * ctx, inputs=(qr, kr),
                  params=softcap_tables(c, cap) if cap else tables(c, dh, max(pops[qr].qmax, pops[kr].qmax)))
        win = cfg.window(i) if cfg.window(i) < ctx else 0  # a window as long as the context is none
        edges.append(ProductEdge("scores", qr, kr, att, H, G, dh, window=win))
        v_of_ctx = vec(n + "v", G * dh).reshape(G, dh)[np.arange(H) // (H // G)].reshape(H * dh)
        o = product(n + "ctx", lay, att, v, float(scale[n + "att"]) * v_of_ctx / vec(n + "ctx", H * dh),
                    float(pops[att].qmax + ctx) * pops[v].qmax * ctx, H * dh)
        edges.append(ProductEdge("mix", att, v, o, H, G, dh, window=win))
        y = synaptic(n + "o", lay, o, p + "self_attn.o_proj.weight",
                     P[p + "self_attn.o_proj.bias"] if cfg.o_bias else None)
        if cfg.post_norms:
            y = rmsnorm(n + "onorm", lay, y, P[p + "post_attention_layernorm.weight"])
        r1 = residual(n + "res1", lay, x, y)
        h2 = rmsnorm(n + "norm2", lay, r1,
                     P[p + ("pre_feedforward_layernorm" if cfg.post_norms else "post_attention_layernorm") + ".weight"])
        gate = synaptic(n + "gate", lay, h2, p + "mlp.gate_proj.weight")
        up = synaptic(n + "up", lay, h2, p + "mlp.up_proj.weight")
        lo, hi = pops[gate].qmin, pops[gate].qmax
        slo, shi = ranges(n + act_name)
        lut = np.clip(round_half_up(act_fn(np.arange(lo, hi + 1) * float(scale[n + "gate"]))
                                    / float(scale[n + act_name])), slo, shi).astype(np.int64)
        sg = add(n + act_name, lay, "table", f, inputs=(gate,), params=TableParams(lut, lo))
        act = product(n + "act", lay, sg, up, float(scale[n + act_name]) * vec(n + "up", f) / vec(n + "act", f),
                      float(pops[sg].qmax) * pops[up].qmax, f)
        edges.append(ProductEdge("mul", sg, up, act, 1, 1, f))
        y = synaptic(n + "down", lay, act, p + "mlp.down_proj.weight")
        if cfg.post_norms:
            y = rmsnorm(n + "dnorm", lay, y, P[p + "post_feedforward_layernorm.weight"])
        x = residual(n + "res2", lay, r1, y)
    hf = rmsnorm("normf", "normf", x, P["model.norm.weight"])
    codes, s_w = folded_weight_codes(stored(P, L.head_name(qcfg)).T, vec("normf", d), weight_bits, rows_exp)
    release(P, L.head_name(qcfg))
    index["head"] = len(pops)
    pops.append(LMPopulation("head", "head", ACCUMULATE, V, 0, 0, 0.0, inputs=(hf,), spiking=False,
                             params=ReadoutParams(s_w, np.zeros(V), float(cfg.final_softcap or 0.0))))
    projections.append(LMProjection(hf, index["head"], np.ascontiguousarray(codes)))
    top_w = max((max(-int(pr.weights.min(initial=0)), int(pr.weights.max(initial=0))) for pr in projections), default=0)
    return LMGraph(config=cfg, pops=pops, projections=projections, edges=edges, n_positions=ctx, vocab_size=V,
                   prefix=graph_prefix,
                   meta={"family": cfg.model_type, "precision": prec, "coding": coding, "scales": scale,
                         "weight_bits": weight_bits, "weight_top": top_w, **meta_extra})


def _prefix(cfg, params, ids, ranges, scale) -> Prefix:
    """The sink positions' K (after RoPE) and V codes, from the float model, in the graph's scales
    and code ranges (``ranges(name)``: those of the populations)."""
    codes = {}

    def record(name, x):
        if name.rsplit(".", 1)[-1] in ("kr", "v"):
            codes[name] = np.clip(np.floor(x / scale[name] + 0.5), *ranges(name)).astype(np.int64)

    L.float_forward(cfg, params, ids, record, logits=False)
    return Prefix(ids=ids, codes=codes)
