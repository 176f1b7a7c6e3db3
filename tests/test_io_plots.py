"""Plots of spike files: PNGs are written, sized as asked and not blank."""

import matplotlib.image as mpimg
import numpy as np
import pytest

from helpers import plot_axes
from spikelm.errors import ConfigError
from spikelm.io.plots import plot_raster, plot_weights
from spikelm.io.sonata import SpikeWriter, read_spikes


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("plots") / "run.h5"
    rng = np.random.default_rng(0)
    with SpikeWriter(path, {"exc": 80, "inh": 20}, 0.5, signed={"inh": True}) as w:
        for step in range(400):
            ids = np.flatnonzero(rng.random(80) < 0.02)
            w.append("exc", np.full(ids.size, step), ids)
            ids = np.flatnonzero(rng.random(20) < 0.05)
            w.append("inh", np.full(ids.size, step), ids, rng.choice([-1, 1], ids.size))
            if step % 40 == 0:
                f = step / 400
                bimodal = np.where(rng.random(500) < 0.5, 0.1, 0.9) + rng.normal(0, 0.03, 500)
                w.add_weights("exc->exc", step, (1 - f) * rng.normal(0.5, 0.1, 500) + f * bimodal)
        w.finish({"steps": 400})
    return path


def _image(path):
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    return img[..., :3]


def _colour_fraction(img, rgb, tol=0.08):
    return np.mean(np.all(np.abs(img - np.array(rgb)) < tol, axis=-1))


def test_raster_png(run_file, tmp_path):
    out = tmp_path / "raster.png"
    assert plot_raster(run_file, out) == str(out)
    img = _image(out)
    assert img.shape[:2] == (715, 1100)                        # 10 x 6.5 in at 110 dpi
    assert out.stat().st_size > 20_000
    assert np.mean(img < 0.9) > 0.02                           # far from blank
    assert _colour_fraction(img, (0x1f / 255, 0x77 / 255, 0xb4 / 255)) > 1e-3   # exc colour
    assert _colour_fraction(img, (0xd6 / 255, 0x27 / 255, 0x28 / 255)) > 1e-4   # inh +1


def test_raster_subsamples_and_windows(run_file, tmp_path):
    full, small = tmp_path / "full.png", tmp_path / "small.png"
    plot_raster(run_file, full)
    plot_raster(read_spikes(run_file), small, max_points=50, t_range=(10.0, 60.0))
    blue = (0x1f / 255, 0x77 / 255, 0xb4 / 255)
    assert _colour_fraction(_image(small), blue) < _colour_fraction(_image(full), blue)


def test_raster_rejects_bad_arguments(run_file, tmp_path):
    with pytest.raises(ConfigError, match="t_range"):
        plot_raster(run_file, tmp_path / "x.png", t_range=(5.0, 1.0))
    with pytest.raises(ConfigError, match="max_points"):
        plot_raster(run_file, tmp_path / "x.png", max_points=0)


def test_weights_png(run_file, tmp_path):
    out = tmp_path / "weights.png"
    assert plot_weights(run_file, "exc->exc", out) == str(out)
    img = _image(out)
    assert img.shape[:2] == (550, 1210)                        # 11 x 5 in at 110 dpi
    assert out.stat().st_size > 20_000
    assert np.mean(img < 0.5) > 0.1                            # the heatmap is mostly dark


def test_raster_of_many_populations_is_compact(tmp_path):
    """A converted LM has dozens of populations: the plot labels a subset, one rate line."""
    from spikelm.io import plots

    rng = np.random.default_rng(3)
    pops = {f"layer{i:02d}": 20 for i in range(40)}
    path = tmp_path / "many.h5"
    with SpikeWriter(path, pops, 1.0, signed=True) as w:
        for name in pops:
            steps = np.sort(rng.integers(0, 500, 60))
            w.append(name, steps, rng.integers(0, 20, 60), rng.choice([-1, 1], 60).astype(np.int8))
        w.finish()
    raster, rate = plot_axes(lambda: plots.plot_raster(path, tmp_path / "many.png"))
    labels = [t.get_text() for t in raster.get_yticklabels()]
    assert 1 < len(labels) <= plots.MANY
    from matplotlib.patches import StepPatch

    assert len([p for p in rate.patches if isinstance(p, StepPatch)]) == 1   # one rate curve
    assert (tmp_path / "many.png").stat().st_size > 10_000


def test_rate_panel_draws_the_last_bin(tmp_path):
    """Spikes only in the last bin: the rate curve must reach the end of the run there."""
    path = tmp_path / "late.h5"
    with SpikeWriter(path, {"exc": 10}, 1.0) as w:
        w.append("exc", np.full(10, 99), np.arange(10))
        w.finish({"steps": 100})
    from matplotlib.patches import StepPatch

    raster, rate = plot_axes(lambda: plot_raster(path, tmp_path / "late.png"))
    (curve,) = [p for p in rate.patches if isinstance(p, StepPatch)]
    values, edges, _ = curve.get_data()
    assert edges[-1] == pytest.approx(100.0) and values[-1] > 0 and np.all(values[:-1] == 0)
    assert values[-1] == pytest.approx(1000.0)     # 10 spikes / 10 neurons / 1 ms bin = 1000 Hz


def test_large_raster_draws_every_kth_neuron_and_says_so(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "big.h5"
    n = {"exc": 4000, "inh": 1000}
    with SpikeWriter(path, n, 1.0) as w:
        for step in range(50):
            for name, size in n.items():
                ids = np.flatnonzero(rng.random(size) < 0.05)
                w.append(name, np.full(ids.size, step), ids)
        w.finish({"steps": 50})
    spikes = read_spikes(path)
    raster, rate = plot_axes(lambda: plot_raster(path, tmp_path / "big.png", max_neurons=500))
    assert "1 in 10 neurons" in raster.get_title()
    exc_points = np.concatenate([ln.get_ydata() for ln in raster.get_lines() if ln.get_color() == "#1f77b4"])
    assert exc_points.size and np.all(np.asarray(exc_points) % 10 == 0)    # whole trains of neurons 0, 10, ...
    assert exc_points.size == np.sum(spikes["exc"].node_ids % 10 == 0)
    from matplotlib.patches import StepPatch

    curves = [p for p in rate.patches if isinstance(p, StepPatch)]
    drawn = sum(p.get_data()[0].sum() * n[name] for p, name in zip(curves, reversed(list(n))))
    bin_ms = curves[0].get_data()[1][1] - curves[0].get_data()[1][0]
    assert drawn * bin_ms / 1000.0 == pytest.approx(sum(len(t) for t in spikes.values()))   # rates use all


def _index_axis(raster):
    (right,) = [a for a in raster.figure.axes if a.get_ylabel() == "neuron index"]
    return [(t.get_text(), p) for t, p in zip(right.get_yticklabels(), right.get_yticks())]


def test_raster_labels_neuron_indices(run_file, tmp_path):
    """Issue 27: the y axis named populations only. A right-hand axis now gives each row's index
    in its population: inh (20 neurons) at rows 0..19 from the bottom, exc (80) above it."""
    raster, _ = plot_axes(lambda: plot_raster(run_file, tmp_path / "r.png"))
    ticks = _index_axis(raster)
    assert ticks[-1] == ("79", 20 + 79)             # the top neuron of the top population
    assert ("0", 0) in ticks and ("0", 20) in ticks  # each population's neuron 0: bottom of its band
    for label, row in ticks:                        # every label is the row's index in its population
        assert int(label) == (row - 20 if row >= 20 else row)
    assert raster.get_ylim() == (-0.5, 99.5)
    exc_rows = np.concatenate([ln.get_ydata() for ln in raster.get_lines() if ln.get_color() == "#1f77b4"])
    assert np.array_equal(np.sort(exc_rows - 20), np.sort(read_spikes(run_file)["exc"].node_ids.astype(float)))


def test_raster_of_a_simulator_in_memory(tmp_path):
    import spikelm.network as sn
    from spikelm.simulator import Simulator

    net = sn.Network(dt=0.5, seed=0)
    net.add_population("n", "lif", 30, params={"e_l": -45.0, "t_ref": 0.0})
    sim = Simulator(net, backend="numpy")
    result = sim.run(200)
    raster, _ = plot_axes(lambda: plot_raster(sim, tmp_path / "mem.png"))
    assert raster.get_title().startswith(f"simulation: {result.spikes['n']:,} spikes")
    assert raster.get_xlim()[1] == pytest.approx(100.0)
    for bad, says in ((result, "RunResult holds counts"), (42, "got int"), ({"n": [1, 2]}, "got dict"),
                      (sim.spikes, "got SpikeMonitor")):
        with pytest.raises(ConfigError, match=says):
            plot_raster(bad, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
    streaming = Simulator(net, backend="numpy", in_memory=False)
    with pytest.raises(ConfigError, match="kept no spikes"):
        plot_raster(streaming, tmp_path / "bad.png")


def test_spike_times_and_steps_by_name():
    """Brian2 users expect times: spikes.times() is steps * dt in ms, spikes.steps() the steps."""
    import spikelm.network as sn
    from spikelm.simulator import Simulator

    net = sn.Network(dt=0.25, seed=0)
    net.add_population("src", "spike_times", 2, params={"times": ((1.0, 2.5), (0.5,))})
    sim = Simulator(net, backend="numpy")
    sim.run(20)
    t, i = sim.spikes.times("src")
    steps, ids = sim.spikes.steps("src")
    assert t.dtype == np.float64 and steps.dtype == np.int64
    assert sorted(zip(t.tolist(), i.tolist())) == [(0.5, 1), (1.0, 0), (2.5, 0)]
    assert np.array_equal(steps, np.rint(t / 0.25).astype(np.int64)) and np.array_equal(ids, i)
    with pytest.raises(ConfigError, match="not recorded; recorded populations: src"):
        sim.spikes.times("nobody")
