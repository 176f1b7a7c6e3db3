"""Open a model the way the command line names it: the shipped demo, a model folder (of any
registered family, :mod:`spikelm.lm.families`), or a GGUF file; with its tokenizer and a
calibration text.

Used by ``spikelm lm ...`` and by corpus evaluation on Dask workers, so both convert the same
model the same way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from spikelm.errors import ConfigError, FileFormatError
from spikelm.lm.quantize import MIN_CALIBRATION_TOKENS

#: Files a tokenizer is read from: spikelm's character tokenizer or a Hugging Face one.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json + merges.txt", "tokenizer.model")
CALIBRATION_CHARS = 4000


class HFTokenizer:
    """A Hugging Face tokenizer behind the small interface the commands use."""

    def __init__(self, tok):
        self.tok = tok

    def encode(self, text):
        return np.array(self.tok.encode(text, add_special_tokens=False), dtype=np.int64)

    def decode(self, ids):
        return self.tok.decode([int(i) for i in ids])

    def clean(self, text):
        return text


def tokenizer(folder: Path):
    """spikelm's character tokenizer or the folder's Hugging Face tokenizer; a folder without
    one is refused, naming the files looked for."""
    from spikelm.lm.tokenizer import CharTokenizer

    path = folder / "tokenizer.json"
    if path.is_file():
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise FileFormatError(f"{path}: not valid JSON ({exc})") from None
        if isinstance(raw, dict) and raw.get("type") == "char":
            return CharTokenizer.load(path)
    present = [name for name in TOKENIZER_FILES if all((folder / f).exists() for f in name.split(" + "))]
    if not present:
        # without this check transformers may hand back a tokenizer that maps every prompt to
        # no tokens at all, and the user reads "--prompt: empty"
        raise FileFormatError(f"{folder}: no tokenizer in the model folder; looked for "
                              f"{', '.join(TOKENIZER_FILES)}")
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise ConfigError(f"{folder}: {present[0]} is a Hugging Face tokenizer, which needs transformers; "
                          "install the lm extra: pip install 'spikelm[lm]'") from None
    try:
        return HFTokenizer(AutoTokenizer.from_pretrained(str(folder), local_files_only=True))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FileFormatError(f"{folder}: {present[0]} could not be read as a Hugging Face tokenizer: "
                              f"{first}") from None


def encode_loose(tok, text):
    """Token ids of ``text`` with characters outside a character tokenizer's vocabulary dropped."""
    return tok.encode(tok.clean(text))


def read_text(path, option: str) -> str:
    """The UTF-8 text of ``path`` (:func:`spikelm.io.textfile.read_text`: a directory, a named pipe or
    an undecodable file is one line naming ``option`` and the file)."""
    from spikelm.io.textfile import read_text as guarded

    return guarded(path, f"a UTF-8 text file ({option})")


def read_calibration(path) -> str:
    """The text of ``--calibration FILE``: UTF-8 and not empty."""
    text = read_text(path, "--calibration")
    if not text.strip():
        raise ConfigError(f"--calibration {path}: the file is empty; give a text to calibrate on")
    return text


def sample_text(folder: Path | None, name: str) -> str | None:
    """``calibration.txt`` / ``heldout.txt`` of a model folder, if it has one."""
    if folder is None or not os.path.lexists(folder / name):
        return None
    return read_text(folder / name, f"the model's {name}")


def model_files(model) -> dict:
    """The files a ``--model`` value reads, named for messages (what no output may replace):
    every file of a model folder (the shipped demo's for None), or the GGUF file."""
    from spikelm.lm.convert import demo_model_path

    path = demo_model_path() if model is None else Path(model)
    if path.is_dir():
        return {f"model file {p.name}": p for p in sorted(path.iterdir()) if p.is_file()}
    return {"model file": path}


def resolve(model) -> Path | None:
    """The model path a user gave (None: the shipped demo); checked to be a folder or a .gguf file."""
    if model is None:
        return None
    p = Path(model)
    if p.suffix.lower() == ".gguf":
        if not p.is_file():
            raise ConfigError(f"--model {model}: no such GGUF file")
        return p
    if not p.is_dir() or not (p / "config.json").is_file():
        raise ConfigError(f"--model {model}: not a model folder (config.json missing) or a .gguf file")
    return p


def open_for_cli(model, bits=None, coding=None, context=None, weight_bits=None, calibration_text=None,
                 clamp=None, methods=None, budget=None, keep_float=True, before_convert=None, calibration=None):
    """``(SpikingLM, tokenizer, label)`` for a ``--model`` value (None: the shipped demo);
    ``clamp``, ``methods``, ``budget``, ``keep_float``: :func:`spikelm.lm.convert`'s.
    ``before_convert(loaded, tokenizer)``: called once the float model is read, before it is
    converted (e.g. :func:`spikelm.lm.evaluate.float_scores`, with ``keep_float=False``: the
    float model and the spiking one are then never held together).

    Calibration: ``calibration_text`` if given, else the folder's ``calibration.txt`` (first
    4,000 characters), else Python's reference topics (:mod:`spikelm.lm.texts`). Or
    ``calibration``: the :class:`~spikelm.lm.calibration.Calibration` of an earlier conversion
    of the same model (``snn.calibration``), reused without a float pass (a Llama-family model:
    :func:`spikelm.lm.convert`); not with ``calibration_text``.
    """
    from spikelm.lm import progress
    from spikelm.lm.calibration import check_type
    from spikelm.lm.codings import DEFAULT
    from spikelm.lm.convert import convert, demo_model_path
    from spikelm.lm.load import open_model

    coding = coding or DEFAULT
    path = resolve(model)
    folder = demo_model_path() if path is None else (path if path.is_dir() else None)
    with progress.phase(f"load {path or 'the demo model'}"):
        if path is not None and path.suffix.lower() == ".gguf":
            loaded = open_model(path, context=context)
            tok = HFTokenizer(loaded.tokenizer)
        else:
            tok = tokenizer(folder)
            loaded = open_model(folder, context=context)
    if calibration is not None:
        check_type(calibration)
        if calibration_text is not None:
            raise ConfigError("open_for_cli: calibration_text and calibration (a Calibration) both given; give one")
        ids, doing = calibration, f"reuse a calibration on {calibration.ids.size:,} tokens"
    else:
        ids = calibration_ids(tok, folder, calibration_text)
        doing = f"calibrate on {ids.size:,} tokens"
    if before_convert is not None:
        before_convert(loaded, tok)
    with progress.phase(f"convert ({doing}, quantize, build)"):
        snn = convert(loaded, calibration=ids, bits=bits, coding=coding, weight_bits=weight_bits, clamp=clamp,
                      methods=methods, budget=budget, keep_float=keep_float)
    return snn, tok, str(path or folder)


def calibration_ids(tok, folder, calibration_text=None) -> np.ndarray:
    """The calibration token ids :func:`open_for_cli` converts with (see there); too few usable
    tokens are refused, naming the text."""
    from spikelm.lm import texts

    calib, source = calibration_text, "calibration_text"
    if calib is None:
        calib, source = sample_text(folder, "calibration.txt"), folder / "calibration.txt" if folder else None
        calib = calib[:CALIBRATION_CHARS] if calib is not None else None
    if calib is None:
        calib, source = texts.calibration_text(), "the built-in calibration text"
    ids = encode_loose(tok, calib)
    if ids.size < MIN_CALIBRATION_TOKENS:
        # a random fallback would convert with scales of noise, and the docs promise a refusal
        raise FileFormatError(f"{source}: {ids.size} usable tokens (characters the tokenizer knows); a calibration "
                              f"text needs at least {MIN_CALIBRATION_TOKENS}")
    return ids
