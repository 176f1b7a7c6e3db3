"""Load Llama-family weights (Llama, Qwen2, Mistral, SmolLM2): a transformers module, a Hugging
Face folder (config.json + safetensors, sharded or not, any float dtype; or a pytorch_model.bin
read with ``weights_only=True``), a GGUF file, or a state dict with its config.

Everything ends as ``(LlamaConfig, params)``: Hugging Face names, float64 arrays, shapes
checked against the config, no NaN or infinity.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from spikelm.errors import ConfigError, FileFormatError
from spikelm.lm.llama import ARCHITECTURES, FAMILIES, LlamaConfig, expected_shapes

# buffers some checkpoints carry that hold no parameters
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


def config_from(raw, source: str, n_positions: int | None = None) -> LlamaConfig:
    """A LlamaConfig from a config dict (or a transformers config object)."""
    if hasattr(raw, "to_dict") and not isinstance(raw, dict):
        raw = raw.to_dict()
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a config object or dict, got {type(raw).__name__}")
    archs = raw.get("architectures") or []
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise ConfigError(f"{source}: architectures={archs!r}; must be a list of names")
    unknown = [a for a in archs if a not in ARCHITECTURES]
    if unknown and raw.get("model_type") in FAMILIES:
        raise ConfigError(f"{source}: model_type={raw.get('model_type')!r} but architectures={unknown!r}: they "
                          "disagree; a Llama-family folder names LlamaForCausalLM, Qwen2ForCausalLM or "
                          "MistralForCausalLM")
    if unknown:
        raise ConfigError(f"{source}: architectures={unknown!r} is not supported; supported: "
                          f"{', '.join(ARCHITECTURES)} (and GPT2LMHeadModel)")
    raw = dict(raw)
    if isinstance(raw.get("bos_token_id"), list):
        raw["bos_token_id"] = raw["bos_token_id"][0] if raw["bos_token_id"] else None
    return LlamaConfig.from_dict(raw, source, n_positions)


def check_state_dict(cfg: LlamaConfig, state: dict, source: str = "state dict") -> dict[str, np.ndarray]:
    """Validate names and shapes; return float64 arrays under the canonical names."""
    from spikelm.lm.load import check_tensors

    return check_tensors(state, expected_shapes, cfg, "model.", _IGNORED_SUFFIXES, source)


def from_module(model, n_positions=None) -> tuple[LlamaConfig, dict]:
    name = type(model).__name__
    cfg = config_from(model.config, f"{name}.config", n_positions)
    return cfg, check_state_dict(cfg, model.state_dict(), name)


def from_folder(folder: Path, raw: dict, n_positions=None) -> tuple[LlamaConfig, dict]:
    from spikelm.lm.load import read_weights
    from spikelm.lm.weights import read_safetensors, read_sharded

    cfg = config_from(raw, str(folder / "config.json"), n_positions)
    if (folder / "model.safetensors").is_file():
        state, src = read_safetensors(folder / "model.safetensors"), folder / "model.safetensors"
    elif (folder / "model.safetensors.index.json").is_file():
        state, src = read_sharded(folder), folder / "model.safetensors.index.json"
    elif (folder / "pytorch_model.bin").is_file():
        state, src = read_weights(folder / "pytorch_model.bin"), folder / "pytorch_model.bin"
    else:
        raise FileFormatError(f"{folder}: no model.safetensors, model.safetensors.index.json or pytorch_model.bin")
    return cfg, check_state_dict(cfg, state, str(src))


def from_gguf(path: Path, n_positions=None):
    """(LlamaConfig, params, tokenizer) of a GGUF file."""
    from spikelm.lm.weights import read_gguf

    raw, state, tok = read_gguf(path)
    cfg = config_from(raw, str(path), n_positions)
    return cfg, check_state_dict(cfg, state, str(path)), tok


def is_llama_config(raw) -> bool:
    if hasattr(raw, "to_dict") and not isinstance(raw, dict):
        raw = raw.to_dict()
    if not isinstance(raw, dict):
        return False
    archs = raw.get("architectures")
    mt = raw.get("model_type")
    return (isinstance(mt, str) and mt in FAMILIES
            or isinstance(archs, list) and any(isinstance(a, str) and a in ARCHITECTURES for a in archs))


def read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if path.is_dir():
        raise FileFormatError(f"{path}: is a directory, not a JSON file")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileFormatError(f"{path}: missing; a model folder needs config.json") from None
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise FileFormatError(f"{path}: not valid JSON (arrays or objects nested too deeply)") from None
    if not isinstance(raw, dict):
        raise FileFormatError(f"{path}: expected a JSON object")
    return raw
