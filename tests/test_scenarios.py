"""The shipped scenarios: they load, both backends agree on them, and they show the
published behaviour (rates for CUBA and Izhikevich 2003, irregular firing for Brunel)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spikelm.io.scenario import load_scenario
from spikelm.simulator import Simulator

SCEN = Path(__file__).resolve().parents[1] / "scenarios"


def run(name, steps=None, duration=None, backend="numba", seed=None):
    sc = load_scenario(SCEN / name)
    net = sc.build(seed)
    sim = Simulator(net, backend=backend)
    sim.run(steps=steps, duration=duration)
    return net, sim


@pytest.mark.parametrize("name,steps", [("cuba.toml", 600), ("izhikevich2003.toml", 150), ("brunel2000.toml", 60)])
def test_numpy_and_numba_agree_on_shipped_scenarios(name, steps):
    _, a = run(name, steps=steps, backend="numpy")
    _, b = run(name, steps=steps, backend="numba")
    total = 0
    for pop in a.spikes.populations:
        sa, sb = a.spikes.get(pop), b.spikes.get(pop)
        for x, y in zip(sa, sb):
            np.testing.assert_array_equal(x, y)
        total += sa[0].size
    assert total > 0, "the comparison must see spikes"
    np.testing.assert_array_equal(a.plan.S, b.plan.S)
    assert a.synops == b.synops


def mean_rate(net, sim, pops, t_from_ms=0.0):
    dur = (sim.t * net.dt - t_from_ms) * 1e-3
    n = sum(net.populations[p].n for p in pops)
    spikes = sum(int((sim.spikes.get(p)[0] * net.dt >= t_from_ms).sum()) for p in pops)
    return spikes / n / dur


def test_cuba_rate_in_the_range_of_brian2_and_nest():
    # Brian2's and NEST's CUBA runs of these parameters give about 5-6 Hz
    net, sim = run("cuba.toml", duration=1000.0)
    rate = mean_rate(net, sim, ["exc", "inh"], 100.0)
    assert 4.5 <= rate <= 6.5, rate


def test_izhikevich_2003_rate():
    # the 2003 paper's network fires at about 7-8 Hz
    net, sim = run("izhikevich2003.toml", duration=1000.0)
    rate = mean_rate(net, sim, ["exc", "inh"], 100.0)
    assert 6.5 <= rate <= 9.0, rate


def cv_isi(steps, ids, n, min_spikes=5):
    order = np.lexsort((steps, ids))
    steps, ids = steps[order], ids[order]
    bounds = np.searchsorted(ids, np.arange(n + 1))
    cvs = []
    for i in range(n):
        s = steps[bounds[i]:bounds[i + 1]]
        if s.size >= min_spikes:
            isi = np.diff(s)
            cvs.append(isi.std() / isi.mean())
    return np.array(cvs)


@pytest.mark.slow
def test_brunel_2000_matches_nest_and_brian2():
    """Brunel 2000 model A at (g, eta) = (5, 2), the stationary-activity point of its Fig. 8.

    NEST 3.10 and Brian2 2.9 (cpp_standalone) run on the same parameters in
    ``benchmarks/peers`` give exc rates of 37.08 and 36.96 Hz and mean CVs of ISIs of 0.409
    and 0.400 (docs/benchmarks.md). spikelm must land in the same place; the mean input
    here is about 21 mV against a 20 mV threshold, so firing is partly mean-driven and the
    CV stays near 0.4 in all three simulators (the issue's 'CV > 0.8' does not hold for
    these parameters in any of them: see docs/benchmarks.md).
    """
    net, sim = run("brunel2000.toml", duration=700.0)
    st, ids, _ = sim.spikes.get("exc")
    late = st * net.dt >= 200.0
    cvs = cv_isi(st[late], ids[late], net.populations["exc"].n)
    assert cvs.size > 5000
    assert 0.33 < cvs.mean() < 0.48, cvs.mean()
    rate = mean_rate(net, sim, ["exc"], 200.0)
    assert 33.0 < rate < 41.0, rate
    # irregular, not clock-like: single neurons' ISIs vary (a regular oscillator has CV ~ 0)
    assert np.median(cvs) > 0.25
