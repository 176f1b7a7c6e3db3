"""Converted language models: PyTorch weights -> quantized reference -> spiking network.

    from spikelm.lm import convert
    snn = convert(model, calibration=token_ids, bits=8)
    ref = snn.reference(token_ids)            # dense QANN: .logits, .codes
    run = snn.simulate(token_ids, backend="numba")   # event-driven, token by token
    assert (run.logits == ref.logits).all()
    gen = snn.generate(prompt_ids, n_tokens)

Model families (GPT-2, the Llama family, ...) are folders of :mod:`spikelm.lm.families`.
See docs/lm.md for the quantizer points, the schedule and the exact counting rules.

The public names are imported on first use (PEP 562): they pull in torch where it is
installed, seconds that ``python -m spikelm.lm.smollm2`` (which prints a path) and the other
small entry points of this package should not pay.
"""

import importlib
import sys
import types

#: public name -> the module that defines it
_PUBLIC = {"convert": "spikelm.lm.convert", "SpikingLM": "spikelm.lm.convert",
           "demo_model_path": "spikelm.lm.convert", "load_demo": "spikelm.lm.convert",
           # spikelm's own small GPT-2 and its config, public since the demo model was trained with them
           "GPTConfig": "spikelm.lm.families.gpt2", "TinyGPT": "spikelm.lm.families.gpt2"}

__all__ = ["convert", "SpikingLM", "GPTConfig", "TinyGPT", "demo_model_path", "load_demo"]


class _Package(types.ModuleType):
    """This package's module type: public names loaded on first use, and ``convert`` kept the function.

    The submodule :mod:`spikelm.lm.convert` shares its name with the function it defines; an
    import of the submodule binds the module under that name in its package, which an eager
    ``from .convert import convert`` used to overwrite at once. Loaded lazily, the function is
    put back here whatever imports the submodule first.
    """

    def __getattr__(self, name):
        if name not in _PUBLIC:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        super().__setattr__(name, value)
        return value

    def __setattr__(self, name, value):
        if name in _PUBLIC and isinstance(value, types.ModuleType):
            return  # the import system binding the submodule spikelm.lm.convert: the public name stays
        super().__setattr__(name, value)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(_PUBLIC))


sys.modules[__name__].__class__ = _Package
