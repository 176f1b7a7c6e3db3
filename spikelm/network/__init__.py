"""What is simulated: neuron models, populations, projections, connectivity, stimuli."""
from .connectivity import (AllToAll, FixedInDegree, FixedOutDegree, FixedProbability, FixedTotalNumber, FromArrays,
                           OneToOne)
from .models import (EIIF, IZHIKEVICH, LIF, MODELS, POISSON, SIGNED_IF, SPIKE_TIMES, EIIFParams,
                     IzhikevichParams, LIFParams, PoissonParams, SignedIFParams, SpikeTimesParams, get_model)
from .network import Network
from .population import Population
from .projection import Projection
from .stimulus import ConstantCurrent, CurrentSteps, NoiseCurrent, PoissonInput
from .values import Normal, Uniform

__all__ = ["Network", "Population", "Projection", "AllToAll", "FixedProbability", "FixedInDegree",
           "FixedOutDegree", "FixedTotalNumber", "OneToOne", "FromArrays", "ConstantCurrent", "CurrentSteps", "NoiseCurrent",
           "PoissonInput", "Uniform", "Normal", "MODELS", "get_model", "LIF", "LIFParams", "EIIF", "EIIFParams",
           "IZHIKEVICH", "IzhikevichParams", "SIGNED_IF", "SignedIFParams", "POISSON", "PoissonParams",
           "SPIKE_TIMES", "SpikeTimesParams"]
