"""Neuron models: one module each (parameters, state, derived constants, NumPy step)."""
from spikelm.errors import ConfigError

from .base import NeuronModel
from .eiif import EIIF, EIIFParams
from .izhikevich import IZHIKEVICH, IzhikevichParams
from .lif import LIF, LIFParams
from .signed_if import SIGNED_IF, SignedIFParams
from .sources import POISSON, SPIKE_TIMES, PoissonParams, SpikeTimesParams

MODELS = {m.name: m for m in (LIF, EIIF, IZHIKEVICH, SIGNED_IF, POISSON, SPIKE_TIMES)}


def get_model(name: str) -> NeuronModel:
    """Return the model called ``name``; the error lists the known ones."""
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown neuron model {name!r}; known models: {', '.join(sorted(MODELS))}") from None


__all__ = ["MODELS", "get_model", "NeuronModel", "LIF", "LIFParams", "EIIF", "EIIFParams",
           "IZHIKEVICH", "IzhikevichParams", "SIGNED_IF", "SignedIFParams", "POISSON", "PoissonParams",
           "SPIKE_TIMES", "SpikeTimesParams"]
