"""Character-level tokenizer of the demo model: newline plus printable ASCII (96 tokens)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from spikelm.errors import ConfigError, FileFormatError

DEFAULT_CHARS = "\n" + "".join(chr(c) for c in range(32, 127))


class CharTokenizer:
    """Maps each character to one token id; ``chars[i]`` is the text of token ``i``."""

    def __init__(self, chars: str = DEFAULT_CHARS):
        if len(set(chars)) != len(chars) or not chars:
            raise ConfigError("tokenizer: chars must be a non-empty string of distinct characters")
        self.chars = chars
        self._index = {c: i for i, c in enumerate(chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def clean(self, text: str) -> str:
        """The text with tabs as spaces and other characters outside the vocabulary dropped."""
        return "".join(c for c in text.replace("\t", "    ") if c in self._index)

    def encode(self, text: str) -> np.ndarray:
        bad = sorted({c for c in text if c not in self._index})
        if bad:
            raise ConfigError(
                f"prompt: characters {''.join(bad)!r} are not in the tokenizer's vocabulary "
                "(newline and printable ASCII)"
            )
        return np.array([self._index[c] for c in text], dtype=np.int64)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"type": "char", "chars": self.chars}) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "CharTokenizer":
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise FileFormatError(f"{path}: not a readable tokenizer JSON file ({exc})") from None
        if not isinstance(d, dict) or d.get("type") != "char" or not isinstance(d.get("chars"), str):
            raise FileFormatError(f"{path}: expected {{'type': 'char', 'chars': ...}}")
        return cls(d["chars"])
