"""Quantize a :class:`~spikelm.lm.families.decoder.arch.Decoder` into an LMGraph, from the shared
operators, product edges and codings.

Quantization as the Llama family's (docs/lm-llama.md): per-channel static scales wherever an
operator allows them, folded into integer weights of ``weight_bits``; codes clamped at
``clamp`` x the calibration range; the attention sink as a constant prefix (the BOS position's
K and V codes, computed once from the float model). One scale per tensor where the next
operator needs a common unit: the input of a LayerNorm (its mean and variance are integer sums
over the channels), Q and K where they meet in the scores (after RoPE, or as projected
without it), a table's input and output (one table for every channel).

Populations per layer ``hI.`` (pre-norm): norm1, q, k, v, [qr, kr: RoPE], att (softmax of the
scores edge), ctx (the att·v mix edge), o, res1, norm2, fc and act (a table), or gate, up,
gate_act (a table) and act (the gate_act·up product edge), down, res2; a parallel residual
has one ``res`` (x + o + down) instead of res1 and res2, its norm2 reading the layer's input;
post-norm blocks put norm1 after res1 and norm2 after res2. Then normf, proj_out, and the
readout ``head``.
"""

from __future__ import annotations

import math

import numpy as np

from spikelm.errors import ConfigError
from spikelm.lm.calibration import Calibration, weights_digest
from spikelm.lm.activations import table
from spikelm.lm.families.decoder.forward import float_forward, rope_tables
from spikelm.lm.graph import ACCUMULATE, LMGraph, LMPopulation, LMProjection, Prefix, ProductEdge, ReadoutParams
from spikelm.lm.ops.embed import EmbedParams
from spikelm.lm.ops.layernorm import LayerNormParams
from spikelm.lm.ops.residual import ResidualParams
from spikelm.lm.ops.rmsnorm import RMSNormParams
from spikelm.lm.ops.rope import RopeParams
from spikelm.lm.ops.softmax import tables
from spikelm.lm.precision import Clamp, parse_bits, parse_clamp
from spikelm.lm.quantize import MIN_CALIBRATION_TOKENS, check_tokens, fixed_point, folded_weight_codes, round_half_up

#: the default precision (the Llama family's: meets +3 % perplexity on SmolLM2, docs/lm.md)
DEFAULT_BITS = "lin=8,act=8,res=12,att=12,oth=12"
DEFAULT_WEIGHT_BITS = 12
DEFAULT_CLAMP = 8

GROUPS = {"emb": "res", "norm1": "lin", "q": "oth", "k": "oth", "v": "oth", "qr": "oth", "kr": "oth", "att": "att",
          "ctx": "lin", "o": "oth", "res1": "res", "res2": "res", "res": "res", "norm2": "lin", "fc": "oth",
          "gate": "oth", "up": "oth", "gate_act": "oth", "act": "act", "down": "oth", "normf": "lin",
          "proj_out": "lin"}


def point_group(name: str) -> str:
    """The precision group (:mod:`spikelm.lm.precision`) of a quantizer point."""
    return GROUPS[name.rsplit(".", 1)[-1]]


def per_tensor(arch) -> set:
    """The points with one scale per tensor (the rest: per channel); see the module docstring."""
    one = {"qr", "kr", "gate", "gate_act", "fc"} | ({"act"} if not arch.gated else set())
    if not arch.rotary_dim:
        one |= {"q", "k"}
    if arch.norm == "layernorm":
        one |= {"emb", "res1", "res2", "res"}
    return one


def calibrate(arch, W: dict, calibration, prefix: np.ndarray) -> dict:
    """Max |x| per channel (per tensor where :func:`per_tensor`) over the calibration tokens, in
    windows that each start with the prefix; the prefix positions are left out."""
    ids = check_tokens(calibration, arch.vocab_size, "calibration")
    if ids.size < MIN_CALIBRATION_TOKENS:
        raise ConfigError(f"calibration: {ids.size} tokens are too few; give at least {MIN_CALIBRATION_TOKENS}")
    out: dict[str, np.ndarray] = {}
    one = per_tensor(arch)

    def record(name, x):
        a = np.abs(x).reshape(x.shape[0], -1)
        m = a.max(initial=0.0) if name.rsplit(".", 1)[-1] in one else a.max(0, initial=0.0)
        out[name] = np.maximum(out.get(name, 0.0), m)

    width = arch.n_positions - len(prefix)
    for s in range(0, ids.size, width):
        float_forward(arch, W, np.concatenate([prefix, ids[s : s + width]]).astype(np.int64), record, len(prefix))
    return out


def check_options(weight_bits, clamp) -> Clamp:
    """The clamps per point group (:func:`~spikelm.lm.precision.parse_clamp`: an integer or
    ``"lin=32,act=64"``; groups not named keep DEFAULT_CLAMP), once the weight bits are checked."""
    if isinstance(weight_bits, bool) or not isinstance(weight_bits, int) or not 4 <= weight_bits <= 16:
        raise ConfigError(f"weight_bits={weight_bits!r}; allowed: an integer from 4 to 16")
    return parse_clamp(clamp, parse_clamp(DEFAULT_CLAMP))


def build(arch, W: dict, calibration, bits=None, coding: str = "signed_digit", weight_bits: int = DEFAULT_WEIGHT_BITS,
          clamp=DEFAULT_CLAMP, sink: bool = True, config=None, family: str = "") -> LMGraph:
    """The graph of decoder ``arch`` with weights ``W`` (the shared names, float64).

    ``calibration``: token ids, or a :class:`~spikelm.lm.calibration.Calibration` computed for
    this model (its family's config, context included, and weights) and prefix, whose maxima are
    used as they are (else refused, naming what differs); ``graph.meta["calibration"]`` holds the
    one used. ``config``: the family's config, kept as the graph's; ``family``:
    ``graph.meta["family"]``.
    """
    prec = parse_bits(DEFAULT_BITS if bits is None else bits)
    clamps = check_options(weight_bits, clamp)
    bos = arch.bos_token_id
    prefix = np.array([bos] if sink and bos is not None else [], dtype=np.int64)
    made_for = dict(config=arch if config is None else config, weights=weights_digest(W), prefix=prefix, methods=())
    if isinstance(calibration, Calibration):
        calibration.check(**made_for)
    else:
        ids = check_tokens(calibration, arch.vocab_size, "calibration")
        calibration = Calibration(**made_for, ids=ids, maxabs=calibrate(arch, W, ids, prefix))
    maxabs = calibration.maxabs
    d, V, ctx = arch.d, arch.vocab_size, arch.n_positions
    H, G, dh = arch.heads, arch.kv_heads, arch.head_dim

    def q_of(name):  # (step code, range) of a point: b bits, clamped at clamp x the calibration range
        g = point_group(name)
        b = getattr(prec, g)
        if g == "att":
            return 2**b - 1, (0, 2**b - 1)
        q = 2 ** (b - 1) - 1
        return q, (-clamps.of(g) * q, clamps.of(g) * q)

    def settings(name, weights=False):  # what widens a population's accumulator, for a refusal
        g = point_group(name)
        out = f"bits {g} ({getattr(prec, g)})" + (f", clamp {g} ({clamps.of(g)})" if g != "att" else "")
        return out + (f" or weight bits ({weight_bits})" if weights else "")

    scale = {}
    for name, m in maxabs.items():
        m = np.asarray(m, dtype=np.float64)
        floor = max(float(m.max(initial=0.0)) * 1e-6, 1e-12)  # a silent channel gets a tiny scale, not 0
        scale[name] = np.maximum(m, floor) / q_of(name)[0]
    for i in range(arch.n_layer):
        scale[f"h{i}.att"] = np.float64(1.0 / q_of("att")[0])

    pops: list[LMPopulation] = []
    projections: list[LMProjection] = []
    edges: list[ProductEdge] = []

    def add(name, layer, op, size, **kw):
        pops.append(LMPopulation(name, layer, op, size, *q_of(name)[1], scale[name], coding=coding, **kw))
        return len(pops) - 1

    def vec(name, n):
        return np.broadcast_to(np.asarray(scale[name], dtype=np.float64), (n,))

    def synaptic(name, layer, pre, w, b=None):
        """w [n_out, n_in] (torch layout); the input's scales folded into the integer weights."""
        codes, s_w = folded_weight_codes(w.T, vec(pops[pre].name, w.shape[1]), weight_bits)
        s_out = vec(name, w.shape[0])
        acc_bound = float(max(-pops[pre].qmin, pops[pre].qmax)) * float(np.abs(codes.astype(np.int64)).sum(0).max())
        M, k = fixed_point(s_w / s_out, acc_bound, name, settings(pops[pre].name, True))
        B = np.zeros(w.shape[0], np.int64)
        if b is not None:
            lim = acc_bound * float(np.abs(M).max()) + (q_of(name)[1][1] + 2) * 2.0**k
            B = np.clip(round_half_up(b / s_out * 2.0**k), -lim, lim).astype(np.int64)
        p = add(name, layer, ACCUMULATE, w.shape[0], inputs=(pre,), gain=M, offset=B, shift=k)
        projections.append(LMProjection(pre, p, np.ascontiguousarray(codes)))
        return p

    def linear(name, layer, pre, wname):
        return synaptic(name, layer, pre, W[wname + ".weight"], W.get(wname + ".bias"))

    def product(name, layer, a, b, m, acc_bound, size):
        hint = ", ".join(dict.fromkeys(settings(pops[a].name).split(", ") + settings(pops[b].name).split(", ")))
        M, k = fixed_point(m, acc_bound, name, hint)
        return add(name, layer, ACCUMULATE, size, inputs=(a, b), gain=M, offset=np.zeros(size, np.int64), shift=k)

    def norm(name, layer, pre, wname):
        w = W[wname + ".weight"]
        if arch.norm == "rmsnorm":
            prm = RMSNormParams.of(w, arch.norm_eps, vec(pops[pre].name, d), vec(name, d), pops[pre].qmax)
            return add(name, layer, "rmsnorm", d, inputs=(pre,), params=prm)
        prm = LayerNormParams.of(w, W[wname + ".bias"], arch.norm_eps, float(scale[pops[pre].name]), vec(name, d))
        return add(name, layer, "layernorm", d, inputs=(pre,), params=prm)

    def residual(name, layer, *xs):
        m = np.stack([vec(pops[x].name, d) for x in xs]) / vec(name, d)
        M, k = fixed_point(m, float(max(pops[x].qmax for x in xs)), name, settings(name))
        return add(name, layer, "residual", d, inputs=xs, params=ResidualParams(M, k))

    cos, sin = rope_tables(arch, ctx) if arch.rotary_dim else (None, None)

    def rope(name, layer, pre, heads):
        gain = vec(pops[pre].name, heads * dh) / float(scale[name])
        return add(name, layer, "rope", heads * dh, inputs=(pre,),
                   params=RopeParams(cos, sin, gain, dh, arch.rotary_dim))

    def attention(n, lay, h):
        q, k, v = (linear(n + x, lay, h, n + x) for x in "qkv")
        if arch.rotary_dim:
            q, k = rope(n + "qr", lay, q, H), rope(n + "kr", lay, k, G)
        c = float(scale[pops[q].name]) * float(scale[pops[k].name]) / math.sqrt(dh)
        att = add(n + "att", lay, "softmax", H * ctx, inputs=(q, k),
                  params=tables(c, dh, max(pops[q].qmax, pops[k].qmax)))
        edges.append(ProductEdge("scores", q, k, att, H, G, dh))
        v_of_ctx = vec(n + "v", G * dh).reshape(G, dh)[np.arange(H) // (H // G)].reshape(H * dh)
        o = product(n + "ctx", lay, att, v, float(scale[n + "att"]) * v_of_ctx / vec(n + "ctx", H * dh),
                    float(pops[att].qmax + ctx) * pops[v].qmax * ctx, H * dh)
        edges.append(ProductEdge("mix", att, v, o, H, G, dh))
        return linear(n + "o", lay, o, n + "o")

    def activation(name, layer, pre, size):
        prm = table(arch.activation, float(scale[pops[pre].name]), (pops[pre].qmin, pops[pre].qmax),
                    float(scale[name]), q_of(name)[1])
        return add(name, layer, "table", size, inputs=(pre,), params=prm)

    def mlp(n, lay, h):
        f = arch.inner
        if arch.gated:
            gate, up = linear(n + "gate", lay, h, n + "gate"), linear(n + "up", lay, h, n + "up")
            ga = activation(n + "gate_act", lay, gate, f)
            act = product(n + "act", lay, ga, up, float(scale[n + "gate_act"]) * vec(n + "up", f) / vec(n + "act", f),
                          float(pops[ga].qmax) * pops[up].qmax, f)
            edges.append(ProductEdge("mul", ga, up, act, 1, 1, f))
        else:
            act = activation(n + "act", lay, linear(n + "fc", lay, h, n + "fc"), f)
        return linear(n + "down", lay, act, n + "down")

    pos = W["pos.weight"][arch.position_offset : arch.position_offset + ctx] if arch.learned_positions else None
    x = add("emb", "emb", "embed", d, params=EmbedParams(W["emb.weight"], pos, vec("emb", d)))
    for i in range(arch.n_layer):
        n, lay = f"h{i}.", f"h{i}"
        if not arch.norm_before:
            x = norm(n + "norm1", lay, residual(n + "res1", lay, x, attention(n, lay, x)), n + "norm1")
            x = norm(n + "norm2", lay, residual(n + "res2", lay, x, mlp(n, lay, x)), n + "norm2")
        elif arch.parallel_residual:
            o = attention(n, lay, norm(n + "norm1", lay, x, n + "norm1"))
            x = residual(n + "res", lay, x, o, mlp(n, lay, norm(n + "norm2", lay, x, n + "norm2")))
        else:
            r = residual(n + "res1", lay, x, attention(n, lay, norm(n + "norm1", lay, x, n + "norm1")))
            x = residual(n + "res2", lay, r, mlp(n, lay, norm(n + "norm2", lay, r, n + "norm2")))
    if arch.final_norm:
        x = norm("normf", "normf", x, "normf")
    if arch.proj_out:
        x = linear("proj_out", "proj_out", x, "proj_out")
    codes, s_w = folded_weight_codes(W["head.weight"].T, vec(pops[x].name, arch.head_in), weight_bits)
    pops.append(LMPopulation("head", "head", ACCUMULATE, V, 0, 0, 0.0, inputs=(x,), spiking=False,
                             params=ReadoutParams(s_w, np.zeros(V))))
    projections.append(LMProjection(x, len(pops) - 1, np.ascontiguousarray(codes)))
    graph_prefix = _prefix(arch, W, prefix, pops, scale) if prefix.size else None
    return LMGraph(config=config if config is not None else arch, pops=pops, projections=projections, edges=edges,
                   n_positions=ctx, vocab_size=V, prefix=graph_prefix,
                   meta={"family": family, "precision": prec, "coding": coding, "scales": scale,
                         "calibration": calibration,
                         "weight_bits": weight_bits, "clamp": str(clamps)})


def _prefix(arch, W, ids, pops, scale) -> Prefix:
    """The sink positions' codes of the populations read across positions (K as the scores read
    it, V), from the float model, in the graph's scales."""
    keys = {"kr", "v"} if arch.rotary_dim else {"k", "v"}
    keep = {p.name: p for p in pops if p.name.rsplit(".", 1)[-1] in keys}
    codes = {}

    def record(name, x):
        if name in keep:
            p = keep[name]
            codes[name] = np.clip(np.floor(x / scale[name] + 0.5), p.qmin, p.qmax).astype(np.int64)

    float_forward(arch, W, ids, record)
    return Prefix(ids=ids, codes=codes)
