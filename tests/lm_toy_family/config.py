"""The toy family's configuration: a GPT-2 whose MLP activation is a ReLU (as OPT's is)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from spikelm.lm.families.gpt2.config import GPTConfig


@dataclass(frozen=True)
class ReluGPTConfig(GPTConfig):
    """A GPT-2 config with ``activation_function = "relu"``, read from ``model_type = "relu_gpt"``."""

    activation_function: str = "relu"

    MODEL_TYPE: ClassVar[str] = "relu_gpt"
    ARCHITECTURES: ClassVar[tuple] = ("ReluGPTLMHeadModel",)
    ACTIVATIONS: ClassVar[tuple] = ("relu",)
    ACTIVATION_POINT: ClassVar[str] = "relu"  # the population hI.relu

    def activation(self, x):
        return x * (x > 0)  # NumPy arrays and torch tensors alike
