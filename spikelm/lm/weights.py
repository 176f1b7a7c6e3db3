"""Read model files without running code from them: safetensors (any float dtype, bf16
included, single or sharded), PyTorch pickles (``weights_only=True``), GGUF files (gguf's
reader, tensor by tensor), a Hugging Face folder's weights and its ``config.json``.

safetensors' NumPy loader cannot represent bfloat16, so this module reads the format
itself: an 8-byte little-endian header length, a JSON header of ``{name: {dtype, shape,
data_offsets}}``, then the raw little-endian tensor bytes. Every field is checked against
the file's size before any array is built.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from spikelm.errors import ConfigError, FileFormatError
from spikelm.lm.torch_optional import LM_EXTRA, require_torch

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
           "I8": "i1", "U8": "u1", "BOOL": "?"}
_MAX_HEADER = 100 * 2**20


def read_safetensors(path) -> dict[str, np.ndarray]:
    """All tensors of one safetensors file: float32 for F32, F16 and BF16 (exact), float64 for
    F64; integers keep their type."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise FileFormatError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
            n = int.from_bytes(head, "little")
            if not 2 <= n <= min(_MAX_HEADER, size - 8):
                raise FileFormatError(f"{path}: not a safetensors file (header length {n} for a {size}-byte file)")
            header = json.loads(f.read(n))
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read ({exc.strerror})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{path}: the safetensors header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise FileFormatError(f"{path}: the safetensors header is not a JSON object")
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n) if size > 8 + n else np.zeros(0, np.uint8)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (lo, hi) = info["dtype"], [int(s) for s in info["shape"]], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise FileFormatError(f"{path}: tensor {name!r}: header entry needs dtype, shape and data_offsets") from None
        if dtype not in _DTYPES:
            raise FileFormatError(f"{path}: tensor {name!r}: dtype {dtype!r} is not supported; "
                                  f"allowed: {', '.join(_DTYPES)}")
        item = np.dtype(_DTYPES[dtype]).itemsize
        count = int(np.prod(shape)) if shape else 1
        if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi <= data.size and hi - lo == count * item):
            raise FileFormatError(f"{path}: tensor {name!r}: data_offsets {lo}..{hi} do not fit shape {shape} "
                                  f"of {dtype} in a file of {size} bytes")
        raw = np.frombuffer(data[lo:hi], dtype=_DTYPES[dtype]).reshape(shape)
        if dtype == "BF16":  # the top 16 bits of a float32
            arr = (raw.astype(np.uint32) << 16).view(np.float32)
        elif dtype.startswith("F"):
            arr = raw.astype(np.float64 if dtype == "F64" else np.float32)
        else:
            arr = np.array(raw)
        out[name] = arr
    return out


def read_sharded(folder: Path) -> dict[str, np.ndarray]:
    """A sharded checkpoint: ``model.safetensors.index.json`` names the shard of every tensor."""
    index = folder / "model.safetensors.index.json"
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise FileFormatError(f"{index}: not a safetensors index (needs a weight_map object): {exc}") from None
    if not isinstance(weight_map, dict) or not weight_map:
        raise FileFormatError(f"{index}: weight_map is empty or not an object")
    shards = sorted(set(weight_map.values()))
    out = {}
    for shard in shards:
        p = (folder / shard).resolve()
        if p.parent != folder.resolve():
            raise FileFormatError(f"{index}: shard {shard!r} lies outside the model folder")
        if not p.is_file():
            raise FileFormatError(f"{index}: shard {shard!r} is missing")
        out.update(read_safetensors(p))
    missing = [k for k in weight_map if k not in out]
    if missing:
        raise FileFormatError(f"{index}: tensors {', '.join(missing[:4])} are not in their shards")
    return out


def read_gguf(path) -> tuple[dict, object, object]:
    """The header of a GGUF file (needs the lm extra: transformers and gguf): ``(config,
    tokenizer, tensors)``, where ``tensors(names, change)`` reads the float32 weights of those
    Hugging Face names, one tensor at a time, each changed by ``change`` (a family's
    ``gguf_tensor``; :mod:`spikelm.lm.gguf_file`)."""
    path = Path(path)
    try:
        import gguf  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"{path}: reading GGUF files needs the lm extra (transformers, gguf): "
                          f"pip install 'spikelm[lm]' ({exc.name} is missing)") from None
    from spikelm.lm.gguf_file import read_header, read_tensors

    meta, cfg, tok = read_header(path)  # the file checked against its metadata first
    return cfg, tok, lambda names, change=None: read_tensors(path, names, meta, change)


def read_weights(path: Path) -> dict:
    """A safetensors file or a PyTorch pickle loaded with ``weights_only=True``."""
    path = Path(path)
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


#: the weight files of a Hugging Face folder, in the order they are looked for
FOLDER_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


def read_folder(folder: Path) -> tuple[dict, Path]:
    """The tensors of a Hugging Face folder and the file they came from: ``model.safetensors``,
    a sharded checkpoint (``model.safetensors.index.json``) or ``pytorch_model.bin``."""
    folder = Path(folder)
    if (folder / FOLDER_WEIGHTS[0]).is_file():
        return read_weights(folder / FOLDER_WEIGHTS[0]), folder / FOLDER_WEIGHTS[0]
    if (folder / FOLDER_WEIGHTS[1]).is_file():
        return read_sharded(folder), folder / FOLDER_WEIGHTS[1]
    if (folder / FOLDER_WEIGHTS[2]).is_file():
        return read_weights(folder / FOLDER_WEIGHTS[2]), folder / FOLDER_WEIGHTS[2]
    raise FileFormatError(f"{folder}: no {', '.join(FOLDER_WEIGHTS[:-1])} or {FOLDER_WEIGHTS[-1]}")


def read_config(folder: Path) -> dict:
    """``config.json`` of a model folder as a dict; a missing or damaged file is one line."""
    path = Path(folder) / "config.json"
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
