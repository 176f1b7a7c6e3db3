"""The backend registry: every backend offers every operation with one signature and covers every model.

Runs without a GPU: the cupy backend module imports without CuPy (it imports CuPy only when
it runs), so its operations and its per-model kernel table are inspected here.
"""
import importlib
import inspect

import pytest

from spikelm.network.models import MODELS
from spikelm.simulator.backends import BACKENDS, OPERATIONS


def _module(name):
    return importlib.import_module(BACKENDS[name])  # not get_backend: that asks for a GPU


def test_registry_names_the_three_backends():
    assert set(BACKENDS) == {"numpy", "numba", "cupy"}
    assert "run_chunk" in OPERATIONS


@pytest.mark.parametrize("name", sorted(BACKENDS))
@pytest.mark.parametrize("op", OPERATIONS)
def test_every_backend_offers_every_operation_with_the_same_signature(name, op):
    ref = inspect.signature(getattr(_module("numpy"), op))
    fn = getattr(_module(name), op, None)
    assert callable(fn), f"backend {name!r} lacks operation {op!r}"
    assert inspect.signature(fn) == ref, f"{name}.{op}{inspect.signature(fn)} differs from numpy.{op}{ref}"


def test_cupy_backend_module_imports_without_cupy_and_can_say_why_it_cannot_run():
    mod = _module("cupy")
    assert callable(getattr(mod, "check_available", None))
    reason = mod.unavailable_reason()
    assert reason is None or ("\n" not in reason and "cupy" in reason.lower())


def _covered_numpy(model):
    nb = _module("numpy")
    if model.is_source:  # stepped by the backend itself, by name
        return model.name in inspect.getsource(nb)
    return callable(model.step) and callable(model.may_fire)


def _covered_numba(model):
    from spikelm.simulator import loop
    from spikelm.simulator.kernels import BUILT_IN, kernel_module

    if model.name in BUILT_IN:  # stepped by the time loop itself, by kind
        return "TIMES_KIND" in inspect.getsource(loop)
    try:
        mod = kernel_module(model.name)
    except ModuleNotFoundError:
        return False
    return all(callable(getattr(mod, f, None)) for f in ("update", "may_fire"))


def _covered_cupy(model):
    from spikelm.gpu import kernels as gk

    entry = gk.MODEL_SOURCES.get(model.name)
    if entry is None:
        return False
    src = gk.kernel_source(model.name)
    return all(f" {k}(" in src for k in gk.model_kernels(model.name)) and entry["update"] in src


COVERS = {"numpy": _covered_numpy, "numba": _covered_numba, "cupy": _covered_cupy}


@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_every_backend_covers_every_model(name):
    missing = [m for m in sorted(MODELS) if not COVERS[name](MODELS[m])]
    assert not missing, f"backend {name!r} has no kernel for: {', '.join(missing)}"


def test_cupy_refuses_plasticity_instead_of_running_it_elsewhere():
    """Plasticity rules have no GPU kernels yet: the backend says so, it never falls back silently."""
    from spikelm.errors import BackendUnavailableError

    with pytest.raises(BackendUnavailableError, match="plasticity"):
        _module("cupy").run_chunk(None, None, 0, 1, False, learn=object())
