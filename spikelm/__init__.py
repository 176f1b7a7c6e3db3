"""spikelm: an event-driven, discrete-time simulator of spiking neural networks.

Its headline use is running trained PyTorch language models spike by spike (``spikelm.lm``);
it also runs the classic networks of computational neuroscience (LIF, Izhikevich, E/I).
"""

__version__ = "0.1.0"
