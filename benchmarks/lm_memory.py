"""Resident memory of a converted LM, phase by phase, as ``benchmarks.lm_llama --speed-only`` runs it:
``python -m benchmarks.lm_memory --model PATH_OR_GGUF [--tokens 64] [--threads 1,2]``.

Prints, after each phase, what the process holds (VmRSS), what that phase added, and the peak so
far (VmHWM), from ``/proc/self/status`` (Linux): numpy's large zeroed arrays are mapped pages
that count only once written, which ``tracemalloc`` does not see. Freed memory is handed back
(``malloc_trim``) before each reading, so "held" is what is alive. The phases: imports, the
conversion without the float model, an executor made, a greedy generation of ``--tokens``
tokens at each thread count (its result kept, then dropped), torch's float model (sharing the
SNN's embedding table) and its KV-cache decode of as many tokens.

Linux only (``/proc``). Two threads on a machine (or a ``taskset``) with one core give the right
memory but no meaningful speed.
"""

from __future__ import annotations

import argparse
import gc

from spikelm.lm.tensors import return_freed_memory


def status() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in GiB."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 2**20
    return fields["VmRSS"], fields["VmHWM"]


class Table:
    """Rows of (phase, held, added, peak so far), printed as they come."""

    def __init__(self):
        self.last = status()[0]
        print(f"{'phase':<58}{'held GiB':>9}{'added':>8}{'peak GiB':>9}")

    def row(self, phase: str):
        gc.collect()
        return_freed_memory()
        rss, hwm = status()
        print(f"{phase:<58}{rss:>9.2f}{rss - self.last:>+8.2f}{hwm:>9.2f}", flush=True)
        self.last = rss


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", type=int, default=64, help="new tokens of each generation")
    ap.add_argument("--prompt", default="The Python language reference describes")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated (default 1,2)")
    args = ap.parse_args(argv)
    table = Table()
    import numba
    import torch  # noqa: F401  (imported by the benchmark too: counted apart)

    from benchmarks.lm_llama import gguf_header, torch_decode, torch_model
    from spikelm.lm.models import open_for_cli

    numba.set_num_threads(1)
    table.row("imports (numpy, numba, torch, transformers' config)")
    header = gguf_header(args.model)
    snn, tok, _ = open_for_cli(args.model, keep_float=False)
    table.row(f"converted, float model dropped (context {snn.context})")
    prompt = tok.encode(args.prompt)
    runner = snn.runner(threads=1)
    table.row("an executor made (1 thread), nothing run")
    del runner
    table.row("... dropped")
    for t in sorted({int(x) for x in args.threads.split(",")}):
        gen = snn.generate(prompt, args.tokens, threads=t)
        table.row(f"generation, {t} thread(s), {len(prompt)} + {args.tokens} tokens, kept")
        del gen
        table.row("... dropped")
    model = torch_model(args.model, {"model.embed_tokens.weight": snn.graph.pops[0].params.wte}, header)
    table.row("torch's float model (embedding shared with the SNN)")
    torch_decode(model, prompt.tolist(), args.tokens, 1)
    table.row(f"torch decode, KV cache, {len(prompt)} + {args.tokens} tokens")


if __name__ == "__main__":
    main()
