"""Learning runs on a converted LM: one learned state driven through texts and generations.

    from spikelm.lm.learn import load_plasticity
    run = snn.learning(load_plasticity("rules.toml"), backend="numba")
    sim = run.feed(ids)              # a Simulation of these tokens; sim.drift: per-token drift
    gen = run.generate(prompt, 32)   # greedy, learning as it goes; gen.simulation.drift
    run.save_checkpoint("ck.h5")     # and Learning.resume(snn, "ck.h5") goes on identically
    run.save_model("learned/")       # a model folder that convert() reads back, learning applied

A :class:`Learning` holds the learned state (:class:`~spikelm.lm.learn.state.LearnState`) and
the runner of the current sequence; :meth:`Learning.new_sequence` starts positions over
(a new window or text) while the learned state goes on.
"""

from __future__ import annotations


import numpy as np

from spikelm.errors import ConfigError
from spikelm.lm.backends import runner_class
from spikelm.lm.learn import checkpoint, export
from spikelm.lm.learn import config as C
from spikelm.lm.learn.attach import attach
from spikelm.lm.learn.drift import Drift, measure
from spikelm.lm.learn.state import LearnState
from spikelm.lm.quantize import check_tokens
from spikelm.lm.results import Generation, Simulation, generation_ids, greedy, run_tokens, summarize


class Learning:
    """A learning run: rules and neurons attached to ``snn``, one learned state, the runners it drives."""

    def __init__(self, snn, plasticity=None, backend: str = "numba"):
        runner_class(backend)  # a bad or unavailable backend is refused here
        self.snn = snn
        self.plasticity = C.as_plasticity(plasticity)
        self.backend = backend
        self.state = LearnState(attach(snn.graph, self.plasticity))
        self.graph = self.state.graph
        self.runner = None
        self.ids: list[int] = []  # the tokens of the current sequence
        self.stats: list[dict] = []  # learned-state statistics after each token of the sequence
        self.per_token: list = []
        self.logits: list = []

    def set_enabled(self, enabled: bool):
        """Switch every rule on or off (from the next step); off, the learned state is frozen
        and the network runs as learned."""
        from spikelm.lm.learn import kernels as K

        if not isinstance(enabled, bool):
            raise ConfigError(f"enabled={enabled!r}; allowed: True or False")
        a = self.state.a
        a["pr_i"][:, K.P_ON] = int(enabled)
        a["hr_i"][:, K.H_ON] = int(enabled)
        a["ro_i"][K.R_ON] = int(enabled and self.state.readout_rule is not None and self.state.readout_rule.enabled)
        self.state.tokens_on = enabled

    def new_sequence(self, record=False):
        """Positions start over (a new text or window); the learned state goes on."""
        self.runner = runner_class(self.backend)(self.graph, record=record, learn=self.state)
        self.ids, self.stats, self.per_token, self.logits = [], [], [], []

    def feed(self, ids, max_steps=None, on_token=None, record=False, drift=True):
        """Append ``ids`` to the current sequence (a new one if none), learning as they run.

        Returns the :class:`~spikelm.lm.convert.Simulation` of these tokens, with ``.drift``
        (:class:`~spikelm.lm.learn.drift.Drift`) over the whole sequence so far unless ``drift`` is False.
        """
        rows, per_token = self._run(ids, max_steps, on_token, record)
        sim = summarize(self.runner, rows, per_token, self.backend, own=False)
        if drift:
            sim.drift = self.drift()
        return sim

    def _run(self, ids, max_steps=None, on_token=None, record=False):
        """:meth:`feed` without the summary: the logits rows and per-token counts of ``ids``
        (what greedy decoding needs after each token; its summary is made once, at the end)."""
        snn = self.snn
        ids = check_tokens(np.concatenate([self.ids, np.asarray(ids, dtype=np.int64)]).astype(np.int64),
                           snn.graph.vocab_size, "token_ids", snn.context)[len(self.ids):]
        if max_steps is not None and (not isinstance(max_steps, (int, np.integer)) or max_steps < 1):
            raise ConfigError(f"max_steps={max_steps!r}; allowed: a positive integer or None")
        if self.runner is None:
            self.new_sequence(record)

        def hook(n, row, counts):
            self.stats.append(self.state.stats())
            if on_token is not None:
                on_token(n, row, counts)

        rows, per_token = run_tokens(self.runner, ids, max_steps, hook)
        self.ids += [int(t) for t in ids]
        self.per_token += per_token
        self.logits.append(rows)
        return rows, per_token

    def runner_for(self, record=False):
        """A new sequence's runner (for callers that drive it themselves)."""
        self.new_sequence(record)
        return self.runner

    def generate(self, prompt_ids, n_tokens: int, max_steps=None, on_token=None, record=False):
        """Greedy generation learning as it goes (a new sequence); ``.simulation.drift`` as in :meth:`feed`."""
        snn = self.snn
        ids = generation_ids(prompt_ids, n_tokens, snn.graph.vocab_size, snn.context)
        self.new_sequence(record)
        gen = greedy(ids, n_tokens, self.runner, lambda x: self._run(x, max_steps, on_token, record), self.backend)
        gen.simulation.drift = self.drift(targets=gen.tokens[1: len(self.ids) + 1])
        return gen

    def continue_generation(self, prompt_ids, n_tokens: int, max_steps=None, on_token=None):
        """Go on greedily from where the sequence stands (e.g. after :meth:`resume`): feed
        ``prompt_ids`` (may be empty), then ``n_tokens`` tokens, each the argmax of the last
        logits, learning as it goes. After ``generate(p, a)``, ``continue_generation([], b)``
        gives the tokens ``generate(p, a + b)`` would have given."""
        if self.runner is None or not self.ids:
            raise ConfigError("continue_generation: no sequence to continue; generate or feed first")
        ids = np.asarray(prompt_ids, dtype=np.int64).reshape(-1)
        if isinstance(n_tokens, bool) or not isinstance(n_tokens, (int, np.integer)) or n_tokens < 0:
            raise ConfigError(f"n_tokens={n_tokens!r}; allowed: an integer >= 0")
        ctx = self.snn.context
        if len(self.ids) + ids.size + n_tokens > ctx:
            raise ConfigError(f"{len(self.ids)} tokens so far + {ids.size} + {n_tokens} new tokens exceed the "
                              f"model's context of {ctx}")
        start = len(self.ids)
        if ids.size:
            self._run(ids, max_steps, on_token)
        new = []
        for _ in range(n_tokens):
            self._run([int(np.argmax(self.logits[-1][-1]))], max_steps, on_token)
            new.append(int(np.argmax(self.logits[-1][-1])))
        sim = summarize(self.runner, np.concatenate(self.logits)[start:], self.per_token[start:], self.backend)
        tokens = np.array(self.ids + new[-1:], dtype=np.int64)
        sim.drift = self.drift(targets=tokens[1:])
        return Generation(tokens, np.array(new, dtype=np.int64), sim)

    def drift(self, targets=None) -> Drift:
        """The current sequence against the exact reference (see :mod:`spikelm.lm.learn.drift`)."""
        sim = Simulation(logits=np.concatenate(self.logits), steps=np.array([c.steps for c in self.per_token]),
                         synops={}, spikes={}, spikes_pos={}, spikes_neg={}, op_evals={}, macs={}, counts={},
                         per_token=self.per_token)
        return measure(self.snn, np.array(self.ids, np.int64), sim, self.stats, targets, self.backend)

    def save_checkpoint(self, path) -> str:
        """The learned state and the current sequence, to resume identically (:mod:`.checkpoint`)."""
        return checkpoint.save(self, path)

    @classmethod
    def resume(cls, snn, path, backend: str = "numba", plasticity=None) -> "Learning":
        """A run restored from a checkpoint of ``snn`` (``plasticity``, if given, must be the checkpoint's)."""
        saved = checkpoint.read(snn, path, plasticity)
        run = cls(snn, saved.plasticity, backend)
        run.state.load_state_dict(saved.learned, str(path))
        if saved.counts is not None:
            run.new_sequence()
            run.runner.restore(saved.counts, saved.head_acc, saved.n, saved.clock, saved.counters, str(path))
            run.ids = saved.ids
            run.logits = [saved.logits] if len(saved.logits) else []
            run.per_token = saved.per_token
            run.stats = saved.stats
        return run

    def save_model(self, folder, source=None) -> str:
        """A model folder with the learned state that :func:`spikelm.lm.convert` reads back (:mod:`.export`)."""
        return export.save(self, folder, source)
