"""The CuPy backend.

On CPU CI (no CuPy, no GPU) this checks everything that needs neither: the one-line error
that says which is missing, the kernel-source factory (keys, memoisation, every model, the
numba expressions mirrored verbatim), the CUDA sources compiling with nvcc to PTX when nvcc
is on PATH, and the host driver against a fake CuPy that checks every launch's arguments
against the kernel's C signature. Tests marked ``gpu`` compare cupy with numpy and numba on
a real GPU and skip with the reason (which of CuPy / GPU is missing) everywhere else.
"""
import re
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings

import spikelm.gpu.backend as gb
import spikelm.network as sn
from spikelm.errors import BackendUnavailableError, ConfigError
from spikelm.gpu import emulate
from spikelm.gpu import kernels as gk
from spikelm.network.models import MODELS
from spikelm.simulator import Simulator, StateMonitor

REASON = gb.unavailable_reason()
needs_gpu = pytest.mark.skipif(REASON is not None, reason=f"needs CuPy and a CUDA GPU: {REASON}")


def _net(models=("spike_times", "lif", "izhikevich", "eiif", "signed_if", "poisson"), stimuli=True, seed=3):
    """A small network with every model (a spike source drives the rest) and every stimulus kind."""
    net = sn.Network(0.5, seed)
    for m in models:
        params = {"times": tuple((float(i), 4.0 + i) for i in range(6))} if m == "spike_times" else \
            {"rate": 200.0} if m == "poisson" else {"alpha": 0.0, "r": 0.2} if m == "eiif" else None
        net.add_population(m, m, 6, params=params)
    src = models[0]
    for m in models[1:]:
        if m in ("poisson", "spike_times"):
            continue
        net.connect(src, m, sn.FixedProbability(0.6), weight=1.0 if m == "signed_if" else sn.Uniform(0.0, 3.0),
                    delay=sn.Uniform(0.3, 3.0), target="exc")
        net.connect(m, m, sn.AllToAll(allow_autapses=False), weight=1.0 if m == "signed_if" else 0.5,
                    delay=1.0, target="inh")
    if stimuli and "lif" in models:
        net.add_stimulus(sn.ConstantCurrent("lif", 5.0))
        net.add_stimulus(sn.CurrentSteps("lif", (2.0, 20.0), (8.0, 0.0)))
        net.add_stimulus(sn.NoiseCurrent("lif", 2.0, 1.0))
        net.add_stimulus(sn.PoissonInput("lif", 2000.0, 1.0, "inh"))
    return net


# -- the error when CuPy or the GPU is missing ------------------------------------------------------------------

def test_missing_cupy_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` now raises ImportError
    with pytest.raises(BackendUnavailableError) as err:
        Simulator(_net(("lif",)), backend="cupy")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg == "backend 'cupy': CuPy is not installed; install it with: pip install -e '.[gpu]'"


def test_cupy_without_a_gpu_says_so_with_the_cuda_error(monkeypatch):
    def no_device():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device\nis detected")

    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=no_device))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    with pytest.raises(BackendUnavailableError) as err:
        Simulator(_net(("lif",)), backend="cupy")
    assert str(err.value) == ("backend 'cupy': cupy found but no CUDA GPU: cudaErrorNoDevice: no CUDA-capable "
                              "device is detected")
    fake.cuda.runtime.getDeviceCount = lambda: 0
    with pytest.raises(BackendUnavailableError, match="cupy found but no CUDA GPU: no CUDA device is visible"):
        gb.check_available()


def test_skip_reason_names_what_is_missing():
    if REASON is None:
        pytest.skip("CuPy and a GPU are present: nothing is missing")
    assert "CuPy is not installed" in REASON or "cupy found but no CUDA GPU" in REASON


# -- the kernel source factory ---------------------------------------------------------------------------------

def test_every_model_has_update_code_in_its_generated_source():
    assert set(gk.MODEL_SOURCES) == set(MODELS)
    for m, entry in gk.MODEL_SOURCES.items():
        src = gk.kernel_source(m)
        assert f"void update_{m}(" in src and f"void may_fire_{m}(" in src
        assert entry["update"] in src and entry["may_fire"] in src
    common = gk.kernel_source("common")
    for name in gk.COMMON_KERNELS:
        assert f"void {name}(" in common
    assert "#define ORDERED 0" in common and "#define ORDERED 1" in gk.kernel_source("common", flags="ordered")


def test_keys_are_normalised_and_sources_memoised():
    assert gk.kernel_key("common", np.float64, ["ordered", "ordered"]) == ("common", "float64", ("ordered",))
    assert gk.kernel_key("lif", "float64") == ("lif", "float64", ())
    assert gk.kernel_source("common", "float64", ("ordered",)) is gk.kernel_source("common", np.dtype("float64"),
                                                                                  ["ordered"])
    with pytest.raises(ConfigError, match="unknown module"):
        gk.kernel_key("hodgkin_huxley")
    with pytest.raises(ConfigError, match="not supported"):
        gk.kernel_key("lif", "float32")
    with pytest.raises(ConfigError, match="takes flags"):
        gk.kernel_key("lif", flags=("ordered",))


def test_sources_carry_the_rng_constants_and_tables_are_passed_in():
    src = gk.kernel_source("common")
    for const in ("0xBF58476D1CE4E5B9ULL", "0x94D049BB133111EBULL", "0x9E3779B97F4A7C15ULL", hex(gk.ATTEMPT)):
        assert const in src
    assert f"#define ZIG_R {float(gk.ZIG_R)!r}" in src
    assert "const real* zig_x, const real* zig_f" in src  # ZIG_X / ZIG_F come from rng.py, not a copy
    assert "--fmad=false" in gk.NVRTC_OPTIONS  # no fused multiply-add: NumPy's rounding


@pytest.mark.parametrize("model", sorted(gk.MIRRORS))
def test_cuda_updates_mirror_the_numba_kernels_expression_by_expression(model):
    import inspect

    from spikelm.simulator.kernels import kernel_module

    numba_src = inspect.getsource(kernel_module(model))
    cuda_src = gk.kernel_source(model)
    for entry in gk.MIRRORS[model]:
        expr, twin = entry if isinstance(entry, tuple) else (entry, re.sub(r"ST\((\d), i\)", r"S[\1, i]", entry)
                                                             .replace("&&", "and").replace("||", "or")
                                                             .replace("fabs(", "abs("))
        assert expr in cuda_src, f"CUDA {model}: {expr!r} missing"
        assert twin in numba_src, f"numba {model}: {twin!r} missing (the two kernels no longer mirror)"


@pytest.fixture
def fake_cupy(monkeypatch):
    """CuPy replaced by the CPU stand-in in check-only mode: launches are checked against the C
    signatures (count, pointer dtypes, scalar types) but not run; begin/end_step are emulated."""
    launches, builds = [], []
    monkeypatch.setitem(sys.modules, "cupy", emulate.fake_cupy(execute=False, launches=launches, builds=builds))
    monkeypatch.setattr(gk, "_build", None)
    yield launches, builds
    gk._build = None


def test_factory_compiles_each_key_once_per_device(fake_cupy):
    _, builds = fake_cupy
    a = gk.get_module("lif")
    assert gk.get_module("lif", np.float64, ()) is a
    assert gk.get_module("common", flags=["ordered"]) is gk.get_module("common", flags=("ordered", "ordered"))
    assert gk.get_module("common") is not gk.get_module("common", flags="ordered")
    assert len(builds) == 3
    assert builds[0] == (gk.kernel_source("lif"), gk.NVRTC_OPTIONS)


@pytest.mark.parametrize("graphs", [True, False])
@pytest.mark.parametrize("mode", gb.PROPAGATION_MODES)
def test_host_driver_launches_match_kernel_signatures(fake_cupy, monkeypatch, graphs, mode):
    """Every launch of a step (every model, every stimulus, spike_times, recording, samples, quiescence
    checks) passes arguments of the types the CUDA signature declares; chunks end where they should."""
    launches, _ = fake_cupy
    monkeypatch.setattr(gb, "_graphs", graphs)
    monkeypatch.setattr(gb, "_propagation", mode)
    net = _net()
    sim = Simulator(net, backend="cupy", chunk_steps=7, state=[StateMonitor("lif", ("v", "i_e"), every=2)])
    r = sim.run(20)
    assert r.steps == 20 and sim.t == 20
    per_step = launches.count("begin_step")
    assert per_step >= 20 and launches.count("end_step") == per_step
    for name in ("deliver", "update_lif", "update_izhikevich", "update_eiif", "update_signed_if", "update_poisson",
                 "update_spike_times", "spike_times_fire", "tile_count", "compact", "propagate", "record", "sample"):
        assert name in launches, f"{name} was never launched"
    # a quiescence run of SignedIF only launches the may-fire kernels
    launches.clear()
    sim2 = Simulator(_net(("spike_times", "signed_if", "eiif", "lif"), stimuli=False), backend="cupy")
    sim2.run(until_quiescent=True, max_steps=5)
    assert {"may_fire_signed_if", "may_fire_eiif", "may_fire_lif"} <= set(launches)


def test_run_chunk_of_zero_steps_touches_nothing(fake_cupy):
    launches, _ = fake_cupy
    sim = Simulator(_net(("lif",)), backend="cupy")
    assert sim.backend.run_chunk(sim.plan, sim.buffers, 0, 0, False) == (0, False)
    assert launches == []


def test_unknown_propagation_mode_is_refused():
    with pytest.raises(ConfigError, match="atomic, ordered"):
        gb.set_propagation("fast")


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH: the CUDA sources cannot be "
                                                         "compiled on this machine")
def test_cuda_sources_compile_to_ptx(tmp_path):
    """nvcc (no GPU needed) compiles every module with the backend's options: syntax, types, intrinsics."""
    sources = {f"{m}{'_'.join(f)}": gk.kernel_source(m, flags=f)
               for m in ["common", *gk.MODEL_SOURCES] for f in ([(), ("ordered",)] if m == "common" else [()])}
    sources["rng_probe"] = gk.rng_probe_source()
    sources["row_accumulate"] = gk.ROW_ACCUMULATE
    procs = []
    for name, src in sources.items():
        path = tmp_path / f"{name}.cu"
        path.write_text(src)
        procs.append((name, subprocess.Popen(["nvcc", "-ptx", "-arch=compute_80", *gk.NVRTC_OPTIONS[:1], "-o",
                                              str(tmp_path / f"{name}.ptx"), str(path)],
                                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    failed = {}
    for name, p in procs:
        out, _ = p.communicate(timeout=120)
        if p.returncode != 0:
            failed[name] = out[-2000:]
    assert not failed, failed


# -- the real kernels, run on the CPU by the emulator ------------------------------------------------------------

from helpers import assert_snapshots_agree, network_specs, signed_if_specs, simulate, snapshot  # noqa: E402

needs_cxx = pytest.mark.skipif(emulate.compiler() is None, reason="no host C++ compiler (g++): the CUDA kernels "
                                                                 "cannot be emulated on this machine")


EMU_TILE = 64  # threads per block under the emulator (two warps: multi-warp paths still run)


@pytest.fixture(scope="module")
def _emulator_built():
    emulate.prebuild(emulate.all_sources(tile=EMU_TILE))  # one compiler process per module, in parallel


@pytest.fixture
def emulated(monkeypatch, _emulator_built):
    """CuPy replaced by the emulator: the backend's CUDA sources compiled with g++ and run on the CPU."""
    monkeypatch.setitem(sys.modules, "cupy", emulate.fake_cupy(execute=True, tile=EMU_TILE))
    monkeypatch.setattr(gk, "TILE", EMU_TILE)
    monkeypatch.setattr(gk, "_build", None)
    yield
    gb.set_propagation("atomic")
    gk._build = None


def _pair(make, ref="numpy", run=lambda sim: sim.run(120), **kw):
    snaps = []
    for backend in (ref, "cupy"):
        sim = make(backend, **kw)
        run(sim)
        snaps.append(snapshot(sim))
    return snaps


def _every_model(backend, **kw):
    return Simulator(_net(), backend=backend, state=[StateMonitor("lif", ("v", "i_e"), every=2)], **kw)


@needs_cxx
@pytest.mark.parametrize("graphs", [True, False])
@pytest.mark.parametrize("mode", gb.PROPAGATION_MODES)
def test_emulated_kernels_reproduce_numpy_for_every_model_and_stimulus(emulated, monkeypatch, mode, graphs):
    """One network with every model and every stimulus kind, in uneven chunks: bit for bit in both modes
    (the emulator schedules atomics in a fixed order, and the float sums here land on distinct targets)."""
    gb.set_propagation(mode)
    monkeypatch.setattr(gb, "_graphs", graphs)
    ref, got = _pair(_every_model, chunk_steps=37, run=lambda sim: [sim.run(n) for n in (50, 1, 69)])
    assert sum(v.size for k, v in ref.items() if k.startswith("spikes/") and k.endswith("/steps")) > 100
    assert_snapshots_agree(ref, got, ulps=0)


@needs_cxx
def test_emulated_chunks_end_when_the_record_buffer_is_full(emulated):
    gb.set_propagation("ordered")
    ref, got = _pair(_every_model, spike_buffer=40)
    assert_snapshots_agree(ref, got, ulps=0)


@needs_cxx
def test_emulated_run_until_quiescence_stops_on_the_same_step(emulated):
    """LIF, EIIF and SignedIF may-fire kernels and the spike_times pointer decide quiescence as numpy does."""
    def make(backend):
        net = sn.Network(0.5, 2)
        net.add_population("src", "spike_times", 6, params={"times": tuple((float(i), 4.0 + i) for i in range(6))})
        net.add_population("eiif", "eiif", 6, params={"alpha": 0.0, "r": 0.5})
        net.add_population("sif", "signed_if", 6)
        net.add_population("lif", "lif", 6, params={"e_l": -65.0, "v_reset": -70.0, "t_ref": 2.0, "alpha": 2.0,
                                                    "tau_a": 20.0})
        for post, w in (("eiif", sn.Uniform(0.0, 3.0)), ("sif", 2.0), ("lif", sn.Uniform(5.0, 20.0))):
            net.connect("src", post, sn.FixedProbability(0.6), weight=w, delay=sn.Uniform(0.3, 3.0))
        net.connect("sif", "sif", sn.FixedProbability(0.3), weight=1.0, delay=1.0, target="inh")
        return Simulator(net, backend=backend)

    ref, got = _pair(make, run=lambda sim: sim.run(until_quiescent=True, max_steps=3000))
    assert ref["t"] < 3000
    assert_snapshots_agree(ref, got, ulps=0)


@needs_cxx
@settings(max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=network_specs(steps=120))
def test_emulated_random_networks_agree_with_numpy_in_ordered_mode(emulated, spec):
    gb.set_propagation("ordered")
    assert_snapshots_agree(snapshot(simulate(spec, "numpy", 120)), snapshot(simulate(spec, "cupy", 120)), ulps=0)


@needs_cxx
@settings(max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=signed_if_specs())
def test_emulated_integer_paths_agree_with_numba_in_atomic_mode(emulated, spec):
    gb.set_propagation("atomic")
    sims = [simulate(spec, b, until_quiescent=True, max_steps=2000) for b in ("numba", "cupy")]
    assert_snapshots_agree(snapshot(sims[0]), snapshot(sims[1]), ulps=0)


# -- on a GPU ------------------------------------------------------------------------------------------------------


def _cuda_agree(spec, ref_backend, mode, steps=300, ulps=0, **kw):
    gb.set_propagation(mode)
    try:
        ref = snapshot(simulate(spec, ref_backend, steps, **kw))
        got = snapshot(simulate(spec, "cupy", steps, **kw))
    finally:
        gb.set_propagation("atomic")
    assert_snapshots_agree(ref, got, ulps=ulps)


def _has_noise(spec):
    return any(s[0] == "noise" for s in spec["stims"])


@pytest.mark.gpu
@needs_gpu
def test_rng_on_the_gpu_draws_the_cpu_numbers():
    """uniform and Poisson bit for bit; normals bit for bit on the ziggurat's fast path (99%) and
    within 4 ulps on its slow path (CUDA's exp/log are not glibc's)."""
    import cupy as cp

    from spikelm.simulator import rng

    n, key, step, lam = 20000, rng.stream_key(7, rng.STREAM_NOISE), 123, 2.5
    mod = cp.RawModule(code=gk.rng_probe_source(), options=gk.NVRTC_OPTIONS)
    uni, nrm, poi = cp.zeros(n), cp.zeros(n), cp.zeros(n, cp.int64)
    mod.get_function("rng_probe")((64,), (256,), (np.uint64(key), np.int64(step), np.int64(n), np.float64(lam),
                                                  np.float64(np.exp(-lam)), cp.asarray(rng.ZIG_X),
                                                  cp.asarray(rng.ZIG_F), uni, nrm, poi))
    idx = np.arange(n)
    np.testing.assert_array_equal(uni.get(), rng.uniform(key, step, idx))
    np.testing.assert_array_equal(poi.get(), rng.poisson(key, step, idx, lam, np.exp(-lam)))
    ref = rng.normal(key, step, idx)
    got = nrm.get()
    assert np.mean(got == ref) > 0.98
    np.testing.assert_allclose(got, ref, rtol=4 * np.finfo(float).eps, atol=0)


@pytest.mark.gpu
@needs_gpu
@settings(max_examples=60)
@given(spec=network_specs(steps=300))
def test_random_networks_agree_with_numpy_bit_for_bit_in_ordered_mode(spec):
    assume(not _has_noise(spec))  # noise: see test_rng_on_the_gpu_draws_the_cpu_numbers
    _cuda_agree(spec, "numpy", "ordered")


@pytest.mark.gpu
@needs_gpu
@settings(max_examples=60)
@given(spec=network_specs(steps=300))
def test_random_networks_agree_with_numba_bit_for_bit_in_ordered_mode(spec):
    assume(not _has_noise(spec))
    _cuda_agree(spec, "numba", "ordered")


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("mode", gb.PROPAGATION_MODES)
@settings(max_examples=60)
@given(spec=signed_if_specs())
def test_integer_paths_are_bit_exact_in_both_modes_until_quiescence(spec, mode):
    """SignedIF with integer weights: sums of integers are exact in any order, atomics included."""
    gb.set_propagation(mode)
    try:
        sims = [simulate(spec, b, until_quiescent=True, max_steps=5000) for b in ("numba", "cupy")]
    finally:
        gb.set_propagation("atomic")
    assert sims[1].t < 5000
    assert_snapshots_agree(snapshot(sims[0]), snapshot(sims[1]), ulps=0)


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("graphs", [True, False])
def test_chunked_runs_and_graphs_change_nothing(graphs, monkeypatch):
    monkeypatch.setattr(gb, "_graphs", graphs)
    snaps = []
    for backend, chunk in (("numba", 2000), ("cupy", 37)):
        gb.set_propagation("ordered")
        try:
            sim = Simulator(_net(stimuli=False), backend=backend, chunk_steps=chunk,
                            state=[StateMonitor("izhikevich", ("v", "u"), every=3)])
            for n in (50, 1, 149):
                sim.run(n)
        finally:
            gb.set_propagation("atomic")
        snaps.append(snapshot(sim))
    assert_snapshots_agree(*snaps, ulps=0)


@pytest.mark.gpu
@needs_gpu
def test_atomic_mode_keeps_the_statistics_of_a_cuba_network():
    """Atomic float sums differ in the last bits, so spikes drift apart; rates must not."""
    rates = {}
    for backend in ("numba", "cupy"):
        net = sn.Network(0.1, 5)
        cuba = {"e_l": -49.0}
        net.add_population("exc", "lif", 1600, params=cuba, init={"v": sn.Uniform(-60.0, -50.0)})
        net.add_population("inh", "lif", 400, params=cuba, init={"v": sn.Uniform(-60.0, -50.0)})
        for pre, w, tg in (("exc", 1.62, "exc"), ("inh", -9.0, "inh")):
            for post in ("exc", "inh"):
                net.connect(pre, post, sn.FixedProbability(0.04), weight=w, delay=0.1, target=tg)
        sim = Simulator(net, backend=backend)
        r = sim.run(5000)
        rates[backend] = sum(r.spikes.values()) / 2000 / 0.5
    assert rates["numba"] > 1.0
    assert abs(rates["cupy"] - rates["numba"]) <= 0.05 * rates["numba"], rates



def test_gpu_benchmark_exits_with_the_reason_without_a_gpu(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "cupy", None)
    from benchmarks import gpu as bench

    assert bench.main(["--nets", "cuba"]) == 2
    assert "CuPy is not installed" in capsys.readouterr().err
