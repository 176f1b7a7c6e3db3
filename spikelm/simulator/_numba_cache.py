"""Keep Numba's on-disk cache honest across modules.

Numba validates a cached function against the modification time of the file that defines
it, not of the files whose functions it calls (and inlines), nor of the globals it freezes
(a model's constant index ``C``). So a kernel of ``simulator/kernels/`` is checked against its
model's file, and the learn phase against the plasticity tables: on import,
:func:`invalidate_if_changed` hashes those sources and, when the hash differs from the one
stamped beside the cache, removes the dependent module's cache files so they are rebuilt.
(The time loop itself is a generated module named by a hash of all it compiles in:
:mod:`spikelm.simulator.compile`, which also uses :func:`cache_dir`.)
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def invalidate_if_changed(module_file: str, dependencies: list[str]) -> bool:
    """Drop ``module_file``'s Numba cache if any dependency changed; return True if dropped."""
    src = Path(module_file)
    cache_dir = Path(os.environ["NUMBA_CACHE_DIR"]) if os.environ.get("NUMBA_CACHE_DIR") else src.parent / "__pycache__"
    h = hashlib.sha256()
    for dep in dependencies:
        try:
            h.update(Path(dep).read_bytes())
        except OSError:
            h.update(dep.encode())
    digest = h.hexdigest()
    stamp = cache_dir / f"{src.stem}.deps-sha256"
    try:
        if stamp.read_text() == digest:
            return False
    except OSError:
        pass
    dropped = False
    try:
        for f in cache_dir.glob(f"{src.stem}.*"):
            if f.suffix in (".nbi", ".nbc"):
                f.unlink()
                dropped = True
        cache_dir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(digest)
    except OSError:  # a read-only install: Numba then compiles in memory anyway
        pass
    return dropped


def cache_dir() -> Path:
    """A folder for generated compiled-loop modules (created; the first writable candidate).

    ``$SPIKELM_CACHE_DIR``, else ``$XDG_CACHE_HOME/spikelm``, else ``~/.cache/spikelm``, else
    the system's temporary folder.
    """
    import tempfile

    env = os.environ.get("SPIKELM_CACHE_DIR")
    xdg = os.environ.get("XDG_CACHE_HOME")
    candidates = [Path(env)] if env else []
    candidates += [Path(xdg) / "spikelm"] if xdg else []
    candidates += [Path.home() / ".cache" / "spikelm", Path(tempfile.gettempdir()) / f"spikelm-{os.getuid()}"]
    for c in candidates:
        try:
            c.mkdir(parents=True, exist_ok=True)
            if os.access(c, os.W_OK):
                return c
        except OSError:
            continue
    raise OSError("no writable cache folder for spikelm's compiled loop; set SPIKELM_CACHE_DIR")
