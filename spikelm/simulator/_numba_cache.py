"""Keep Numba's on-disk cache honest across modules.

Numba validates a cached function against the modification time of the file that defines
it, not of the files whose functions it calls (and inlines). The compiled time loop in
``numba_backend.py`` calls the kernels of ``numba_kernels.py``, ``rng.py`` and the
plasticity learn phase, so an edit there would leave a stale loop in the cache. On import,
:func:`invalidate_if_changed` hashes those sources and, when the hash differs from the one
stamped beside the cache, removes the dependent module's cache files so they are rebuilt.
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
