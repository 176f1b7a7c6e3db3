"""Texts every Python install has, for calibration and evaluation without downloads.

- :func:`calibration_text`: the second half (by topic name) of Python's own reference topics
  (``pydoc_data.topics``), 8,000 characters by default;
- :func:`heldout_text`: the first half of the same topics (English prose about Python), the
  held-out text the Llama-family figures of docs/lm.md are measured on (20,000 characters);
- :func:`other_domain_text`: the GNU GPL version 3 (``/usr/share/common-licenses/GPL-3`` on
  Debian-family systems), a text of another domain, when the file exists.
"""

from __future__ import annotations

from pathlib import Path

GPL3 = Path("/usr/share/common-licenses/GPL-3")


def _topics(first_half: bool) -> str:
    from pydoc_data.topics import topics

    keys = sorted(topics)
    half = len(keys) // 2
    return "".join(topics[k] for k in (keys[:half] if first_half else keys[half:]))


def calibration_text(chars: int = 8000) -> str:
    return _topics(False)[:chars]


def heldout_text(chars: int = 20000) -> str:
    return _topics(True)[:chars]


def other_domain_text(chars: int = 20000) -> str | None:
    try:
        return GPL3.read_text(encoding="utf-8")[:chars]
    except OSError:
        return None
