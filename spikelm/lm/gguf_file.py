"""GGUF model files: checked before transformers reads them, then read by it without guesswork.

transformers reads a GGUF model with gguf's reader and builds the model from the metadata.
Left to itself it lets bad files through in four ways: a truncated file raises
``struct.error`` from deep inside the reader; a name ending in ``.GGUF`` is taken for a torch
pickle; a ``head_count`` of 0 divides by zero; and a ``block_count`` that disagrees with the
tensors (or is missing: the config's default, 32 layers) builds layers whose weights it fills
at random, saying so in a warning. :func:`check` reads the metadata and the tensor directory
first (the reader maps the file, nothing is loaded) and refuses each of these in one line
naming the file and the field; :func:`read` then loads through a private link named
``model.gguf``, refuses any weight transformers did not find in the file (or found of another
shape, or could not place), and prints transformers' other warnings instead of silencing them.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path

from spikelm.errors import FileFormatError

__all__ = ["MAGIC", "check", "read"]

#: The 4 bytes every GGUF file starts with.
MAGIC = b"GGUF"
WHAT = "a GGUF model file"
#: Metadata a model's shape comes from (``<arch>.<key>``): each a positive integer where present.
SIZES = ("context_length", "embedding_length", "feed_forward_length", "attention.head_count",
         "attention.head_count_kv", "vocab_size")
_BLOCK = re.compile(r"blk\.(\d+)\.")


def _first_line(err) -> str:
    from spikelm.io.hdf5 import first_line

    return first_line(err)


def check(path) -> dict:
    """The metadata of the GGUF file ``path`` (``{key: value}``), checked against its tensors.

    Raises
    ------
    FileFormatError
        One line naming the file and the field: not a regular file, no GGUF magic, truncated or
        damaged (what the reader raises), no architecture, a size that is not a positive integer,
        a head count that does not divide the width, a ``block_count`` missing or other than the
        blocks its tensors hold.
    """
    from spikelm.io.hdf5 import regular_file

    path = regular_file(path, WHAT)
    with open(path, "rb") as f:
        head = f.read(4)
    if head != MAGIC:
        raise FileFormatError(f"{path}: not a GGUF file (it does not start with {MAGIC!r}); expected {WHAT}")
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path, "r")
        meta = {k: f.contents() for k, f in reader.fields.items()}
        names = [t.name for t in reader.tensors]
    except Exception as err:  # the reader's struct.error, ValueError, IndexError ... on a damaged file
        raise FileFormatError(f"{path}: a damaged or truncated GGUF file ({_first_line(err)})") from None
    arch = meta.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        raise FileFormatError(f"{path}: general.architecture: missing; a GGUF model names its architecture")
    for key in SIZES:
        value = meta.get(f"{arch}.{key}")
        values = value if isinstance(value, list) else [value]
        if value is not None and not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
            raise FileFormatError(f"{path}: {arch}.{key}: {value!r}; expected a positive integer")
    heads, width = meta.get(f"{arch}.attention.head_count"), meta.get(f"{arch}.embedding_length")
    kv = meta.get(f"{arch}.attention.head_count_kv")
    if isinstance(heads, int) and isinstance(width, int) and f"{arch}.attention.key_length" not in meta \
            and width % heads:
        raise FileFormatError(f"{path}: {arch}.attention.head_count: {heads} does not divide "
                              f"{arch}.embedding_length {width}")
    if isinstance(heads, int) and isinstance(kv, int) and heads % kv:
        raise FileFormatError(f"{path}: {arch}.attention.head_count_kv: {kv} does not divide "
                              f"{arch}.attention.head_count {heads}")
    blocks = sorted({int(m.group(1)) for n in names if (m := _BLOCK.match(n))})
    count = meta.get(f"{arch}.block_count")
    if count is None:
        raise FileFormatError(f"{path}: {arch}.block_count: missing (its tensors hold {len(blocks)} blocks); "
                              "transformers would build its default number of layers and fill the rest at random")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise FileFormatError(f"{path}: {arch}.block_count: {count!r}; expected a positive integer")
    if blocks != list(range(count)):
        held = f"blocks {blocks[0]}..{blocks[-1]} ({len(blocks)})" if blocks else "no blocks"
        raise FileFormatError(f"{path}: {arch}.block_count: {count}, but its tensors hold {held}; the layers "
                              "without tensors would be filled at random")
    return meta


def read(path) -> tuple:
    """``(model, tokenizer)`` of the GGUF file ``path`` through transformers, after :func:`check`.

    transformers is handed a link named ``model.gguf`` in a private folder (whatever the file's
    name and whatever lies beside it); a weight it did not find in the file is refused (it
    would be random), and its other warnings are printed to stderr.
    """
    import transformers
    from transformers.utils import logging as hf_logging

    check(path)
    path = Path(path)
    logger = logging.getLogger("transformers")
    caught = _Warnings()
    level, bars = logger.level, hf_logging.is_progress_bar_enabled()
    logger.setLevel(logging.WARNING)
    hf_logging.disable_default_handler()
    hf_logging.disable_progress_bar()
    logger.addHandler(caught)
    try:
        # its progress bar (a bare tqdm) and Python warnings are taken too: warnings are printed
        # below, one line each, after the file was found whole
        with tempfile.TemporaryDirectory(prefix="spikelm-gguf-") as tmp, \
                contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings(record=True) as python_warnings:
            warnings.simplefilter("always")
            os.symlink(path.resolve(), Path(tmp) / "model.gguf")
            model, info = transformers.AutoModelForCausalLM.from_pretrained(tmp, gguf_file="model.gguf",
                                                                            output_loading_info=True)
            tok = transformers.AutoTokenizer.from_pretrained(tmp, gguf_file="model.gguf")
        for w in python_warnings:
            caught.emit(logging.LogRecord("python", logging.WARNING, "", 0, str(w.message), None, None))
    except Exception as err:  # transformers' own refusals, whatever their type: the file is what it cannot read
        raise FileFormatError(f"{path}: not a GGUF model transformers can read ({_first_line(err)})") from None
    finally:
        logger.removeHandler(caught)
        hf_logging.enable_default_handler()
        if bars:
            hf_logging.enable_progress_bar()
        logger.setLevel(level)
    for key, says in (("missing_keys", "lacks tensors for"), ("unexpected_keys", "holds tensors no layer uses:"),
                      ("mismatched_keys", "holds tensors of other shapes for"), ("error_msgs", "could not be loaded:")):
        found = [str(k) for k in info.get(key) or ()]
        if found:
            shown = ", ".join(sorted(found)[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
            raise FileFormatError(f"{path}: {says} {shown} (transformers would fill what is missing at random)")
    for message in caught.messages:
        print(f"spikelm: transformers: {message}", file=sys.stderr)
    return model, tok


class _Warnings(logging.Handler):
    """The first line of every warning transformers logs while it reads a file."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        text = _first_line(record.getMessage())
        if text not in self.messages:
            self.messages.append(text)

