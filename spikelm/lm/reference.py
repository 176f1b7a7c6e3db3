"""The dense reference executor (the QANN): codes computed population by population."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikelm.lm import ops
from spikelm.lm.graph import (
    EMBED,
    GELU,
    LAYERNORM,
    PRODUCT,
    READOUT,
    RESIDUAL,
    SOFTMAX,
    SYNAPTIC,
    QuantizedGPT,
)


@dataclass
class Reference:
    """Result of the dense reference on one sequence.

    logits: float64 [L, vocab]; codes: population name -> int64 [L, neurons per position];
    head_acc: the LM head's integer accumulators [L, vocab].
    """

    logits: np.ndarray
    codes: dict
    head_acc: np.ndarray


def imatmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer matrix product. Through float64 BLAS when every partial sum is below
    2^53 (then each product and sum is exact, in any order); NumPy int64 otherwise."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    bound = float(np.abs(a).max(initial=0)) * float(np.abs(b).max(initial=0)) * a.shape[-1]
    if bound >= 2.0**53:
        return a @ b
    from spikelm.lm.quantize import _mm

    return _mm(a.astype(np.float64), b.astype(np.float64)).astype(np.int64)


def run_reference(qm: QuantizedGPT, ids: np.ndarray) -> Reference:
    cfg = qm.config
    L, H, dh, ctx = len(ids), cfg.n_head, cfg.head_dim, cfg.n_positions
    codes: dict[str, np.ndarray] = {}
    by_post = {pr.post: pr for pr in qm.projections}
    causal = np.tril(np.ones((L, L), dtype=bool))
    head_acc = None
    for idx, p in enumerate(qm.pops):
        ins = [codes[qm.pops[i].name] for i in p.inputs]
        if p.feed == EMBED:
            c = ops.embed(qm.wte[ids], qm.wpe[:L], qm.emb_scale, p.qmin, p.qmax)
        elif p.feed == LAYERNORM:
            a = p.arg
            c = ops.layernorm(ins[0], qm.ln_gain[a], qm.ln_bias[a], qm.ln_eps[a], p.qmin, p.qmax)
        elif p.feed == RESIDUAL:
            a = p.arg
            c = ops.residual(ins[0], ins[1], qm.res_gain[a], int(qm.res_shift[a]), p.qmin, p.qmax)
        elif p.feed == GELU:
            c = ops.gelu(ins[0], qm.gelu_lut[p.arg], qm.pops[p.inputs[0]].qmin)
        elif p.feed == SYNAPTIC or p.feed == READOUT:
            pr = by_post[idx]
            a = imatmul(ins[0], pr.weights)
            if p.feed == READOUT:
                head_acc = a
                continue
            c = ops.requantize(a, p.gain, p.offset, p.shift, p.qmin, p.qmax)
        elif p.feed == SOFTMAX:
            q = ins[0].reshape(L, H, dh).transpose(1, 0, 2)
            k = ins[1].reshape(L, H, dh).transpose(1, 0, 2)
            S = imatmul(q, k.transpose(0, 2, 1))  # [H, L, L] exact
            a = ops.softmax(S, causal[None], qm.sm_hi[p.arg], qm.sm_lo[p.arg], int(qm.sm_shift[p.arg]), p.qmax)
            c = np.zeros((L, H, ctx), dtype=np.int64)
            c[:, :, :L] = a.transpose(1, 0, 2)
            c = c.reshape(L, H * ctx)
        elif p.feed == PRODUCT:
            A = ins[0].reshape(L, H, ctx)[:, :, :L].transpose(1, 0, 2)  # [H, L, L]
            Vv = ins[1].reshape(L, H, dh).transpose(1, 0, 2)  # [H, L, dh]
            o = imatmul(A, Vv).transpose(1, 0, 2).reshape(L, H * dh)
            c = ops.requantize(o, p.gain, p.offset, p.shift, p.qmin, p.qmax)
        else:  # pragma: no cover
            raise AssertionError(p.feed)
        codes[p.name] = np.asarray(c, dtype=np.int64)
    return Reference(ops.logits(head_acc, qm.head_scale, qm.head_bias), codes, head_acc)
