"""The readout rule replayed on the dense reference's codes: what a spiking run that learns only
at its readout computes, token for token, at the cost of the readout alone.

When a plasticity file's only rule is ``readout_error``, nothing upstream of the readout
changes, so every spiking population fires exactly the QANN's codes (the spiking run is
exact): the readout's presynaptic codes of each token are the reference's. The readout's
accumulators are those codes times the *learned* integer rows, summed presynaptic neuron by
presynaptic neuron as the spikes deliver them (exact integers, so the order does not matter),
and the rule runs the same kernel on the same numbers as the runners do
(:meth:`~spikelm.lm.learn.state.LearnState.readout_step`, before each token on the last one's
error). So the logits, perplexities and learned state equal a spiking learning run's bit for
bit (tested against both backends), while a long text costs one dense pass for its codes
(learning does not change them) plus, per token, one readout accumulation and the update.

    state = LearnState(attach(snn.graph, load_plasticity("scenarios/lm/readout_error.toml")))
    codes = readout_codes(state.graph, windows)      # once per text
    nll = replay(state, windows, codes)              # learning on
    state.a["ro_i"][K.R_ON] = 0; nll_after = replay(state, other, other_codes)   # frozen
"""

from __future__ import annotations

import numpy as np
from numba import njit

from spikelm.errors import ConfigError
from spikelm.lm.learn import kernels as K
from spikelm.lm.reference import run_reference


@njit(cache=True)
def readout_acc(c, W, woff, npre, npost, out):
    """out = the readout accumulators of codes ``c`` through the flat integer rows at ``woff``."""
    out[:] = 0
    for j in range(npre):
        v = np.int64(c[j])
        if v == 0:
            continue
        row = woff + j * npost
        for i in range(npost):
            out[i] += v * W[row + i]


def readout_codes(graph, windows) -> list[np.ndarray]:
    """The readout's presynaptic codes [tokens, n_pre] of each window (the dense reference's)."""
    pre = _pre(graph)
    return [run_reference(graph, np.asarray(w, np.int64)).codes[graph.pops[pre].name].astype(np.int32)
            for w in windows]


def replay(state, windows, codes, kernel=K.readout_learn) -> np.ndarray:
    """-log p of every next token within each window (a window's last token predicts nothing),
    learning as the spiking run would if the state's readout rule is on; the state goes on."""
    if state.readout_rule is None:
        raise ConfigError("replay: the plasticity has no readout_error rule")
    if state.attached.projections or state.attached.populations:
        raise ConfigError("replay: the plasticity has rules besides readout_error; they change the codes, "
                          "so only a spiking run computes them")
    g = state.graph
    npre, npost = g.projections[state.readout_k].weights.shape
    woff = state.woff[state.readout_k]
    if not state.a["ro_i"][K.R_ON]:
        return _frozen(state, windows, codes)
    out = []
    acc = np.zeros(npost, np.int64)
    last = np.zeros(npost, np.int64)
    for w, c in zip(windows, codes):
        w = np.asarray(w, np.int64)
        for i in range(len(w)):
            if i:
                state.readout_step(c[i - 1], last, int(w[i]), kernel)
            readout_acc(c[i], state.W, woff, npre, npost, acc)
            if i + 1 < len(w):
                z = state.logits(acc)
                m = z.max()
                out.append(m + np.log(np.exp(z - m).sum()) - z[w[i + 1]])
            acc, last = last, acc
    return np.array(out)


def _frozen(state, windows, codes) -> np.ndarray:
    """Learning off: every window's accumulators at once, in float64 (exact: integer sums far
    below 2^53), the logits as :meth:`LearnState.logits` reads them."""
    W = state.weights(state.readout_k).astype(np.float64)
    out = []
    for w, c in zip(windows, codes):
        w = np.asarray(w, np.int64)
        z = (c[:-1].astype(np.float64) @ W) * state.scale + state.a["rb"]
        m = z.max(axis=1)
        out.append(m + np.log(np.exp(z - m[:, None]).sum(axis=1)) - z[np.arange(len(w) - 1), w[1:]])
    return np.concatenate(out) if out else np.zeros(0)


def _pre(graph) -> int:
    into = [pr.pre for pr in graph.projections if pr.post == graph.readout]
    if len(into) != 1:
        raise ConfigError(f"replay: the readout needs one projection into it, this model has {len(into)}")
    return into[0]
