"""Learning that helps: a converted LM reads an out-of-domain text while its readout learns
(``readout_error``), and is scored on the text's second half and on held-out English.

    python -m benchmarks.lm_plasticity --adapt GPL-3                    # the demo model
    python -m benchmarks.lm_plasticity --model smollm2 --adapt /usr/share/common-licenses/GPL-3

(``--adapt`` takes a file, or ``GPL-3`` for /usr/share/common-licenses/GPL-3.) The text is read
in windows of ``--window`` tokens (positions start over at each window; the learned state goes
on), teacher-forced. For each rate: learning on over the first half; then, learning off, the
second half and the built-in held-out English (:func:`spikelm.lm.texts.heldout_text`) against
the frozen model; and the second half read with learning still on ("online"). Learning runs on
the dense reference's codes (:mod:`spikelm.lm.learn.replay`): with only the readout learning,
that is exactly what the spiking run computes (tested bit for bit against both backends), and
``--check N`` runs the first N tokens spike by spike on the numba backend and compares.

Columns: rule settings; perplexity of the second half after learning on the first (and its
change against the frozen model: the target is <= -5 %), the same read online, the held-out
English after learning (target: <= +0.5 %), master-weight updates (learn-ops) and integer
weights changed per token, and the rule's time per token (its kernel plus the readout
accumulation it needs, on this machine).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

#: (eta, eta_bias, threshold, decay) swept by default
SWEEP = [(0.0, 0.0, 1e-3, 0.0), (0.05, 0.0, 1e-3, 0.0), (0.1, 0.0, 1e-3, 0.0), (0.2, 0.0, 1e-3, 0.0),
         (0.0, 0.05, 1e-3, 0.0), (0.1, 0.05, 1e-3, 0.0), (0.1, 0.0, 1e-3, 1e-3), (0.1, 0.0, 0.0, 0.0)]


def rule(eta, eta_bias, threshold, decay) -> dict:
    return {"projections": {"*": {"plasticity": {"rule": "readout_error", "eta": eta, "eta_bias": eta_bias,
                                                 "threshold": threshold, "decay": decay}}}}


def adapt_text(arg: str) -> str:
    from spikelm.errors import ConfigError

    path = Path("/usr/share/common-licenses/GPL-3" if arg == "GPL-3" else arg)
    if not path.is_file():
        raise ConfigError(f"--adapt {arg}: no such file")
    return path.read_text(encoding="utf-8", errors="replace")


def windows(ids, size):
    return [ids[s: s + size] for s in range(0, len(ids), size) if len(ids[s: s + size]) >= 2]


def experiment(snn, tok, text, tokens, window, sweep, check=0):
    from spikelm.lm import texts
    from spikelm.lm.learn import kernels as K
    from spikelm.lm.learn.attach import attach
    from spikelm.lm.learn.replay import readout_codes, replay
    from spikelm.lm.learn.state import LearnState
    from spikelm.lm.models import encode_loose

    ids = encode_loose(tok, text)[:tokens]
    half = len(ids) // 2
    first, second = windows(ids[:half], window), windows(ids[half:], window)
    eng = windows(encode_loose(tok, texts.heldout_text())[:tokens // 2], window)
    t0 = time.perf_counter()
    base = LearnState(attach(snn.graph, _plasticity(rule(0.0, 0.0, 1.0, 0.0))))
    codes = {k: readout_codes(base.graph, w) for k, w in (("first", first), ("second", second), ("eng", eng))}
    t_codes = time.perf_counter() - t0
    print(f"  codes of {len(ids)} + {sum(len(w) for w in eng)} tokens: {t_codes:.0f} s", file=sys.stderr, flush=True)
    ppl = lambda nll: float(np.exp(nll.mean()))
    frozen = {k: ppl(replay(base, w, codes[k])) for k, w in (("second", second), ("eng", eng))}
    rows = []
    for eta, eb, thr, lam in sweep:
        st = LearnState(attach(snn.graph, _plasticity(rule(eta, eb, thr, lam))))
        n1 = sum(len(w) - 1 for w in first)
        t1 = time.perf_counter()
        replay(st, first, codes["first"])
        dt = (time.perf_counter() - t1) / max(n1, 1)
        ops, flips = int(st.a["lcnt"][0]), int(st.a["lcnt"][1])
        saved = {k: st.a[k].copy() for k in ("rwm", "rb")}
        W = st.W.copy()
        st.a["ro_i"][K.R_ON] = 0
        after = {k: ppl(replay(st, w, codes[k])) for k, w in (("second", second), ("eng", eng))}
        st.a["ro_i"][K.R_ON] = 1
        online = ppl(replay(st, second, codes["second"]))
        for k, v in saved.items():
            st.a[k][...] = v
        st.W[...] = W
        rows.append(dict(eta=eta, eta_bias=eb, threshold=thr, decay=lam, second=after["second"],
                         second_pct=100 * (after["second"] / frozen["second"] - 1), online=online,
                         online_pct=100 * (online / frozen["second"] - 1), eng=after["eng"],
                         eng_pct=100 * (after["eng"] / frozen["eng"] - 1), ops=ops / max(n1, 1),
                         flips=flips / max(n1, 1), ms=1e3 * dt))
        print(f"  eta {eta:g}, eta_bias {eb:g}, threshold {thr:g}, decay {lam:g}: 2nd half {rows[-1]['second_pct']:+.2f} %, "
              f"online {rows[-1]['online_pct']:+.2f} %, English {rows[-1]['eng_pct']:+.2f} %", file=sys.stderr, flush=True)
    info = dict(tokens=len(ids), adapt=sum(len(w) for w in first), window=window, frozen=frozen,
                codes_s=t_codes, eng_tokens=sum(len(w) for w in eng))
    if check:
        info["check"] = spiking_check(snn, ids[:check], sweep[-1])
    return info, rows


def spiking_check(snn, ids, setting):
    """The first tokens spike by spike (numba) with learning on, against the replay: max |dlogit|."""
    from spikelm.lm.learn import Learning
    from spikelm.lm.learn.attach import attach
    from spikelm.lm.learn.replay import readout_codes, replay
    from spikelm.lm.learn.state import LearnState

    pl = _plasticity(rule(*setting))
    run = Learning(snn, pl, backend="numba")
    t0 = time.perf_counter()
    sim = run.feed(ids, drift=False)
    t_spk = (time.perf_counter() - t0) / len(ids)
    st = LearnState(attach(snn.graph, pl))
    nll = replay(st, [ids], readout_codes(st.graph, [ids]))
    L = sim.logits
    m = L.max(axis=1)
    nll_spk = m[:-1] + np.log(np.exp(L[:-1] - m[:-1, None]).sum(axis=1)) - L[np.arange(len(ids) - 1), ids[1:]]
    return dict(tokens=len(ids), max_dnll=float(np.abs(nll - nll_spk).max()), s_per_token=t_spk,
                same_weights=bool(np.array_equal(st.W, run.state.W)))


def _plasticity(d):
    from spikelm.lm.learn.config import Plasticity

    return Plasticity.from_dict(d, "readout_error")


def table(info, rows) -> str:
    fz = info["frozen"]
    out = [f"{info['tokens']} tokens of the adapted text (learning on the first {info['adapt']}), windows of "
           f"{info['window']}; held-out English {info['eng_tokens']} tokens. Frozen model: second half "
           f"{fz['second']:.3f}, English {fz['eng']:.3f}. Codes (dense reference, once): {info['codes_s']:.0f} s.",
           "",
           "| eta | eta_bias | threshold | decay | 2nd half after learning | vs frozen | 2nd half online | vs frozen "
           "| English after | vs frozen | learn-ops/token | weights changed/token | ms/token |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['eta']:g} | {r['eta_bias']:g} | {r['threshold']:g} | {r['decay']:g} | {r['second']:.3f} | "
                   f"{r['second_pct']:+.2f} % | {r['online']:.3f} | {r['online_pct']:+.2f} % | {r['eng']:.3f} | "
                   f"{r['eng_pct']:+.2f} % | {r['ops']:,.0f} | {r['flips']:,.1f} | {r['ms']:.2f} |")
    if "check" in info:
        c = info["check"]
        out += ["", f"Spike by spike (numba), first {c['tokens']} tokens at the last setting: max |d(-log p)| against "
                    f"the replay {c['max_dnll']:g}, same learned weights: {c['same_weights']}, "
                    f"{c['s_per_token']:.3f} s per token."]
    return "\n".join(out)


#: (eta_w, surprise) of the gated BrainGPT STDP swept by ``--inside``
INSIDE = [(1e-4, 0.0), (1e-4, 2.0), (1e-3, 2.0), (1e-3, 4.0)]


def inside_rule(eta_w, surprise, where="h*.fc2") -> dict:
    return {"projections": {where: {"plasticity": {"rule": "gated_braingpt_stdp", "eta_w": eta_w, "surprise": surprise,
                                                   "a_plus": 1.0, "a_minus": 1.0, "tau_plus": 20.0,
                                                   "tau_minus": 20.0}}}}


def inside_experiment(snn, tok, text, tokens, window, sweep):
    """The gated BrainGPT rule (it changes the codes: spike by spike on numba, no replay):
    learning on the first half, then frozen on the second half and the English; online on
    the second half."""
    from spikelm.lm import texts
    from spikelm.lm.learn import Learning
    from spikelm.lm.models import encode_loose

    ids = encode_loose(tok, text)[:tokens]
    half = len(ids) // 2
    first, second = windows(ids[:half], window), windows(ids[half:], window)
    eng = windows(encode_loose(tok, texts.heldout_text())[:tokens // 2], window)

    def read(run, ws):
        out = []
        for w in ws:
            run.new_sequence()
            L = run.feed(w, drift=False).logits
            m = L.max(axis=1)
            out.append(m[:-1] + np.log(np.exp(L[:-1] - m[:-1, None]).sum(axis=1)) - L[np.arange(len(w) - 1), w[1:]])
        return float(np.exp(np.concatenate(out).mean()))

    exact = Learning(snn, None, "numba")
    frozen = {"second": read(exact, second), "eng": read(exact, eng)}
    rows = []
    for eta, s in sweep:
        pl = _plasticity_inside(inside_rule(eta, s))
        run = Learning(snn, pl, "numba")
        t0 = time.perf_counter()
        read(run, first)
        n1 = sum(len(w) for w in first)
        dt = (time.perf_counter() - t0) / n1
        ops = int(run.state.a["lcnt"][0]) / n1
        saved = run.state.state_dict()
        run.set_enabled(False)
        after = {"second": read(run, second), "eng": read(run, eng)}
        run.state.load_state_dict(saved)
        run.set_enabled(True)
        online = read(run, second)
        rows.append(dict(eta=eta, surprise=s, second=after["second"],
                         second_pct=100 * (after["second"] / frozen["second"] - 1), online=online,
                         online_pct=100 * (online / frozen["second"] - 1), eng=after["eng"],
                         eng_pct=100 * (after["eng"] / frozen["eng"] - 1), ops=ops, ms=1e3 * dt))
        print(f"  eta_w {eta:g}, surprise {s:g}: 2nd half {rows[-1]['second_pct']:+.2f} %, online "
              f"{rows[-1]['online_pct']:+.2f} %, English {rows[-1]['eng_pct']:+.2f} %", file=sys.stderr, flush=True)
    return dict(tokens=len(ids), adapt=half, window=window, frozen=frozen), rows


def _plasticity_inside(d):
    from spikelm.lm.learn.config import Plasticity

    return Plasticity.from_dict(d, "gated_braingpt_stdp")


def inside_table(info, rows) -> str:
    fz = info["frozen"]
    out = [f"{info['tokens']} tokens spike by spike (learning on the first {info['adapt']}), windows of "
           f"{info['window']}; exact model: second half {fz['second']:.3f}, English {fz['eng']:.3f}.", "",
           "| eta_w | surprise (nats) | 2nd half after learning | vs exact | 2nd half online | vs exact | English after "
           "| vs exact | learn-ops/token | ms/token |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['eta']:g} | {r['surprise']:g} | {r['second']:.3f} | {r['second_pct']:+.2f} % | "
                   f"{r['online']:.3f} | {r['online_pct']:+.2f} % | {r['eng']:.3f} | {r['eng_pct']:+.2f} % | "
                   f"{r['ops']:,.0f} | {r['ms']:.1f} |")
    return "\n".join(out)
