"""A thread skips another thread's spikes of a product factor where :func:`reaches` says they
cannot add into its part of the output (issue 23): every such spike must really add nothing
there, for every edge kind and side, grouped-query heads included."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from spikelm.lm.edges import (MIX, MUL, SCORES, mix_a_part, mix_b_part, mul_a_part, mul_b_part, reaches,
                              scores_a_part, scores_b_part)


@st.composite
def cases(draw):
    kv = draw(st.integers(1, 3))
    group = draw(st.integers(1, 3))
    dh = draw(st.integers(1, 4))
    ctx = draw(st.integers(1, 5))
    kind = draw(st.sampled_from([SCORES, MIX, MUL]))
    side = draw(st.integers(0, 1))
    H = kv * group
    # the factor's and the output's sizes (the output of scores: its heads)
    size = {(SCORES, 0): H * dh, (SCORES, 1): kv * dh, (MIX, 0): H * ctx, (MIX, 1): kv * dh}.get((kind, side), H * dh)
    out = H if kind == SCORES else H * dh
    lo = draw(st.integers(0, size - 1))
    hi = draw(st.integers(lo + 1, size))
    o_lo = draw(st.integers(0, out - 1))
    o_hi = draw(st.integers(o_lo + 1, out))
    return dict(kv=kv, group=group, dh=dh, ctx=ctx, kind=kind, side=side, H=H, lo=lo, hi=hi, o_lo=o_lo, o_hi=o_hi,
                n=draw(st.integers(0, ctx - 1)), seed=draw(st.integers(0, 2**16)))


def run_part(c, lo, hi):
    """The part function of the case's edge on spikes of the factor's neurons lo .. hi - 1 (random
    values, codes and scores); returns its SynOps and whether the output changed."""
    rng = np.random.default_rng(c["seed"])
    H, kv, dh, ctx, n, grp = c["H"], c["kv"], c["dh"], c["ctx"], c["n"], c["group"]
    sizes = {"q": H * dh, "k": kv * dh, "att": H * ctx, "v": kv * dh, "out": H * dh}
    off, total = {}, 0
    for name, m in sizes.items():
        off[name] = total
        total += m
    counts = rng.integers(-5, 6, (ctx, total)).astype(np.int64)
    stepval = rng.integers(-3, 4, total).astype(np.int32)
    acc = rng.integers(-9, 10, total).astype(np.int64)
    S = rng.integers(-9, 10, (1, H, ctx)).astype(np.int64)
    kcache = rng.integers(-5, 6, (1, kv * dh, ctx)).astype(np.int64)
    a_name, b_name = {SCORES: ("q", "k"), MIX: ("att", "v"), MUL: ("q", "out")}[c["kind"]]
    base = off[a_name if c["side"] == 0 else b_name]
    sp = np.arange(base + lo, base + hi, dtype=np.int64)
    stepval[sp] = rng.choice([-2, -1, 1, 2], len(sp))
    before = acc.copy(), S.copy()
    args = (sp, 0, len(sp), base, stepval, n)
    own = (c["o_lo"], c["o_hi"])
    kind, side = c["kind"], c["side"]
    if kind == SCORES and side == 0:
        ops, _ = scores_a_part(*args, S, kcache, 0, off["k"], dh, grp, 0, *own)
    elif kind == SCORES:
        ops, _ = scores_b_part(*args, S, counts[n], 0, off["q"], dh, grp, *own)
    elif kind == MIX and side == 0:
        ops, _ = mix_a_part(*args, acc, counts, off["v"], off["out"], dh, grp, ctx, *own)
    elif kind == MIX:
        ops, _ = mix_b_part(*args, acc, counts[n], off["att"], off["out"], dh, grp, ctx, *own)
    elif side == 0:  # mul: q, out and out as a, b and output (equal sizes)
        ops, _ = mul_a_part(*args[:-1], acc, counts[n], off["out"], off["out"], *own)
    else:
        ops, _ = mul_b_part(*args[:-1], acc, counts[n], off["q"], off["out"], *own)
    return ops, not (np.array_equal(acc, before[0]) and np.array_equal(S, before[1]))


@settings(max_examples=300, deadline=None)
@given(c=cases())
def test_spikes_that_reaches_rules_out_add_nothing_to_the_owned_part(c):
    args = (c["o_lo"], c["o_hi"], c["dh"], c["group"], c["ctx"])
    if not reaches(c["kind"], c["side"], c["lo"], c["hi"], *args):
        assert run_part(c, c["lo"], c["hi"]) == (0, False)
    # and neuron by neuron: a neuron whose spike adds there is one that reaches says may
    for i in range(c["lo"], c["hi"]):
        ops, changed = run_part(c, i, i + 1)
        if ops or changed:
            assert reaches(c["kind"], c["side"], i, i + 1, *args)
