"""Open a model for conversion, whatever its family: a torch module, a Hugging Face folder, a
GGUF file, or a state dict with its config.

Every path ends as a :class:`LoadedModel`: the family (:mod:`spikelm.lm.families`), its
config, float parameters under the family's names (:class:`~spikelm.lm.tensors.Params`: stored
in their source precision, read as float64), shapes checked, no NaN or infinity,
and the tokenizer when the source carried one (a GGUF file). Files are read without running
code from them (:mod:`spikelm.lm.weights`: safetensors, ``weights_only=True`` pickles, GGUF).
"""

from __future__ import annotations

from pathlib import Path

from spikelm.errors import ConfigError
from spikelm.lm import families
from spikelm.lm.tensors import lean_heap
from spikelm.lm.torch_optional import torch
from spikelm.lm.weights import read_config, read_folder, read_gguf, read_weights

__all__ = ["LoadedModel", "check_options", "open_model", "read_weights"]  # read_weights: the documented reader


class LoadedModel:
    """A model read into memory: its family, config, parameters (read as float64), and the tokenizer when
    the source carried one (a GGUF file)."""

    def __init__(self, config, params, tokenizer=None, source="", family=None):
        self.config, self.params, self.tokenizer, self.source = config, params, tokenizer, source
        self.family = family if family is not None else families.of_config_object(config)


def check_options(family, **given) -> None:
    """Refuse, in one line, an option (given, not None) that ``family`` does not take."""
    for name, value in given.items():
        if value is not None and name not in family.options:
            takers = sorted(f.label for f in families.all_families() if name in f.options)
            listed = ", ".join(takers[:-1]) + " and " + takers[-1] if len(takers) > 1 else "".join(takers) or "no"
            why = family.missing.get(name)
            raise ConfigError(f"{name}={value!r}: only for {listed} models"
                              + (f" ({why})" if why else f" (not an option of {family.label} models)"))


def _configs() -> str:
    return ", ".join(f.config_class.__name__ for f in families.all_families())


def open_model(model, config=None, context=None) -> LoadedModel:
    """Read any supported model (see :func:`spikelm.lm.convert`) through its family (its
    temporaries handed back to the system as they are freed: :func:`~spikelm.lm.tensors.lean_heap`)."""
    with lean_heap():
        return _open(model, config, context)


def _open(model, config, context) -> LoadedModel:
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, (str, Path)):
        path = Path(model)
        if path.suffix.lower() == ".gguf":
            raw, tok, tensors = read_gguf(path)
            fam = families.of_config(raw, str(path))
            check_options(fam, context=context)
            cfg = fam.config(raw, str(path), context)
            state = tensors(fam.tensors(cfg).shapes(cfg), fam.gguf_tensor)  # the weights the config needs
            return LoadedModel(cfg, fam.check_state_dict(cfg, state, str(path)), tok, str(path), fam)
        if not path.is_dir():
            raise ConfigError(f"{path}: not a model folder (expected config.json and model.safetensors)")
        raw = read_config(path)
        fam = families.of_config(raw, str(path / "config.json"))
        check_options(fam, context=context)
        cfg = fam.config(raw, str(path / "config.json"), context)
        state, src = read_folder(path)
        return LoadedModel(cfg, fam.check_state_dict(cfg, state, str(src)), None, str(path), fam)
    if isinstance(model, dict):
        if config is None:
            raise ConfigError(f"convert: a state dict needs config= (a {_configs()} or a config dict)")
        fam = families.of_config_object(config)
        if fam is not None:  # a config object is final: its context is its own
            check_options(fam, context=context)
            return LoadedModel(config, fam.check_state_dict(config, model), None, "state dict", fam)
        raw = config.to_dict() if callable(getattr(config, "to_dict", None)) else config  # a transformers config
        if not isinstance(raw, dict):
            raise ConfigError(f"convert: config is a {type(config).__name__}; expected a {_configs()}, a config dict "
                              "or a transformers config")
        fam = families.of_config(raw, "config")
        check_options(fam, context=context)
        cfg = fam.config(raw, "config", context)
        return LoadedModel(cfg, fam.check_state_dict(cfg, model), None, "state dict", fam)
    if torch is not None and isinstance(model, torch.nn.Module):
        fam = families.of_module(model)
        check_options(fam, context=context)
        cfg, params = fam.from_module(model, context)
        return LoadedModel(cfg, params, None, type(model).__name__, fam)
    raise ConfigError(f"convert: model is a {type(model).__name__}; expected a torch module, a model folder path, "
                      "a .gguf file or a state dict")
