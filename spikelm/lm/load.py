"""Load GPT-2-style weights: a torch module, a Hugging Face folder, or a plain state dict.

Everything ends as ``(GPTConfig, params)`` where ``params`` maps the Hugging Face GPT-2 names
(``transformer.h.0.attn.c_attn.weight`` ...) to float64 NumPy arrays. Pickled checkpoints are
read with ``torch.load(..., weights_only=True)``: a file that needs code to load is refused.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from spikelm.errors import ConfigError, FileFormatError
from spikelm.lm.gpt import LM_EXTRA, GPTConfig, require_torch

# buffers that old GPT-2 checkpoints carry and that hold no parameters
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")


def expected_shapes(cfg: GPTConfig) -> dict[str, tuple[int, ...]]:
    d, f, V = cfg.n_embd, cfg.inner, cfg.vocab_size
    shapes = {"transformer.wte.weight": (V, d), "transformer.wpe.weight": (cfg.n_positions, d)}
    for i in range(cfg.n_layer):
        p = f"transformer.h.{i}."
        shapes.update({
            p + "ln_1.weight": (d,), p + "ln_1.bias": (d,),
            p + "attn.c_attn.weight": (d, 3 * d), p + "attn.c_attn.bias": (3 * d,),
            p + "attn.c_proj.weight": (d, d), p + "attn.c_proj.bias": (d,),
            p + "ln_2.weight": (d,), p + "ln_2.bias": (d,),
            p + "mlp.c_fc.weight": (d, f), p + "mlp.c_fc.bias": (f,),
            p + "mlp.c_proj.weight": (f, d), p + "mlp.c_proj.bias": (d,),
        })
    shapes["transformer.ln_f.weight"] = (d,)
    shapes["transformer.ln_f.bias"] = (d,)
    if not cfg.tie_word_embeddings:
        shapes["lm_head.weight"] = (V, d)
    return shapes


def _to_numpy(value, source, key):
    try:
        import torch

        if isinstance(value, torch.Tensor):
            return value.detach().to("cpu", torch.float64).numpy()
    except ImportError:  # the core install has no torch: values are arrays then
        pass
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise FileFormatError(f"{source}: {key} is a {type(value).__name__}, not a tensor") from None


def check_state_dict(cfg: GPTConfig, state: dict, source: str = "state dict") -> dict[str, np.ndarray]:
    """Validate names and shapes; return float64 arrays under the canonical names."""
    return check_tensors(state, expected_shapes, cfg, "transformer.", _IGNORED_SUFFIXES, source)


def check_tensors(state, expected, cfg, prefix: str, ignored: tuple, source: str) -> dict[str, np.ndarray]:
    """A state dict against the names and shapes ``expected(cfg)`` gives, for any family.

    Keys ending in ``ignored`` (buffers) are dropped; a dict whose keys lack ``prefix`` (a
    bare body module's) gets it; a tied head's copy is checked and dropped. Missing and
    unexpected keys, shapes and NaN/inf values are one-line errors naming the key.
    """
    if not isinstance(state, dict):
        raise FileFormatError(f"{source}: expected a state dict (name -> tensor), got {type(state).__name__}")
    state = {k: v for k, v in state.items() if not k.endswith(ignored)}
    if state and not any(k.startswith(prefix) for k in state):
        state = {(k if k == "lm_head.weight" else prefix + k): v for k, v in state.items()}
    _check_layer_count(cfg, state, prefix, source)
    shapes = expected(cfg)
    if cfg.tie_word_embeddings and "lm_head.weight" in state:
        shapes["lm_head.weight"] = (cfg.vocab_size, cfg.n_embd)  # tied copy, checked below
    missing = [k for k in shapes if k not in state]
    extra = [k for k in state if k not in shapes]
    if missing:
        raise ConfigError(f"{source}: missing keys {', '.join(missing[:6])}" + (" ..." if len(missing) > 6 else ""))
    if extra:
        raise ConfigError(f"{source}: unexpected keys {', '.join(extra[:6])}" + (" ..." if len(extra) > 6 else ""))
    params = {}
    for key, shape in shapes.items():
        arr = _to_numpy(state[key], source, key)
        if arr.shape != shape:
            raise ConfigError(f"{source}: {key} has shape {tuple(arr.shape)}; the config needs {shape}")
        if not np.all(np.isfinite(arr)):
            raise ConfigError(f"{source}: {key} holds NaN or infinite values")
        params[key] = arr
    if cfg.tie_word_embeddings:
        params.pop("lm_head.weight", None)
    return params


def _check_layer_count(cfg, state: dict, prefix: str, source: str) -> None:
    """The config's layer count against the blocks the weights hold (``<prefix>h.N`` for GPT-2,
    ``<prefix>layers.N`` for the Llama family), before listing every layer's names: a config
    claiming a billion layers would otherwise take the machine's memory first."""
    field, block = ("n_layer", "h") if prefix == "transformer." else ("num_hidden_layers", "layers")
    index = re.compile(re.escape(prefix) + r"(?:h|layers)\.(\d+)\.")
    blocks = {m.group(1) for k in state if isinstance(k, str) and (m := index.match(k))}
    if cfg.n_layer != len(blocks):
        raise ConfigError(f"{source}: the config's {field}={cfg.n_layer}, but the weights hold {len(blocks)} "
                          f"blocks ({prefix}{block}.N)")


def from_module(model) -> tuple[GPTConfig, dict[str, np.ndarray]]:
    """spikelm's ``TinyGPT`` or a Hugging Face ``GPT2LMHeadModel``."""
    from spikelm.lm.gpt import TinyGPT

    name = type(model).__name__
    if isinstance(model, TinyGPT):
        return model.config, check_state_dict(model.config, model.state_dict(), name)
    hf_config = getattr(model, "config", None)
    if name == "GPT2LMHeadModel" and hf_config is not None:
        cfg = GPTConfig.from_dict(hf_config.to_dict(), source=f"{name}.config")
        state = model.state_dict()
        return cfg, check_state_dict(cfg, state, name)
    raise ConfigError(
        f"model: {name} is an unknown architecture; supported: spikelm TinyGPT, "
        "transformers GPT2LMHeadModel, a Hugging Face GPT-2 folder or a state dict with a config"
    )


def read_weights(path: Path) -> dict:
    """A safetensors file or a torch pickle loaded with ``weights_only=True``."""
    if path.suffix == ".safetensors":
        try:
            from safetensors import SafetensorError
            from safetensors.numpy import load_file  # NumPy arrays: no torch needed
        except ImportError:
            raise ConfigError(f"{path}: reading safetensors needs the safetensors package, which is not "
                              f"installed; install the lm extra: {LM_EXTRA}") from None

        try:
            return load_file(str(path))
        except TypeError:  # a dtype NumPy lacks (bfloat16): read the format ourselves
            from spikelm.lm.weights import read_safetensors

            return read_safetensors(path)
        except (SafetensorError, OSError, ValueError) as exc:
            raise FileFormatError(f"{path}: not a readable safetensors file ({exc})") from None
    import pickle

    torch = require_torch(f"{path}: a PyTorch checkpoint")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unpickling refused"
        raise FileFormatError(
            f"{path}: the pickle needs code to load and is refused (weights_only=True): {first}"
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FileFormatError(f"{path}: not a readable PyTorch checkpoint ({first})") from None


def from_folder(path) -> tuple[GPTConfig, dict[str, np.ndarray]]:
    """A Hugging Face model folder: config.json + model.safetensors or pytorch_model.bin."""
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a model folder (expected config.json and model.safetensors)")
    from spikelm.lm.load_llama import read_config

    cfg_path = folder / "config.json"
    raw = read_config(folder)
    archs = raw.get("architectures") or []
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise ConfigError(f"{cfg_path}: architectures={archs!r}; expected a list of names, e.g. [\"GPT2LMHeadModel\"]")
    unknown = [a for a in archs if a not in ("GPT2LMHeadModel", "GPT2Model")]
    if unknown:
        raise ConfigError(
            f"{cfg_path}: architectures={unknown!r} is an unknown architecture; supported: GPT2LMHeadModel"
        )
    cfg = GPTConfig.from_dict(raw, source=str(cfg_path))
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).exists():
            weights = folder / name
            break
    else:
        raise FileFormatError(f"{folder}: no model.safetensors or pytorch_model.bin")
    return cfg, check_state_dict(cfg, read_weights(weights), str(weights))


def _config(config) -> GPTConfig:
    """``convert(config=...)``: a GPTConfig, a GPT-2 config dict, or a transformers config object."""
    if isinstance(config, GPTConfig):
        return config
    if callable(getattr(config, "to_dict", None)):    # transformers' PretrainedConfig
        config = config.to_dict()
    if not isinstance(config, dict):
        raise ConfigError(f"convert: config is a {type(config).__name__}; expected a GPTConfig, a GPT-2 config "
                          "dict or a transformers GPT2Config")
    return GPTConfig.from_dict(config)


def load_model(model, config=None) -> tuple[GPTConfig, dict[str, np.ndarray]]:
    """Dispatch on what ``convert`` was given (module, folder path, or state dict + config)."""
    if isinstance(model, (str, Path)):
        return from_folder(model)
    if isinstance(model, dict):
        if config is None:
            raise ConfigError("convert: a state dict needs config= (a GPTConfig or a GPT-2 config dict)")
        cfg = _config(config)
        return cfg, check_state_dict(cfg, model)
    try:
        import torch

        if isinstance(model, torch.nn.Module):
            return from_module(model)
    except ImportError:  # without torch a module cannot have been built
        pass
    raise ConfigError(
        f"convert: model is a {type(model).__name__}; expected a torch module, a model folder path "
        "or a state dict"
    )


class LoadedModel:
    """A model read into memory: its config (GPTConfig or LlamaConfig), float64 parameters,
    and the tokenizer when the source carried one (a GGUF file)."""

    def __init__(self, config, params, tokenizer=None, source=""):
        self.config, self.params, self.tokenizer, self.source = config, params, tokenizer, source


def open_model(model, config=None, context=None) -> LoadedModel:
    """Read any supported model (see :func:`spikelm.lm.convert`), GPT-2 or Llama family."""
    from spikelm.lm import load_llama as LL
    from spikelm.lm.llama import LlamaConfig

    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, (str, Path)):
        path = Path(model)
        if path.suffix.lower() == ".gguf":
            cfg, params, tok = LL.from_gguf(path, context)
            return LoadedModel(cfg, params, tok, str(path))
        raw = LL.read_config(path) if path.is_dir() and (path / "config.json").exists() else None
        if LL.is_llama_config(raw):
            cfg, params = LL.from_folder(path, raw, context)
            return LoadedModel(cfg, params, None, str(path))
        _no_context(context)
        return LoadedModel(*from_folder(path), None, str(path))
    if isinstance(model, dict):
        if config is None:
            raise ConfigError("convert: a state dict needs config= (a GPTConfig, a LlamaConfig or a config dict)")
        if isinstance(config, LlamaConfig) or (not isinstance(config, GPTConfig) and LL.is_llama_config(config)):
            cfg = config if isinstance(config, LlamaConfig) else LL.config_from(config, "config", context)
            return LoadedModel(cfg, LL.check_state_dict(cfg, model), None, "state dict")
        _no_context(context)
        return LoadedModel(*load_model(model, config), None, "state dict")
    if type(model).__name__ in LL.ARCHITECTURES:
        return LoadedModel(*LL.from_module(model, context), None, type(model).__name__)
    _no_context(context)
    return LoadedModel(*load_model(model, config), None, type(model).__name__)


def _no_context(context):
    if context is not None:
        raise ConfigError(f"context={context!r}: only for Llama-family models (GPT-2's is its n_positions)")
