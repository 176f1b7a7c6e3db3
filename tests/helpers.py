"""Shared test helpers: the one agreement helper, network specs and hypothesis strategies.

A *spec* is plain data (dicts, tuples, numbers) that :func:`build` turns into a fresh
:class:`spikelm.network.Network`. Specs print readably when hypothesis reports a failing
example, and building one twice gives two identical networks (one per backend).
"""
from __future__ import annotations

import contextlib
import importlib

import numpy as np
from hypothesis import strategies as st

import spikelm.network as sn
from spikelm.simulator import Simulator, StateMonitor

BACKENDS = ("numpy", "numba")
NEURON_MODELS = ("lif", "izhikevich", "eiif", "signed_if")
SOURCE_MODELS = ("poisson", "spike_times")
ALL_MODELS = NEURON_MODELS + SOURCE_MODELS

#: Float tolerance of the numba backend against the numpy reference, in units of the
#: dtype's eps. Zero: numba mirrors numpy's operation order (no fastmath), so float state
#: agrees bit for bit. A backend that may reorder or fuse (CuPy with FMA) passes its own.
NUMBA_ULPS = 0


# -- the agreement helper ------------------------------------------------------------------

def assert_agree(ref, got, ulps=4, what="array"):
    """Assert ``got`` equals the reference ``ref``.

    Integer and boolean arrays must be identical. Float arrays must have the same shape,
    the same NaN/inf pattern, and agree within ``ulps * eps(dtype) * max(1, |ref|)``
    elementwise (``ulps=0``: bit for bit).
    """
    ref, got = np.asarray(ref), np.asarray(got)
    assert ref.shape == got.shape, f"{what}: shapes differ: {ref.shape} vs {got.shape}"
    if ref.dtype.kind in "biu" and got.dtype.kind in "biu":
        bad = np.flatnonzero((ref != got).ravel())
        assert bad.size == 0, (f"{what}: {bad.size} integer entries differ; first at flat index {bad[0]}: "
                               f"{ref.ravel()[bad[0]]} vs {got.ravel()[bad[0]]}")
        return
    dtype = np.result_type(ref.dtype, got.dtype)
    if dtype.kind not in "fc":
        dtype = np.dtype(np.float64)
    r, g = ref.astype(dtype).ravel(), got.astype(dtype).ravel()
    same_special = (np.isnan(r) == np.isnan(g)) & (np.isinf(r) == np.isinf(g))
    assert same_special.all(), f"{what}: NaN/inf pattern differs at {np.flatnonzero(~same_special)[:5]}"
    fin = np.isfinite(r)
    assert np.array_equal(r[np.isinf(r)], g[np.isinf(g)]), f"{what}: infinities of different sign"
    tol = ulps * np.finfo(dtype).eps * np.maximum(1.0, np.abs(r[fin]))
    err = np.abs(r[fin] - g[fin])
    bad = np.flatnonzero(err > tol)
    assert bad.size == 0, (f"{what}: {bad.size} float entries differ beyond {ulps} ulps; worst "
                           f"|diff| = {err.max():.3g} at finite index {int(np.argmax(err))}")


def snapshot(sim):
    """Everything a run produced that backends must agree on, as plain arrays."""
    snap = {"t": np.array(sim.t), "state": sim.plan.S.copy(),
            "synops": np.array(list(sim.synops.values()), dtype=np.int64),
            "events": np.array(sim.events, dtype=np.int64), "rates": sim.rates.counts()}
    for p in sim.spikes.populations:
        steps, ids, vals = sim.spikes.get(p)
        snap[f"spikes/{p}/steps"], snap[f"spikes/{p}/ids"], snap[f"spikes/{p}/values"] = steps, ids, vals
    for k, m in enumerate(sim.state_monitors):
        for var in m.variables:
            steps, data = m.get(var)
            snap[f"monitor{k}/{var}/steps"], snap[f"monitor{k}/{var}"] = steps, data
    return snap


def assert_snapshots_agree(ref, got, ulps=NUMBA_ULPS):
    """Spikes, counters and event totals exactly; float state within ``ulps``."""
    assert ref.keys() == got.keys(), f"different records: {sorted(ref)} vs {sorted(got)}"
    for key in ref:
        assert_agree(ref[key], got[key], ulps=ulps, what=key)


@contextlib.contextmanager
def generic_numba_loop():
    """Run the numba backend's general time loop (every model and feature compiled in) instead
    of the variant specialised to the network's models and stimuli.

    The variants differ only in branches pruned at compile time, so results are the same,
    but random networks would hit dozens of variants, each a cold compile of seconds.
    Random-network tests use the general loop, learn phase included (with no rules it does
    nothing), so the whole suite compiles two: one for one thread, one for blocks of threads;
    ``test_specialised_loops_agree`` checks the variants themselves.
    """
    nb = importlib.import_module("spikelm.simulator.numba_backend")
    from spikelm.network.models import MODELS
    from spikelm.simulator.compile import Flags, time_loop
    from spikelm.simulator.kernels import BUILT_IN

    original = nb.loop_for
    kinds = tuple(sorted(set(MODELS) - set(BUILT_IN)))

    def general(plan, plastic):
        flags = Flags(learn=True, threaded=nb.n_blocks(plan) > 1)
        return time_loop(kinds, flags), kinds

    nb.loop_for = general
    try:
        yield
    finally:
        nb.loop_for = original


# -- building networks from specs -----------------------------------------------------------

def _value(v):
    kind = v[0]
    if kind == "const":
        return float(v[1])
    if kind == "uniform":
        return sn.Uniform(float(v[1]), float(v[2]))
    if kind == "normal":
        return sn.Normal(float(v[1]), float(v[2]))
    raise ValueError(v)


def _rule(r):
    kind = r[0]
    if kind == "all_to_all":
        return sn.AllToAll(allow_autapses=r[1])
    if kind == "fixed_probability":
        return sn.FixedProbability(r[1], allow_autapses=r[2])
    if kind == "fixed_in_degree":
        return sn.FixedInDegree(r[1])
    if kind == "fixed_out_degree":
        return sn.FixedOutDegree(r[1])
    if kind == "one_to_one":
        return sn.OneToOne()
    if kind == "arrays":
        return sn.FromArrays(tuple(r[1]), tuple(r[2]))
    raise ValueError(r)


def build(spec, seed=None):
    """A fresh Network for ``spec`` (optionally with another seed)."""
    net = sn.Network(spec["dt"], spec["seed"] if seed is None else seed)
    for p in spec["pops"]:
        init = {k: _value(v) for k, v in (p.get("init") or {}).items()}
        net.add_population(p["name"], p["model"], p["n"], params=dict(p.get("params") or {}), init=init)
    for c in spec["conns"]:
        lo, hi = c["delay_steps"]
        # rint(d / dt) of d in [(lo - .49) dt, (hi + .49) dt) is an integer step in [lo, hi]
        delay = sn.Uniform((lo - 0.49) * spec["dt"], (hi + 0.49) * spec["dt"])
        w = c["weight"]
        proj = net.connect(c["pre"], c["post"], _rule(c["rule"]), weight=1.0 if w[0] == "ints" else _value(w),
                           delay=delay, target=c["target"], name=c["name"])
        if w[0] == "ints":  # integer weights, drawn per synapse (the converted-LM path)
            proj.w[:] = np.random.default_rng(w[3]).integers(w[1], w[2] + 1, size=proj.n_syn)
    for s in spec["stims"]:
        kind, pop = s[0], s[1]
        if kind == "const":
            net.add_stimulus(sn.ConstantCurrent(pop, s[2]))
        elif kind == "steps":
            net.add_stimulus(sn.CurrentSteps(pop, tuple(s[2]), tuple(s[3])))
        elif kind == "noise":
            net.add_stimulus(sn.NoiseCurrent(pop, s[2], s[3]))
        elif kind == "poisson":
            net.add_stimulus(sn.PoissonInput(pop, s[2], s[3], s[4]))
    return net


def simulate(spec, backend, steps=None, until_quiescent=False, max_steps=None, chunks=None, monitor=True,
             specialise=False, **sim_kwargs):
    """Build ``spec``, run it on ``backend`` and return the Simulator.

    ``chunks``: run as several ``sim.run`` calls of these lengths instead of one.
    ``monitor``: sample every state variable of the first neuron population every 3 steps.
    ``specialise``: let numba use its loop specialised to this network (else the general one).
    """
    net = build(spec)
    state = []
    if monitor:
        for p in net.populations.values():
            if not p.model.is_source:
                state = [StateMonitor(p.name, p.model.state_vars, every=3)]
                break
    sim = Simulator(net, backend=backend, state=state, **sim_kwargs)
    with contextlib.nullcontext() if specialise else generic_numba_loop():
        if until_quiescent:
            sim.run(until_quiescent=True, max_steps=max_steps)
        else:
            for n in (chunks or [steps]):
                sim.run(n)
    return sim


# -- hypothesis strategies ------------------------------------------------------------------

def fl(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


def zero_or(strategy):
    return st.one_of(st.just(0.0), strategy)


@st.composite
def model_params(draw, model, n, dt, steps):
    """(params, init) for one population of ``model``, over a wide, firing-prone range."""
    if model == "lif":
        v_th = draw(fl(-55.0, -45.0))
        v_reset = v_th - draw(fl(3.0, 15.0))
        params = dict(tau_m=draw(fl(5.0, 30.0)), v_th=v_th, v_reset=v_reset, e_l=v_th + draw(fl(-3.0, 8.0)),
                      t_ref=draw(zero_or(fl(0.0, 5.0))), tau_e=draw(zero_or(fl(1.0, 10.0))),
                      tau_i=draw(zero_or(fl(1.0, 10.0))), r_m=draw(fl(0.5, 2.0)),
                      alpha=draw(zero_or(fl(0.5, 5.0))), tau_a=draw(fl(10.0, 200.0)))
        return params, {"v": ("uniform", v_reset, v_th)}
    if model == "izhikevich":
        params = dict(a=draw(fl(0.01, 0.1)), b=draw(fl(0.15, 0.25)), c=draw(fl(-70.0, -50.0)),
                      d=draw(fl(2.0, 8.0)), tau_e=draw(zero_or(fl(1.0, 10.0))), tau_i=draw(zero_or(fl(1.0, 10.0))))
        return params, {"v": ("uniform", -70.0, -50.0)}
    if model == "eiif":
        params = dict(theta_base=draw(fl(0.1, 2.0)), alpha=draw(zero_or(fl(0.0, 0.05))), r=draw(fl(0.0, 1.0)),
                      t0=draw(st.sampled_from([0, 1])))
        return params, {"v": ("uniform", -1.0, 1.0)}
    if model == "signed_if":
        return dict(q_min=draw(st.integers(-20, 0)), q_max=draw(st.integers(0, 20))), {}
    if model == "poisson":
        return dict(rate=draw(fl(0.0, 150.0))), {}
    if model == "spike_times":
        # distinct steps (two times in one step are refused), placed off the grid by < dt / 2
        times = tuple(tuple(max(0.0, k * dt + draw(fl(-0.45, 0.45)) * dt)
                            for k in draw(st.lists(st.integers(0, steps), unique=True, max_size=6)))
                      for _ in range(n))
        return dict(times=times), {}
    raise ValueError(model)


def weight_for(draw, pre_model, post_model):
    """Weights in the post model's units; integer weights into SignedIF (exact path)."""
    if post_model == "signed_if":
        return ("ints", draw(st.integers(-3, 0)), draw(st.integers(0, 3)), draw(st.integers(0, 2**16)))
    lo, hi = {"lif": (-3.0, 6.0), "izhikevich": (-5.0, 15.0), "eiif": (-1.5, 1.5)}[post_model]
    kind = draw(st.sampled_from(["const", "uniform", "normal"]))
    a, b = draw(fl(lo, hi)), draw(fl(lo, hi))
    if kind == "const":
        return ("const", a)
    if kind == "uniform":
        return ("uniform", min(a, b), max(a, b))
    return ("normal", a, abs(b) / 2)


@st.composite
def rule_for(draw, n_pre, n_post, same):
    kinds = ["all_to_all", "fixed_probability", "fixed_in_degree", "fixed_out_degree", "arrays"]
    if n_pre == n_post:
        kinds.append("one_to_one")
    kind = draw(st.sampled_from(kinds))
    if kind == "all_to_all":
        return (kind, draw(st.booleans()) or not same)
    if kind == "fixed_probability":
        return (kind, draw(fl(0.0, 1.0)), draw(st.booleans()))
    if kind == "fixed_in_degree":
        return (kind, draw(st.integers(0, n_pre)))
    if kind == "fixed_out_degree":
        return (kind, draw(st.integers(0, n_post)))
    if kind == "one_to_one":
        return (kind,)
    m = draw(st.integers(0, 2 * max(n_pre, n_post)))
    pre = draw(st.lists(st.integers(0, n_pre - 1), min_size=m, max_size=m))
    post = draw(st.lists(st.integers(0, n_post - 1), min_size=m, max_size=m))
    return (kind, tuple(pre), tuple(post))


@st.composite
def stimulus_for(draw, pop, model, dt, steps):
    kind = draw(st.sampled_from(["const", "steps", "noise", "poisson"]))
    integer = model == "signed_if"  # keep SignedIF inputs integer (bit-exact path)
    scale = {"lif": 30.0, "izhikevich": 15.0, "eiif": 1.0, "signed_if": 2.0}[model]
    amp = (lambda: float(draw(st.integers(-2, 2)))) if integer else (lambda: draw(fl(-0.3 * scale, scale)))
    if kind == "const":
        return ("const", pop, amp())
    if kind == "steps":
        k = draw(st.integers(1, 3))
        times = sorted(draw(st.lists(fl(0.0, steps * dt), min_size=k, max_size=k)))
        return ("steps", pop, times, [amp() for _ in range(k)])
    if kind == "noise" and not integer:
        return ("noise", pop, draw(fl(0.0, scale / 2)), draw(fl(-0.2 * scale, 0.5 * scale)))
    w = float(draw(st.integers(-2, 2))) if integer else draw(fl(-0.2 * scale, 0.3 * scale))
    return ("poisson", pop, draw(fl(0.0, 3000.0 * 0.1 / dt)), w, draw(st.sampled_from(["exc", "inh"])))


@st.composite
def network_specs(draw, require=None, max_pops=3, max_n=12, steps=300):
    """A random network: 1-3 populations of random models, random rules, weights, per-synapse
    delays of 1..10 steps, random stimuli. ``require``: a model that must be among them."""
    dt = draw(st.sampled_from([0.1, 0.5, 1.0]))
    n_pops = draw(st.integers(1, max_pops))
    models = [draw(st.sampled_from(ALL_MODELS)) for _ in range(n_pops)]
    if require is not None and require not in models:
        models[draw(st.integers(0, n_pops - 1))] = require
    pops = []
    for i, m in enumerate(models):
        n = draw(st.integers(1, max_n))
        params, init = draw(model_params(m, n, dt, steps))
        pops.append({"name": f"p{i}", "model": m, "n": n, "params": params, "init": init})
    conns = []
    for i, pre in enumerate(pops):
        for j, post in enumerate(pops):
            if post["model"] in SOURCE_MODELS or not draw(st.booleans()):
                continue
            lo = draw(st.integers(1, 10))
            conns.append({"name": f"c{i}{j}", "pre": pre["name"], "post": post["name"],
                          "rule": draw(rule_for(pre["n"], post["n"], i == j)),
                          "weight": weight_for(draw, pre["model"], post["model"]),
                          "delay_steps": (lo, draw(st.integers(lo, 10))),
                          "target": draw(st.sampled_from(["exc", "inh"]))})
    stims = []
    for p in pops:
        if p["model"] in SOURCE_MODELS:
            continue
        for _ in range(draw(st.integers(0, 2))):
            stims.append(draw(stimulus_for(p["name"], p["model"], dt, steps)))
    return {"dt": dt, "seed": draw(st.integers(0, 2**31 - 1)), "pops": pops, "conns": conns, "stims": stims}


@st.composite
def signed_if_specs(draw, max_layers=3, max_n=8):
    """A feed-forward SignedIF network with integer weights driven by one-off spike sources:
    it always reaches quiescence. Layer ``L0`` is a spike_times source, ``L1..`` SignedIF."""
    n_layers = draw(st.integers(1, max_layers))
    sizes = [draw(st.integers(1, max_n)) for _ in range(n_layers + 1)]
    dt = 1.0
    times = tuple(tuple(float(k) for k in draw(st.lists(st.integers(0, 5), unique=True, max_size=3)))
                  for _ in range(sizes[0]))
    pops = [{"name": "L0", "model": "spike_times", "n": sizes[0], "params": {"times": times}, "init": {}}]
    for k in range(1, n_layers + 1):
        pops.append({"name": f"L{k}", "model": "signed_if", "n": sizes[k],
                     "params": {"q_min": draw(st.integers(-15, 0)), "q_max": draw(st.integers(0, 15))}, "init": {}})
    conns = []
    for k in range(n_layers):
        lo = draw(st.integers(1, 10))
        conns.append({"name": f"w{k}", "pre": f"L{k}", "post": f"L{k + 1}",
                      "rule": draw(rule_for(sizes[k], sizes[k + 1], False)),
                      "weight": ("ints", draw(st.integers(-4, 0)), draw(st.integers(0, 4)), draw(st.integers(0, 2**16))),
                      "delay_steps": (lo, draw(st.integers(lo, 10))), "target": draw(st.sampled_from(["exc", "inh"]))})
    return {"dt": dt, "seed": draw(st.integers(0, 2**31 - 1)), "pops": pops, "conns": conns, "stims": []}


def plot_axes(draw):
    """The axes a plot function made: ``draw()`` runs with matplotlib's Figure.subplots spied on."""
    import matplotlib.figure

    seen = {}
    real = matplotlib.figure.Figure.subplots

    def spy(fig, *a, **k):
        seen["axes"] = real(fig, *a, **k)
        return seen["axes"]

    matplotlib.figure.Figure.subplots = spy
    try:
        draw()
    finally:
        matplotlib.figure.Figure.subplots = real
    return seen["axes"]
