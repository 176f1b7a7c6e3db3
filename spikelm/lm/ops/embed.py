"""The embedding stimulus: a token's codes injected into the first population when it arrives.

code[c] = clamp(floor((wte[token, c] + wpe[position, c]) / s_c + 1/2)) with the embedding scale
s (one per tensor or per channel); models without learned positions have no ``wpe``. The
runner evaluates it in NumPy for each token and injects the codes; the compiled loop never
starts it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikelm.lm.ops.registry import Operator, clamp, register


@dataclass
class EmbedParams:
    wte: np.ndarray  # float64 [vocab, d], or float32 (a model's table as stored: rows are upcast)
    wpe: np.ndarray | None  # float64 [n_positions, d], or None
    scale: float | np.ndarray


class Embed(Operator):
    name = "embed"
    stimulus = True

    def evaluate(self, graph, pop, inputs, ctx):
        P = pop.params
        x = P.wte[ctx.ids].astype(np.float64)
        if P.wpe is not None:
            x = x + P.wpe[ctx.positions]
        return clamp(np.floor(x / P.scale + 0.5), pop.qmin, pop.qmax)


register(Embed())
