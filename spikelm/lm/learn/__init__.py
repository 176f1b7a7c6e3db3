"""Online plasticity and learnable thresholds inside converted LMs (docs/lm.md, "Learning").

- :mod:`~spikelm.lm.learn.config`: plasticity files (TOML, plain data) and the rules;
- :mod:`~spikelm.lm.learn.attach`: a file attached to a converted graph (neurons, rules by index);
- :mod:`~spikelm.lm.learn.neurons`: SignedIF with spike units, EI-IF (BrainGPT eq. 1);
- :mod:`~spikelm.lm.learn.state`: the learned state and its packing; the float master weights;
- :mod:`~spikelm.lm.learn.reference` / :mod:`~spikelm.lm.learn.kernels`: the learn phase in
  NumPy (the reference) and in the compiled token loop;
- :mod:`~spikelm.lm.learn.session`: learning runs, their drift from the exact reference,
  checkpoints and learned model folders.
"""

from spikelm.lm.learn.config import Plasticity, TargetSpikes, load as load_plasticity
from spikelm.lm.learn.session import Learning

__all__ = ["Learning", "Plasticity", "TargetSpikes", "load_plasticity"]
