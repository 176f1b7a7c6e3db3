"""GGUF model files: checked, then read lean: the config and tokenizer through transformers'
metadata path, the weights one tensor at a time with gguf's memory-mapped reader.

transformers reads a GGUF model's metadata with gguf's reader and makes the config and the
tokenizer of it. Left to itself it lets bad files through in four ways: a truncated file raises
``struct.error`` from deep inside the reader; a name ending in ``.GGUF`` is taken for a torch
pickle; a ``head_count`` of 0 divides by zero; and a ``block_count`` that disagrees with the
tensors (or is missing: the config's default, 32 layers) builds layers whose weights it fills
at random, saying so in a warning. :func:`check` reads the metadata and the tensor directory
first (the reader maps the file, nothing is loaded) and refuses each of these in one line
naming the file and the field; :func:`read_header` then has transformers make the config and
the tokenizer through a private link named ``model.gguf`` (no model is built, no tensor read),
printing its other warnings instead of silencing them.

The weights do not go through transformers: its loader builds a torch model, dequantizes the
whole file into a state dict and copies it in (Qwen2.5-0.5B: 3.8 GiB at its peak for 2.5 GiB
of float32). :func:`read_tensors` dequantizes one tensor at a time from the mapped file
(``gguf.quants.dequantize``, what transformers calls), names it as transformers does (gguf's
table of llama.cpp names) and applies the same changes (each family's ``gguf_tensor``: Llama's
Q/K rows permuted back, GPT-2's Conv1D weights transposed, Gemma 2/3 norms less 1), so the
arrays equal transformers' parameters bit for bit (tests/test_lm_gguf.py).
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
from typing import NamedTuple

import numpy as np

from spikelm.errors import FileFormatError

__all__ = ["MAGIC", "check", "iter_tensors", "read_header", "read_tensors"]

class Stored(NamedTuple):
    """Where a tensor lies in a GGUF file: its type, the offset of its bytes, and the dtype and
    shape gguf's reader gives them (block types: uint8 rows of blocks)."""

    name: str
    tensor_type: object
    data_offset: int
    dtype: np.dtype
    shape: tuple


#: the key of :func:`check`'s metadata under which it keeps the file's tensor table
TENSORS = "spikelm.tensors"
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
    """The metadata of the GGUF file ``path`` (``{key: value}``), checked against its tensors;
    under :data:`TENSORS`, where its tensors lie (:class:`Stored` by name).

    Raises
    ------
    FileFormatError
        One line naming the file and the field: not a regular file, no GGUF magic, truncated or
        damaged (what the reader raises), no architecture, a size that is not a positive integer,
        a head count that does not divide the width, a ``block_count`` missing or other than the
        blocks its tensors hold.
    """
    return _check(path)[0]


def _check(path) -> tuple[dict, object]:
    """:func:`check`'s metadata and the gguf reader it was read with."""
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
        stored = {t.name: Stored(t.name, t.tensor_type, int(t.data_offset), t.data.dtype, tuple(t.data.shape))
                  for t in reader.tensors}
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
    meta[TENSORS] = stored  # gguf's reader takes 0.5 GiB and 20 s to parse Qwen2.5's header: once
    return meta, reader


@contextlib.contextmanager
def _reader_reused(path: Path, reader):
    """While open, gguf's ``GGUFReader`` asked for ``path`` (or a link to it) gives ``reader``,
    already parsed, instead of parsing the file again. transformers makes its config and its
    tokenizer each through a reader of its own (``from gguf import GGUFReader`` when called):
    two more parses of every metadata field (SmolLM2: 1.8 s each). Other paths get a fresh one."""
    import gguf

    made, target = gguf.GGUFReader, Path(path).resolve()

    def shared(p, *args, **kwargs):
        return reader if Path(p).resolve() == target else made(p, *args, **kwargs)

    gguf.GGUFReader = shared
    try:
        yield
    finally:
        gguf.GGUFReader = made


def read_header(path, tokenizer: bool = True) -> tuple[dict, dict, object]:
    """``(meta, config, tokenizer)`` of the GGUF file ``path``, after :func:`check`: its metadata,
    the Hugging Face config dict and the tokenizer transformers makes of it (metadata only: no
    tensor is read and no model is built; ``tokenizer=False``: None, and 0.3 GiB less at the
    peak for a vocabulary of 49k tokens).

    transformers is handed a link named ``model.gguf`` in a private folder (whatever the file's
    name and whatever lies beside it); its warnings are printed to stderr, one line each.
    """
    import transformers
    from transformers.utils import logging as hf_logging

    meta, reader = _check(path)
    path = Path(path)
    logger = logging.getLogger("transformers")
    caught = _Warnings()
    level, bars = logger.level, hf_logging.is_progress_bar_enabled()
    logger.setLevel(logging.WARNING)
    hf_logging.disable_default_handler()
    hf_logging.disable_progress_bar()
    logger.addHandler(caught)
    try:
        with tempfile.TemporaryDirectory(prefix="spikelm-gguf-") as tmp, \
                contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings(record=True) as python_warnings:
            warnings.simplefilter("always")
            os.symlink(path.resolve(), Path(tmp) / "model.gguf")
            with _reader_reused(path, reader):
                config = transformers.AutoConfig.from_pretrained(tmp, gguf_file="model.gguf").to_dict()
                tok = transformers.AutoTokenizer.from_pretrained(tmp, gguf_file="model.gguf") if tokenizer else None
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
    for message in caught.messages:
        print(f"spikelm: transformers: {message}", file=sys.stderr)
    return meta, config, tok


def read_tensors(path, names, meta: dict, change=None) -> dict:
    """``{name: array}`` of :func:`iter_tensors`: the float32 tensors of the file under ``names``."""
    return dict(iter_tensors(path, names, meta, change))


def iter_tensors(path, names, meta: dict, change=None):
    """Float32 tensors of the GGUF file ``path`` under the Hugging Face ``names`` asked for
    (``(name, array)`` pairs), dequantized one at a time from the memory-mapped file (every name
    is looked up before the first is yielded).

    ``meta``: the file's metadata (:func:`check`). Each name is found in gguf's own table of
    Hugging Face to llama.cpp names (what transformers' loader uses), and each tensor gets the
    changes transformers makes to it: ``change(arch, llama_cpp_name, array, meta)``, the
    family's :meth:`~spikelm.lm.families.registry.Family.gguf_tensor` (None: none), so the
    arrays equal the parameters of transformers' model bit for bit. Tensors of the file no name asks for are left
    unread (as transformers leaves them). A name the file lacks, or a tensor type gguf cannot
    dequantize, is refused in one line naming the file, the tensor and the type.
    """
    import gguf

    path = Path(path)
    arch = meta["general.architecture"]
    archs = {v: k for k, v in gguf.MODEL_ARCH_NAMES.items()}
    if arch not in archs:
        raise FileFormatError(f"{path}: general.architecture: {arch!r} is unknown to the gguf package "
                              f"{getattr(gguf, '__version__', '')}; its tensor names cannot be read")
    table = gguf.get_tensor_name_map(archs[arch], meta[f"{arch}.block_count"])
    stored = meta[TENSORS] if TENSORS in meta else check(path)[TENSORS]
    where, missing = {}, []
    for name in names:
        found = _gguf_name(table, name)
        if found in stored:
            where[name] = found
        else:
            missing.append(f"{name} ({found or 'no llama.cpp name'})")
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise FileFormatError(f"{path}: lacks tensors for {shown}")
    with open(path, "rb") as f:
        for name, found in where.items():
            tensor = stored[found]
            kind = getattr(tensor.tensor_type, "name", str(tensor.tensor_type))
            try:
                values = _dequantized(_raw(f, path, tensor), tensor.tensor_type)
            except NotImplementedError:
                raise FileFormatError(f"{path}: tensor {found}: type {kind} cannot be dequantized by the gguf "
                                      "package (F32, F16, BF16 and the block types it implements can)") from None
            values = np.asarray(values, dtype=np.float32)
            if change is not None:
                values = change(arch, found, values, meta)
            # C order (a transposed view is copied); the memory is the process's own, not the file's
            yield name, np.ascontiguousarray(values)
            del values


def _raw(f, path, tensor) -> np.ndarray:
    """The stored bytes of ``tensor`` read from the open file ``f`` (an array of the reader's dtype
    and shape), not through the reader's memory map: the mapped pages of the whole file would
    otherwise count in the process's memory as the tensors are read (Qwen2.5-0.5B: 0.5 GiB)."""
    nbytes = int(np.prod(tensor.shape)) * tensor.dtype.itemsize
    f.seek(tensor.data_offset)
    raw = np.fromfile(f, dtype=np.uint8, count=nbytes)
    if raw.size != nbytes:
        raise FileFormatError(f"{path}: tensor {tensor.name}: {raw.size} of its {nbytes} bytes in the file")
    return raw.view(tensor.dtype).reshape(tensor.shape)


#: bytes of quantized blocks dequantized at once: gguf's NumPy dequantizers make several float32
#: temporaries the size of their input (a 136M-value Q6_K embedding: 1.8 GiB at once)
CHUNK_BYTES = 4 * 2**20


def _dequantized(data: np.ndarray, qtype) -> np.ndarray:
    """``gguf.quants.dequantize`` of a tensor's raw data, in chunks of whole rows for block types
    (blocks never straddle rows, and each is dequantized on its own: the same values)."""
    import gguf

    if qtype in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16) or data.ndim < 2 \
            or data.nbytes <= CHUNK_BYTES:
        return gguf.quants.dequantize(data, qtype)
    rows = data.reshape(-1, data.shape[-1])
    step = max(1, CHUNK_BYTES // rows.shape[1])
    first = gguf.quants.dequantize(rows[:step], qtype)
    out = np.empty((rows.shape[0], first.shape[1]), np.float32)
    out[:step] = first
    del first
    for a in range(step, rows.shape[0], step):
        out[a : a + step] = gguf.quants.dequantize(rows[a : a + step], qtype)
    return out if data.ndim == 2 else out.reshape(*data.shape[:-1], out.shape[1])


def _gguf_name(table, name: str) -> str | None:
    """The llama.cpp name of the Hugging Face parameter ``name`` (``model.layers.0.self_attn.q_proj.weight``
    -> ``blk.0.attn_q.weight``), from gguf's table; like transformers' loader, leading module
    names (``model.``) are tried off too."""
    base, dot, suffix = name.rpartition(".")
    if suffix not in ("weight", "bias"):
        base, dot, suffix = name, "", ""
    parts = base.split(".")
    for i in range(len(parts)):
        found = table.get_name(".".join(parts[i:]))
        if found is not None:
            return found + dot + suffix
    return None


class _Warnings(logging.Handler):
    """The first line of every warning transformers logs while it reads a file."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        text = _first_line(record.getMessage())
        if text not in self.messages:
            self.messages.append(text)

