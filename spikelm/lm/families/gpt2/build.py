"""Quantize a float GPT-2 model into an :class:`~spikelm.lm.graph.LMGraph`.

Populations per layer ``hI.`` (docs/lm.md has the table): ln1 (LayerNorm), q, k, v
(synaptic from ln1), att (softmax of the Q·K^T scores edge), ctx (the A·V mix edge), proj
(synaptic), res1 (residual), ln2, fc (synaptic), gelu (table of the config's activation),
fc2 (synaptic), res2 (residual); then lnf and the readout ``head``. Scales are per tensor,
from calibration; weights int8 per output channel.
"""

from __future__ import annotations

import math

import numpy as np

from spikelm.lm.families.gpt2.forward import calibrate, head_weight
from spikelm.lm.graph import ACCUMULATE, LMGraph, LMPopulation, LMProjection, ProductEdge, ReadoutParams
from spikelm.lm.ops.embed import EmbedParams
from spikelm.lm.ops.layernorm import LayerNormParams
from spikelm.lm.ops.residual import ResidualParams
from spikelm.lm.ops.softmax import tables
from spikelm.lm.ops.table import TableParams
from spikelm.lm.precision import parse_bits
from spikelm.lm.quantize import fixed_point, quantize, round_half_up, weight_codes


#: the default activation precision of GPT-2 models
DEFAULT_BITS = 8


def point_group(name: str, activation: str = "gelu") -> str:
    """The precision group (:mod:`spikelm.lm.precision`) of a GPT-2 quantizer point
    (``activation``: the name of the MLP activation's point)."""
    kind = name.rsplit(".", 1)[-1]
    if kind in ("emb", "res1", "res2"):
        return "res"
    if kind in ("ln1", "ln2", "lnf", "ctx"):
        return "lin"
    if kind == activation:
        return "act"
    if kind == "att":
        return "att"
    return "oth"


def build(cfg, params: dict, calibration, bits=DEFAULT_BITS, coding: str = "unit") -> LMGraph:
    """Quantize a float GPT-2 (``params`` as from :mod:`spikelm.lm.load`, config ``cfg``: a
    :class:`~spikelm.lm.families.gpt2.config.GPTConfig`) into the population graph.

    ``bits``: an int, a ``"group=bits,..."`` string or a :class:`~spikelm.lm.precision.Precision`.
    """
    prec = parse_bits(bits)
    maxabs = calibrate(cfg, params, calibration)
    act = cfg.ACTIVATION_POINT

    def qrange(name):
        g = point_group(name, act)
        return prec.unsigned_range(g) if g == "att" else prec.signed_range(g)

    scale = {k: max(v, 1e-6) / qrange(k)[1] for k, v in maxabs.items()}
    scale.update({f"h{i}.att": 1.0 / qrange("att")[1] for i in range(cfg.n_layer)})
    d, f, H, dh, V = cfg.n_embd, cfg.inner, cfg.n_head, cfg.head_dim, cfg.vocab_size
    ctx = cfg.n_positions
    P = params
    pops: list[LMPopulation] = []
    projections: list[LMProjection] = []
    edges: list[ProductEdge] = []
    index: dict[str, int] = {}

    def add(name, layer, op, size, **kw):
        lo_, hi_ = qrange(name)
        index[name] = len(pops)
        pops.append(LMPopulation(name, layer, op, size, lo_, hi_, scale[name], coding=coding, **kw))
        return index[name]

    def synaptic(name, layer, pre, w, b):
        """A population fed by int8 rows; its potential rescales acc to its own scale."""
        codes, s_w = weight_codes(w)
        s_in, s_out = pops[pre].scale, scale[name]
        acc_bound = float(max(abs(pops[pre].qmin), pops[pre].qmax)) * 127 * w.shape[0]
        M, k = fixed_point(s_in * s_w / s_out, acc_bound, name)
        lim = acc_bound * float(np.abs(M).max()) + (qrange(name)[1] + 2) * 2.0**k
        B = np.clip(round_half_up(b / s_out * 2.0**k), -lim, lim).astype(np.int64)
        p = add(name, layer, ACCUMULATE, w.shape[1], inputs=(pre,), gain=M, offset=B, shift=k)
        projections.append(LMProjection(pre, p, np.ascontiguousarray(codes)))
        return p

    def layernorm(name, layer, pre, g, b):
        ln = LayerNormParams.of(g, b, cfg.layer_norm_epsilon, pops[pre].scale, scale[name])
        return add(name, layer, "layernorm", d, inputs=(pre,), params=ln)

    def residual(name, layer, a, b):
        m = np.array([pops[a].scale, pops[b].scale]) / scale[name]
        M, k = fixed_point(m, float(max(pops[a].qmax, pops[b].qmax)), name)
        return add(name, layer, "residual", d, inputs=(a, b), params=ResidualParams(M, k))

    x = add("emb", "emb", "embed", d,
            params=EmbedParams(P["transformer.wte.weight"], P["transformer.wpe.weight"], scale["emb"]))
    for i in range(cfg.n_layer):
        p, n, lay = f"transformer.h.{i}.", f"h{i}.", f"h{i}"
        ln1 = layernorm(n + "ln1", lay, x, P[p + "ln_1.weight"], P[p + "ln_1.bias"])
        W, b = P[p + "attn.c_attn.weight"], P[p + "attn.c_attn.bias"]
        q = synaptic(n + "q", lay, ln1, W[:, :d], b[:d])
        k = synaptic(n + "k", lay, ln1, W[:, d : 2 * d], b[d : 2 * d])
        v = synaptic(n + "v", lay, ln1, W[:, 2 * d :], b[2 * d :])
        c = scale[n + "q"] * scale[n + "k"] / math.sqrt(dh)
        qk_max = max(pops[q].qmax, pops[k].qmax)
        att = add(n + "att", lay, "softmax", H * ctx, inputs=(q, k), params=tables(c, dh, qk_max))
        edges.append(ProductEdge("scores", q, k, att, H, H, dh))
        acc_bound = float(pops[att].qmax + ctx) * pops[v].qmax * ctx
        M, kk = fixed_point(np.full(d, scale[n + "att"] * scale[n + "v"] / scale[n + "ctx"]), acc_bound, n + "ctx")
        o = add(n + "ctx", lay, ACCUMULATE, d, inputs=(att, v), gain=M, offset=np.zeros(d, np.int64), shift=kk)
        edges.append(ProductEdge("mix", att, v, o, H, H, dh))
        y = synaptic(n + "proj", lay, o, P[p + "attn.c_proj.weight"], P[p + "attn.c_proj.bias"])
        r1 = residual(n + "res1", lay, x, y)
        ln2 = layernorm(n + "ln2", lay, r1, P[p + "ln_2.weight"], P[p + "ln_2.bias"])
        fc = synaptic(n + "fc", lay, ln2, P[p + "mlp.c_fc.weight"], P[p + "mlp.c_fc.bias"])
        codes = np.arange(pops[fc].qmin, pops[fc].qmax + 1)
        lo_g, hi_g = qrange(n + act)
        lut = quantize(cfg.activation(codes * scale[n + "fc"]), scale[n + act], lo_g, hi_g)
        g = add(n + act, lay, "table", f, inputs=(fc,), params=TableParams(lut, pops[fc].qmin))
        y = synaptic(n + "fc2", lay, g, P[p + "mlp.c_proj.weight"], P[p + "mlp.c_proj.bias"])
        x = residual(n + "res2", lay, r1, y)
    lnf = layernorm("lnf", "lnf", x, P["transformer.ln_f.weight"], P["transformer.ln_f.bias"])

    codes, s_w = weight_codes(head_weight(cfg, P).T)
    index["head"] = len(pops)
    pops.append(LMPopulation("head", "head", ACCUMULATE, V, 0, 0, 0.0, inputs=(lnf,), spiking=False,
                             params=ReadoutParams(pops[lnf].scale * s_w, np.zeros(V))))
    projections.append(LMProjection(lnf, index["head"], np.ascontiguousarray(codes)))
    return LMGraph(config=cfg, pops=pops, projections=projections, edges=edges, n_positions=ctx,
                   vocab_size=V, meta={"family": cfg.MODEL_TYPE, "precision": prec, "coding": coding, "scales": scale})
