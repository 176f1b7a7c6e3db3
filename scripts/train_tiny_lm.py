"""Train spikelm's demo language model (a ~1M-parameter character-level GPT).

Training text: the docstrings of the Python standard library of the interpreter that runs
this script (every Python install has them; no download). Docstrings are split into train
and held-out sets by a hash of their text; the held-out text is written next to the model
(``heldout.txt``) so that perplexities can be measured again later.

    python scripts/train_tiny_lm.py --out spikelm/data --steps 1500 --batch 16 --threads 1

Writes ``model.safetensors``, ``config.json``, ``tokenizer.json``, ``heldout.txt``,
``calibration.txt`` (the start of the training text) and ``train_log.json`` into ``--out``.
The shipped model: ``--steps 1500 --batch 16 --threads 1`` (about 11 minutes on an idle core).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import math
import sysconfig
import time
from pathlib import Path

import numpy as np
import torch

from spikelm.lm import GPTConfig, TinyGPT
from spikelm.lm.tokenizer import CharTokenizer


def stdlib_docstrings(max_files: int | None = None) -> list[str]:
    """Docstrings of modules, classes and functions of the standard library, in path order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py") if "test" not in p.parts and "site-packages" not in p.parts)
    docs = []
    for path in files[:max_files]:
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) >= 40:
                    docs.append(doc)
    return docs


def split(docs: list[str], tok: CharTokenizer, heldout_share: float = 0.02):
    train, held = [], []
    for doc in docs:
        h = int(hashlib.sha1(doc.encode()).hexdigest()[:8], 16) / 2**32
        (held if h < heldout_share else train).append(tok.clean(doc) + "\n\n")
    return "".join(train), "".join(held)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="spikelm/data")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--heldout-chars", type=int, default=20000)
    ap.add_argument("--calibration-chars", type=int, default=4000)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    tok = CharTokenizer()
    train_text, held_text = split(stdlib_docstrings(), tok)
    held_text = held_text[: args.heldout_chars]
    data = torch.from_numpy(tok.encode(train_text))
    held = torch.from_numpy(tok.encode(held_text))
    cfg = GPTConfig(vocab_size=tok.vocab_size, n_positions=128, n_embd=144, n_layer=4, n_head=4)
    model = TinyGPT(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"train chars {len(data):,}  held-out chars {len(held):,}  parameters {n_params:,}")

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.98))
    L = cfg.n_positions
    t0 = time.time()
    log = []
    for step in range(args.steps):
        lr = args.lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for group in opt.param_groups:
            group["lr"] = lr
        starts = rng.integers(0, len(data) - L - 1, size=args.batch)
        x = torch.stack([data[s : s + L] for s in starts])
        y = torch.stack([data[s + 1 : s + L + 1] for s in starts])
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg.vocab_size), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss {loss.item():.3f}  {time.time() - t0:6.0f} s", flush=True)
            log.append({"step": step, "loss": round(loss.item(), 4), "seconds": round(time.time() - t0, 1)})

    model.eval()
    with torch.no_grad():
        nll, n = 0.0, 0
        for s in range(0, len(held) - 1, L):
            chunk = held[s : s + L + 1]
            if len(chunk) < 2:
                break
            out = model(chunk[:-1][None])[0]
            nll += torch.nn.functional.cross_entropy(out, chunk[1:], reduction="sum").item()
            n += len(chunk) - 1
    print(f"held-out perplexity {math.exp(nll / n):.3f} per character")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1) + "\n")
    tok.save(out / "tokenizer.json")
    (out / "heldout.txt").write_text(held_text)
    # calibration text for the activation scales: the start of the training text
    (out / "calibration.txt").write_text(train_text[: args.calibration_chars])
    (out / "train_log.json").write_text(
        json.dumps({"args": vars(args), "parameters": n_params, "train_chars": len(data),
                    "heldout_perplexity": math.exp(nll / n), "log": log}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
