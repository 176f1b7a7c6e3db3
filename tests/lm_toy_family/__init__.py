"""A toy model family, added the way docs/design.md ("How to add a family") says: one folder.

A GPT-2 with a ReLU MLP. Everything it does not change comes from the GPT-2 family (its
loaders, tensor names, float forward and graph builder, which take the MLP activation from
the config); what it changes is its config (:mod:`.config`) and how it is recognised. The
last line registers it; a built-in family would add its folder's name to the import line of
``spikelm/lm/families/__init__.py`` instead.
"""

from __future__ import annotations

from spikelm.lm.families import register
from spikelm.lm.families.gpt2 import GPT2

from .config import ReluGPTConfig


class ReluGPT(GPT2):
    """GPT-2 with a ReLU MLP (``model_type`` relu_gpt)."""

    name = "relu_gpt"
    label = "ReLU GPT (the test family)"
    model_types = (ReluGPTConfig.MODEL_TYPE,)
    architectures = ReluGPTConfig.ARCHITECTURES
    config_class = ReluGPTConfig
    reads_untyped = False


register(ReluGPT())
