"""The quantized GPT as one graph of SignedIF populations.

Every activation of the quantized model is a population: one neuron per element per position
(rows = positions). A population is fed in one of these ways:

- ``embed``: the token's embedding codes, injected when the token arrives (the stimulus);
- ``synaptic``: int8 weight rows; a spike of value v from pre neuron j adds ``v W[j, :]`` to
  the integer accumulators ``acc`` (one SynOp per addition);
- ``product``: the A·V accumulators, updated by the telescoping rule as the attention
  probabilities and V change;
- an operator recomputed from integer codes: ``layernorm``, ``softmax`` (reads the Q·K^T
  accumulators, causal), ``gelu`` (table), ``residual`` (fixed-point sum).

A neuron's potential is ``V = (acc M + B) / 2^k`` (``M, B`` per neuron, ``2^k`` per
population; operator-fed neurons have ``acc`` = the operator's code, M = 1, B = 0, k = 0).
At quiescence its spike count is ``clamp(floor(V + 1/2))``, the reference code.
The LM head is a readout: integer accumulators that do not spike; the logits are read from them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from spikelm.lm.gpt import GPTConfig, gelu
from spikelm.lm.quantize import (
    calibrate,
    check_bits,
    fixed_point,
    quantize,
    round_half_up,
    signed_range,
    unsigned_range,
    weight_codes,
)

# How a population's input is computed (numbers are used by the Numba kernel).
EMBED, LAYERNORM, SYNAPTIC, SOFTMAX, PRODUCT, RESIDUAL, GELU, READOUT = range(8)
FEED_NAMES = ("embed", "layernorm", "synaptic", "softmax", "product", "residual", "gelu", "readout")
# Extra, per-spike work of a population's spikes (telescoping products).
TELE_NONE, TELE_Q, TELE_K, TELE_V, TELE_ATT = range(5)

LAYER_POPS = ("ln1", "q", "k", "v", "att", "ctx", "proj", "res1", "ln2", "fc", "gelu", "fc2", "res2")
_SOFTMAX_FRAC_BITS = 40


@dataclass
class Population:
    name: str
    layer: str  # "emb", "h0", ..., "lnf", "head"
    feed: int
    size: int  # neurons per position
    qmin: int
    qmax: int
    scale: float  # value of one code
    inputs: tuple[int, ...] = ()
    tele: int = TELE_NONE
    arg: int = 0  # index of the operator's parameters (layer norm #, residual #, layer #)
    gain: np.ndarray | None = None  # M per neuron (int64)
    offset: np.ndarray | None = None  # B per neuron (int64)
    shift: int = 0  # k: the potential is (acc M + B) / 2^k


@dataclass
class Projection:
    pre: int
    post: int
    weights: np.ndarray  # int8 [n_pre, n_post], row j = the synapses of pre neuron j


@dataclass
class QuantizedGPT:
    """Integer parameters and the population graph; both executors read only this."""

    config: GPTConfig
    bits: int
    pops: list[Population]
    projections: list[Projection]
    emb_scale: float
    wte: np.ndarray  # float64, for the embedding codes
    wpe: np.ndarray
    ln_gain: np.ndarray  # [2 n_layer + 1, d] float64 (gamma / s_out)
    ln_bias: np.ndarray  # [2 n_layer + 1, d] float64 (beta / s_out)
    ln_eps: np.ndarray  # [2 n_layer + 1] float64: d^2 eps / s_in^2
    res_gain: np.ndarray  # [2 n_layer, 2] int64
    res_shift: np.ndarray  # [2 n_layer] int64
    gelu_lut: np.ndarray  # [n_layer, 2^bits - 1] int64, indexed by code - q_min
    sm_hi: np.ndarray  # [n_layer, n_hi] float64
    sm_lo: np.ndarray  # [n_layer, 2^sm_shift] float64
    sm_shift: np.ndarray  # [n_layer] int64
    head_scale: np.ndarray  # [vocab] float64: logit = acc * head_scale (+ head_bias)
    head_bias: np.ndarray
    scales: dict = field(default_factory=dict)
    index: dict = field(default_factory=dict)

    def pop(self, name: str) -> Population:
        return self.pops[self.index[name]]


def _layer_norm_params(g, b, eps, d, s_in, s_out):
    return g / s_out, b / s_out, d * d * eps / (s_in * s_in)


def _softmax_tables(c: float, dh: int, qk_max: int):
    """exp(-c d) 2^40 for integer distances d = max S - S, as a product of two tables."""
    d_bound = 2 * qk_max * qk_max * dh + 1
    d_zero = math.ceil((_SOFTMAX_FRAC_BITS + 2) * math.log(2) / c) if c > 0 else d_bound
    d_max = max(1, min(d_bound, d_zero))
    shift = max(1, math.ceil(math.log2(d_max + 1) / 2))
    lo = np.exp(-c * np.arange(2**shift, dtype=np.float64)) * 2.0**_SOFTMAX_FRAC_BITS
    hi = np.exp(-c * np.arange((d_max >> shift) + 1, dtype=np.float64) * 2.0**shift)
    return hi, lo, shift


def build(cfg: GPTConfig, params: dict, calibration, bits: int = 8) -> QuantizedGPT:
    """Quantize a float GPT (``params`` as from :mod:`spikelm.lm.load`) into the population graph."""
    bits = check_bits(bits)
    maxabs = calibrate(cfg, params, calibration)
    smin, smax = signed_range(bits)
    amin, amax = unsigned_range(bits)
    scale = {k: max(v, 1e-6) / smax for k, v in maxabs.items()}
    scale.update({f"h{i}.att": 1.0 / amax for i in range(cfg.n_layer)})
    d, f, H, dh, V = cfg.n_embd, cfg.inner, cfg.n_head, cfg.head_dim, cfg.vocab_size
    ctx = cfg.n_positions
    P = params
    pops: list[Population] = []
    projections: list[Projection] = []
    index: dict[str, int] = {}

    def add(name, layer, feed, size, signed=True, **kw):
        lo_, hi_ = (smin, smax) if signed else (amin, amax)
        index[name] = len(pops)
        pops.append(Population(name, layer, feed, size, lo_, hi_, scale[name], **kw))
        return index[name]

    def synaptic(name, layer, pre, w, b):
        """A population fed by int8 rows; its potential rescales acc to its own scale."""
        codes, s_w = weight_codes(w)
        s_in, s_out = pops[pre].scale, scale[name]
        acc_bound = float(max(abs(pops[pre].qmin), pops[pre].qmax)) * 127 * w.shape[0]
        M, k = fixed_point(s_in * s_w / s_out, acc_bound, name)
        lim = acc_bound * float(np.abs(M).max()) + (smax + 2) * 2.0**k
        B = np.clip(round_half_up(b / s_out * 2.0**k), -lim, lim).astype(np.int64)
        p = add(name, layer, SYNAPTIC, w.shape[1], inputs=(pre,), gain=M, offset=B, shift=k)
        projections.append(Projection(pre, p, np.ascontiguousarray(codes)))
        return p

    ln_gain, ln_bias, ln_eps, res_gain, res_shift, luts, his, los, shifts = ([] for _ in range(9))

    def layernorm(name, layer, pre, g, b):
        G, Bt, e = _layer_norm_params(g, b, cfg.layer_norm_epsilon, d, pops[pre].scale, scale[name])
        ln_gain.append(G)
        ln_bias.append(Bt)
        ln_eps.append(e)
        return add(name, layer, LAYERNORM, d, inputs=(pre,), arg=len(ln_gain) - 1)

    def residual(name, layer, a, b):
        m = np.array([pops[a].scale, pops[b].scale]) / scale[name]
        M, k = fixed_point(m, float(smax), name)
        res_gain.append(M)
        res_shift.append(k)
        return add(name, layer, RESIDUAL, d, inputs=(a, b), arg=len(res_gain) - 1)

    x = add("emb", "emb", EMBED, d)
    for i in range(cfg.n_layer):
        p, n, lay = f"transformer.h.{i}.", f"h{i}.", f"h{i}"
        ln1 = layernorm(n + "ln1", lay, x, P[p + "ln_1.weight"], P[p + "ln_1.bias"])
        W, b = P[p + "attn.c_attn.weight"], P[p + "attn.c_attn.bias"]
        q = synaptic(n + "q", lay, ln1, W[:, :d], b[:d])
        k = synaptic(n + "k", lay, ln1, W[:, d : 2 * d], b[d : 2 * d])
        v = synaptic(n + "v", lay, ln1, W[:, 2 * d :], b[2 * d :])
        pops[q].tele, pops[k].tele, pops[v].tele = TELE_Q, TELE_K, TELE_V
        c = scale[n + "q"] * scale[n + "k"] / math.sqrt(dh)
        hi, lo, sh = _softmax_tables(c, dh, smax)
        his.append(hi)
        los.append(lo)
        shifts.append(sh)
        att = add(n + "att", lay, SOFTMAX, H * ctx, signed=False, inputs=(q, k), tele=TELE_ATT, arg=i)
        acc_bound = float(amax + ctx) * smax * ctx
        M, kk = fixed_point(np.full(d, scale[n + "att"] * scale[n + "v"] / scale[n + "ctx"]), acc_bound, n + "ctx")
        o = add(n + "ctx", lay, PRODUCT, d, inputs=(att, v), arg=i, gain=M,
                offset=np.zeros(d, np.int64), shift=kk)
        y = synaptic(n + "proj", lay, o, P[p + "attn.c_proj.weight"], P[p + "attn.c_proj.bias"])
        r1 = residual(n + "res1", lay, x, y)
        ln2 = layernorm(n + "ln2", lay, r1, P[p + "ln_2.weight"], P[p + "ln_2.bias"])
        fc = synaptic(n + "fc", lay, ln2, P[p + "mlp.c_fc.weight"], P[p + "mlp.c_fc.bias"])
        codes = np.arange(smin, smax + 1)
        luts.append(quantize(gelu(codes * scale[n + "fc"], cfg.activation_function), scale[n + "gelu"], smin, smax))
        g = add(n + "gelu", lay, GELU, f, inputs=(fc,), arg=i)
        y = synaptic(n + "fc2", lay, g, P[p + "mlp.c_proj.weight"], P[p + "mlp.c_proj.bias"])
        x = residual(n + "res2", lay, r1, y)
    lnf = layernorm("lnf", "lnf", x, P["transformer.ln_f.weight"], P["transformer.ln_f.bias"])

    from spikelm.lm.quantize import head_weight

    codes, s_w = weight_codes(head_weight(cfg, P).T)
    index["head"] = len(pops)
    pops.append(Population("head", "head", READOUT, V, 0, 0, 0.0, inputs=(lnf,)))
    projections.append(Projection(lnf, index["head"], np.ascontiguousarray(codes)))

    n_hi = max(len(h) for h in his)
    sm_hi = np.zeros((cfg.n_layer, n_hi))
    for i, h in enumerate(his):
        sm_hi[i, : len(h)] = h  # zeros past a layer's table: exp underflows to 0 there
    n_lo = max(len(lo) for lo in los)
    sm_lo = np.zeros((cfg.n_layer, n_lo))
    for i, lo in enumerate(los):
        sm_lo[i, : len(lo)] = lo
    return QuantizedGPT(
        config=cfg, bits=bits, pops=pops, projections=projections,
        emb_scale=scale["emb"], wte=P["transformer.wte.weight"], wpe=P["transformer.wpe.weight"],
        ln_gain=np.array(ln_gain), ln_bias=np.array(ln_bias), ln_eps=np.array(ln_eps),
        res_gain=np.array(res_gain, dtype=np.int64), res_shift=np.array(res_shift, dtype=np.int64),
        gelu_lut=np.array(luts, dtype=np.int64),
        sm_hi=sm_hi, sm_lo=sm_lo, sm_shift=np.array(shifts, dtype=np.int64),
        head_scale=pops[lnf].scale * s_w, head_bias=np.zeros(V),
        scales=scale, index=index,
    )
