"""Online plasticity and learnable thresholds inside converted LMs (docs/lm.md, "Learning").

Two layers. The **core**, below the executors (they import it to run learning neurons and
the learn phase):

- :mod:`~spikelm.lm.learn.config`: plasticity files (TOML, plain data) and the rules;
- :mod:`~spikelm.lm.learn.attach`: a file attached to a converted graph (neurons, rules by index);
- :mod:`~spikelm.lm.learn.neurons`: SignedIF with spike units, EI-IF (BrainGPT eq. 1);
- :mod:`~spikelm.lm.learn.state`: the learned state and its packing; the float master weights;
- :mod:`~spikelm.lm.learn.reference` / :mod:`~spikelm.lm.learn.kernels`: the learn phase in
  NumPy (the reference) and in the compiled token loop;
- :mod:`~spikelm.lm.learn.export`: learned model folders (written by a run, read by ``convert``).

The **workflow**, above the executors, which imports neither ``convert`` nor ``SpikingLM``:

- :mod:`~spikelm.lm.learn.session`: learning runs (:class:`Learning`) through texts and generations;
- :mod:`~spikelm.lm.learn.drift`: their drift from the exact reference;
- :mod:`~spikelm.lm.learn.checkpoint`: stop and resume identically;
- :mod:`~spikelm.lm.learn.cli`: the command-line options.
"""

from spikelm.lm.learn.config import Plasticity, TargetSpikes, load as load_plasticity

__all__ = ["Learning", "Plasticity", "TargetSpikes", "load_plasticity"]


def __getattr__(name):
    # Learning is workflow: importing the core (as every executor does) must not import it
    if name == "Learning":
        from spikelm.lm.learn.session import Learning

        return Learning
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
