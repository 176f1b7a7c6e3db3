"""A state dict checked against what a family's config needs, whatever the family.

Each family describes its tensors with a :class:`TensorLayout` (names and shapes, the prefix of
its body, the name of its block list, the head's key, buffers to drop); :func:`check_tensors`
turns any state dict (torch tensors or arrays) into :class:`Params` under those names, or
refuses it in one line naming the key: missing, unexpected, the wrong shape, NaN or infinite.

:class:`Params` keeps each tensor in the narrowest float type that holds it exactly (float32
for float32, float16 and bfloat16 sources; float64 for float64 ones) and hands out float64
copies: every arithmetic stays float64 and gives the same bits, while the model occupies half
the memory (SmolLM2: 0.5 instead of 1.0 GiB; Qwen2.5-0.5B: 2.5 instead of 5 GiB). Code that
needs only some rows of a large tensor reads them from :meth:`Params.stored` (no whole copy).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from dataclasses import dataclass
from collections.abc import Callable, Mapping

import numpy as np

from spikelm.errors import ConfigError, FileFormatError
from spikelm.lm.torch_optional import torch


@dataclass(frozen=True)
class TensorLayout:
    """Where a family keeps its tensors (see the module docstring).

    shapes: ``cfg -> {name: shape}`` for every tensor the config needs (the head's key only when
    untied); prefix: the body's name prefix (``"model."``), given to the keys of a bare body
    module; blocks: the block list under it (``"layers"``: keys ``model.layers.N.``);
    layers_field: the config field that counts them, for messages; head: the output head's key,
    outside the prefix; ignored: key suffixes of buffers that hold no parameters.
    """

    shapes: Callable
    prefix: str
    blocks: str
    layers_field: str
    head: str = "lm_head.weight"
    ignored: tuple = ()


class Params(Mapping):
    """Float parameters by name, stored in their source precision and read as float64.

    ``params[name]`` is a float64 array (a fresh copy of a float32 tensor; the array itself
    for a float64 one): callers compute as before, bit for bit. ``stored(name)`` is the array
    as held (float32 or float64), for reading a few rows of a large table without copying it.
    """

    def __init__(self, arrays: dict):
        self._arrays = dict(arrays)
        #: set by a caller that needs no float model after conversion (:func:`spikelm.lm.convert`'s
        #: ``keep_float=False``): a builder may then drop each weight once it is folded (:func:`release`)
        self.releasing = False

    def __getitem__(self, name) -> np.ndarray:
        a = self._arrays[name]
        return a if a.dtype == np.float64 else a.astype(np.float64)

    def __iter__(self):
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def stored(self, name) -> np.ndarray:
        return self._arrays[name]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._arrays.values())


def release(params, name) -> None:
    """Drop the float tensor ``name`` from ``params`` once its integer codes exist, where the caller
    asked for it (:attr:`Params.releasing`); any other mapping keeps it."""
    if isinstance(params, Params) and params.releasing:
        params._arrays.pop(name, None)


def _libc():
    """The C library through ctypes, or None."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def return_freed_memory() -> None:
    """Hand the memory freed so far back to the system. glibc keeps freed blocks below its mmap
    threshold (which rises to 32 MiB once a large block is freed) in its heap: after a model's
    float tensors are dropped, SmolLM2's process stays 0.6 GiB above what it holds until
    ``malloc_trim``. A no-op where the C library has no ``malloc_trim`` (macOS, musl)."""
    import gc

    gc.collect()
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


#: growth of the resident memory over a lean block above which its end hands memory back
_TRIM_ABOVE = 64 * 2**20


def _rss() -> int:
    """This process's resident memory in bytes (Linux; 0 elsewhere, where lean_heap does nothing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


#: glibc's mallopt parameter, and the thresholds used while converting and after (32 MiB: the
#: most glibc's own sliding threshold reaches, where it stands once a model's tensors were freed)
_M_MMAP_THRESHOLD, _CONVERTING, _AFTER = -3, 2**20, 32 * 2**20
_lean = {"depth": 0, "rss": 0}
_lean_lock = threading.Lock()


@contextlib.contextmanager
def lean_heap():
    """Arrays of 1 MiB or more come from the system and go back to it when freed, in this block.

    Conversion makes many temporaries of 1-30 MiB (a layer's float64 weights and activations, its
    codes before they are packed); glibc serves those from its heap once its sliding mmap
    threshold has risen, and a freed block there stays in the process: SmolLM2's conversion
    peaked at 1.63 GiB with 0.6 GiB of it freed but held, 1.29 GiB in this block. On leaving, the
    threshold is left fixed at 32 MiB and the heap trimmed. Nested blocks act as one; a no-op
    where the C library has no ``mallopt`` (macOS, musl)."""
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        yield
        return
    with _lean_lock:
        _lean["depth"] += 1
        if _lean["depth"] == 1:
            libc.mallopt(_M_MMAP_THRESHOLD, _CONVERTING)
            _lean["rss"] = _rss()
    try:
        yield
    finally:
        with _lean_lock:
            _lean["depth"] -= 1
            last = _lean["depth"] == 0
            if last:
                libc.mallopt(_M_MMAP_THRESHOLD, _AFTER)
        # a small model leaves little to hand back, and a collection plus a trim cost a large
        # process (a test run) up to a second each
        if last and _rss() - _lean["rss"] >= _TRIM_ABOVE:
            return_freed_memory()


def stored(params, name) -> np.ndarray:
    """The array of ``name`` as ``params`` holds it (float32 or float64) without a float64 copy;
    any mapping of arrays works (a plain dict: its value)."""
    return params.stored(name) if isinstance(params, Params) else np.asarray(params[name])


#: source dtypes kept as float32 (float32 holds each of their values exactly)
_NARROW = (np.float32, np.float16)


def to_numpy(value, source: str, key: str) -> np.ndarray:
    """A tensor or array as NumPy, float32 when its values are float32, float16 or bfloat16
    (exact), else float64; anything else is a FileFormatError naming the key."""
    if torch is not None and isinstance(value, torch.Tensor):
        narrow = value.dtype in (torch.float32, torch.float16, torch.bfloat16)
        # a copy: parameters of a module the caller may go on training are not shared
        return value.detach().to("cpu", torch.float32 if narrow else torch.float64, copy=True).numpy()
    try:
        arr = np.asarray(value)
        return arr.astype(np.float32 if arr.dtype in _NARROW else np.float64, copy=False)
    except (TypeError, ValueError):
        raise FileFormatError(f"{source}: {key} is a {type(value).__name__}, not a tensor") from None


def check_tensors(state, layout: TensorLayout, cfg, source: str) -> Params:
    """The tensors of ``state`` (:class:`Params`: float64 as read) under the canonical names of ``layout``, for config ``cfg``.

    Keys ending in ``layout.ignored`` are dropped; a dict whose keys lack the prefix (a bare
    body module's) gets it; a tied head's copy is checked and dropped. ``cfg`` offers
    ``n_layer``, ``vocab_size``, ``n_embd`` and ``tie_word_embeddings``.
    """
    if not isinstance(state, dict):
        raise FileFormatError(f"{source}: expected a state dict (name -> tensor), got {type(state).__name__}")
    state = {k: v for k, v in state.items() if not k.endswith(layout.ignored)}
    prefix = layout.prefix
    if state and not any(k.startswith(prefix) for k in state):
        state = {(k if k == layout.head else prefix + k): v for k, v in state.items()}
    _check_layer_count(cfg, state, layout, source)
    shapes = layout.shapes(cfg)
    if cfg.tie_word_embeddings and layout.head in state:
        shapes[layout.head] = (cfg.vocab_size, cfg.n_embd)  # tied copy, checked below
    missing = [k for k in shapes if k not in state]
    extra = [k for k in state if k not in shapes]
    if missing:
        raise ConfigError(f"{source}: missing keys {', '.join(missing[:6])}" + (" ..." if len(missing) > 6 else ""))
    if extra:
        raise ConfigError(f"{source}: unexpected keys {', '.join(extra[:6])}" + (" ..." if len(extra) > 6 else ""))
    params = {}
    for key, shape in shapes.items():
        arr = to_numpy(state[key], source, key)
        if arr.shape != shape:
            raise ConfigError(f"{source}: {key} has shape {tuple(arr.shape)}; the config needs {shape}")
        if not np.all(np.isfinite(arr)):
            raise ConfigError(f"{source}: {key} holds NaN or infinite values")
        params[key] = arr
        state[key] = None  # a converted copy is held once (the caller's own dict is not touched)
    if cfg.tie_word_embeddings:
        params.pop(layout.head, None)
    return Params(params)


def _check_layer_count(cfg, state: dict, layout: TensorLayout, source: str) -> None:
    """The config's layer count against the blocks the weights hold (``<prefix><blocks>.N``),
    before listing every layer's names: a config claiming a billion layers would otherwise take
    the machine's memory first."""
    index = re.compile(re.escape(layout.prefix + layout.blocks) + r"\.(\d+)\.")
    blocks = {m.group(1) for k in state if isinstance(k, str) and (m := index.match(k))}
    if cfg.n_layer != len(blocks):
        raise ConfigError(f"{source}: the config's {layout.layers_field}={cfg.n_layer}, but the weights hold "
                          f"{len(blocks)} blocks ({layout.prefix}{layout.blocks}.N)")
