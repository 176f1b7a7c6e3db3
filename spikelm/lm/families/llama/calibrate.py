"""What conversion learns from the calibration text of a Llama-family model: the largest |x|
of every quantizer point (:func:`maxabs`), and, for a SynOps budget, an estimate of the
spiking model's cost from the float activations (:func:`cost_estimate`)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from spikelm.errors import ConfigError
from spikelm.lm.families.llama import forward as L
from spikelm.lm.methods.steps import CostEstimate, spike_counts
from spikelm.lm.quantize import MIN_CALIBRATION_TOKENS, check_tokens

#: points with one scale per tensor (the rest: per channel)
PER_TENSOR = ("qr", "kr", "gate", "silu", "gelu")
#: calibration tokens read at most (the float pass is linear in them; the rest is not read)
MAX_CALIBRATION_TOKENS = 16384


def tokens(calibration, cfg) -> np.ndarray:
    """The calibration token ids, checked (at least 8; at most MAX_CALIBRATION_TOKENS are used)."""
    ids = check_tokens(calibration, cfg.vocab_size, "calibration")
    if ids.size < MIN_CALIBRATION_TOKENS:
        raise ConfigError(f"calibration: {ids.size} tokens are too few; give at least {MIN_CALIBRATION_TOKENS}")
    return ids[:MAX_CALIBRATION_TOKENS]


def windows(ids: np.ndarray, prefix: np.ndarray, width: int, limit: int | None = None) -> list:
    """Windows of ``width`` text tokens (the first ``limit``), each led by the prefix."""
    ids = ids[:limit] if limit else ids
    return [np.concatenate([prefix, ids[s : s + width]]).astype(np.int64) for s in range(0, ids.size, width)]


def maxabs(cfg, params: dict, ids: np.ndarray, prefix: np.ndarray, workers: int | None = None) -> dict:
    """Max |x| per channel (per tensor for PER_TENSOR points) over the calibration tokens, in
    context-sized windows that each start with the prefix; the prefix positions are left out.

    The windows' float passes are independent and each runs as alone (every product on one
    thread, so the same floats whatever the machine's load); ``workers`` of them at a time
    (default: :func:`window_workers`), in threads: the products and most array operations
    release the GIL. A maximum does not depend on the order of its terms, so the result is the
    serial one, bit for bit."""
    ws = windows(ids, prefix, cfg.n_positions - len(prefix))

    def window(w) -> dict:
        out: dict[str, np.ndarray] = {}

        def record(name, x):
            a = np.abs(x).reshape(x.shape[0], -1)
            out[name] = a.max(initial=0.0) if name.rsplit(".", 1)[-1] in PER_TENSOR else a.max(0, initial=0.0)

        L.float_forward(cfg, params, w, record, skip=len(prefix), logits=False)
        return out

    n = min(len(ws), window_workers(cfg, params) if workers is None else workers)
    if n > 1:
        with ThreadPoolExecutor(n, thread_name_prefix="spikelm-calibration") as pool:
            parts = list(pool.map(window, ws))
    else:
        parts = [window(w) for w in ws]
    out: dict[str, np.ndarray] = {}
    for part in parts:
        for name, m in part.items():
            out[name] = np.maximum(out.get(name, 0.0), m)
    return out


#: the memory that calibration windows run side by side may add, as a share of the float model
WINDOW_SHARE = 0.25


def window_workers(cfg, params) -> int:
    """How many calibration windows run side by side: ``$SPIKELM_THREADS`` where set, else
    every idle core (:func:`spikelm.lm.threads.idle_cores`), but at most one more window than
    :data:`WINDOW_SHARE` of the float model's bytes holds of a window's largest float64 arrays
    (its [heads, L, L] scores and four [L, ffn] activations). Measured on 2 cores: SmolLM2's
    calibration 18.9 -> 10.5 s (its conversion peak 1.17 -> 1.37 GiB), Qwen2.5-0.5B's 37.8 ->
    21.0 s (3.19 -> 3.55 GiB)."""
    from spikelm.lm.threads import env_threads, idle_cores

    L = cfg.n_positions
    window_bytes = 8 * (cfg.num_attention_heads * L * L + 4 * L * cfg.intermediate_size)
    held = getattr(params, "nbytes", None)  # (Params: as stored; a plain mapping: its arrays)
    held = sum(getattr(a, "nbytes", 0) for a in params.values()) if held is None else held
    fit = 1 + int(WINDOW_SHARE * held // max(window_bytes, 1))
    cap = env_threads()
    return max(1, min(idle_cores() if cap is None else cap, fit))


def dense_macs(cfg, positions) -> float:
    """MACs of the dense model decoding ``positions`` (absolute, the prefix counted) with a KV
    cache, as :func:`spikelm.lm.report.macs_per_layer` counts them."""
    d, f, V = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    H, G, dh = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    n = np.asarray(positions, dtype=np.float64)
    per = d * (H * dh + 2 * G * dh) + H * dh * d + 3 * d * f + f
    total = 0.0
    for i in range(cfg.num_hidden_layers):
        w = cfg.window(i)
        keys = np.minimum(n + 1, w) if 0 < w < cfg.n_positions else n + 1  # a sliding window's keys
        total += float((per + 2 * keys * H * dh).sum())
    return total + float(d * V * n.size)


def cost_estimate(cfg, params, ids, prefix, scale, ranges, fan, steered_ranges, att_codes: int, coding: int,
                  positions: int = 128) -> CostEstimate:
    """SynOps per dense MAC on the first ``positions`` calibration tokens, from the float model:
    the points of ``fan`` (the steered linear inputs) sampled for any steps; queries, keys,
    values, attention probabilities and the gated product's factors counted once in their
    scales (``ranges(name)``: their code range; ``steered_ranges(name, steps)``: a steered
    point's for given steps); attention probabilities are the float softmax's, rounded to
    ``att_codes`` levels."""
    P0 = len(prefix)
    w = np.concatenate([prefix, ids[:positions]]).astype(np.int64)
    H, G, dh = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    n_abs = np.arange(P0, len(w))
    samples, queries, fixed = {}, {}, [0.0]

    def spikes(name, rows):
        lo, hi = ranges(name)
        s = np.asarray(scale[name], dtype=np.float64)
        return spike_counts(np.clip(np.floor(rows / s + 0.5), lo, hi), coding).reshape(rows.shape[0], -1).sum(1)

    def record(name, x):
        kind = name.rsplit(".", 1)[-1]
        rows = x[P0:]
        if name in fan:
            samples[name] = rows.astype(np.float32)
        elif kind == "qr":
            fixed[0] += float((spikes(name, rows) * (n_abs + 1)).sum())
            queries[name.split(".")[0]] = x.reshape(len(w), H, dh)
        elif kind in ("kr", "v"):
            fixed[0] += float(spikes(name, rows).sum()) * (H // G)
            if kind == "kr":
                layer = int(name.split(".")[0][1:])
                fixed[0] += _attention_spikes(cfg, layer, queries.pop(name.split(".")[0]), x.reshape(len(w), G, dh),
                                              P0, att_codes, coding) * dh
        elif kind in ("silu", "gelu", "up"):  # the gated product: one SynOp per spike of either factor
            fixed[0] += float(spikes(name, rows).sum())

    L.float_forward(cfg, params, w, record, logits=False)
    return CostEstimate(samples, fan, fixed[0], dense_macs(cfg, n_abs), coding, steered_ranges)


def _attention_spikes(cfg, layer, q, k, P0, levels, coding) -> float:
    """Spikes of layer ``layer``'s attention probabilities at positions P0.. (the float softmax,
    its window and soft-cap, rounded to ``levels`` codes)."""
    L_, H, dh = q.shape
    G = k.shape[1]
    kk = k[:, np.arange(H) // (H // G)]
    s = L.softcap(np.einsum("nhd,jhd->hnj", q[P0:], kk) / cfg.attn_divisor, cfg.attn_softcap)
    s = np.where(L.attention_mask(L_, cfg.window(layer))[None, P0:, :], s, -np.inf)
    a = np.exp(s - s.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    return float(spike_counts(np.floor(a * levels + 0.5), coding).sum())
