"""Model constants live in one place: each model's CONSTS, read by name everywhere.

A kernel indexes a model's packed constants through the model's index (``c[C.em]``), never by
a literal position; the CUDA snippets get ``const real <name> = c[<k>];`` written from the
same tuple; the few copies that remain (the plasticity tables' LIF and EI-IF rows) are held
equal to the model files here, so an edit to one side fails this test.
"""
import inspect
import re

import numpy as np
import pytest

from spikelm.gpu import kernels as gk
from spikelm.gpu.model_sources import MODEL_SOURCES, consts_prologue
from spikelm.network.models import MODELS, eiif, lif
from spikelm.network.models.base import consts_index, pack
from spikelm.plasticity import interface
from spikelm.simulator import loop
from spikelm.simulator.kernels import BUILT_IN, kernel_module

LITERAL = re.compile(r"\bc\[\s*\d")   # c[3], c[ 14]: a constant read by position


@pytest.mark.parametrize("name", sorted(MODELS))
def test_derive_packs_every_named_constant_in_order(name):
    model = MODELS[name]
    c = model.derive(model.params(), 0.1)
    assert c.shape == (len(model.consts),)
    index = consts_index(model.consts)
    assert list(index) == list(range(len(model.consts))) and index._fields == model.consts


@pytest.mark.parametrize("name", sorted(set(MODELS) - set(BUILT_IN)))
def test_kernels_read_constants_by_name_only(name):
    src = inspect.getsource(kernel_module(name))
    assert not LITERAL.search(src), f"kernels/{name}.py reads a constant by position"
    cuda = MODEL_SOURCES[name]["update"] + MODEL_SOURCES[name]["may_fire"]
    assert not LITERAL.search(cuda), f"the CUDA snippet of {name} reads a constant by position"
    assert consts_prologue(name) in gk.kernel_source(name)
    for k, const in enumerate(MODELS[name].consts):
        assert f"const real {const} = c[{k}];" in consts_prologue(name)


def test_the_time_loop_and_the_reference_step_index_no_constant_by_position():
    from spikelm.network.models import izhikevich, signed_if, sources

    for mod in (loop, lif, eiif, izhikevich, signed_if, sources):
        assert not LITERAL.search(inspect.getsource(mod)), mod.__name__


def test_plasticity_copies_of_model_rows_and_constants_match_the_models():
    assert interface.LIF_USES_A == lif.C.uses_a
    assert interface.LIF_ROW_A == lif.LIF.state_vars.index("a")
    rows = {"v": interface.EIIF_ROW_V, "theta_base": interface.EIIF_ROW_THETA, "alpha": interface.EIIF_ROW_ALPHA,
            "r": interface.EIIF_ROW_R}
    assert {k: eiif.EIIF.state_vars.index(k) for k in rows} == rows


def test_pack_refuses_missing_or_unknown_names():
    assert pack(("a", "b"), b=2, a=1).tolist() == [1.0, 2.0]
    with pytest.raises(ValueError, match="missing or unknown"):
        pack(("a", "b"), a=1)
    with pytest.raises(ValueError, match="missing or unknown"):
        pack(("a",), a=1, z=0)
    assert np.array_equal(pack((), ), np.zeros(0))
