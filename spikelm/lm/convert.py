"""``convert``: a float language model of any registered family -> :class:`SpikingLM` (the
quantized graph and its executors)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from spikelm.errors import ConfigError
from spikelm.lm.backends import runner_class
from spikelm.lm.calibration import Calibration
from spikelm.lm.codings import DEFAULT as DEFAULT_CODING
from spikelm.lm.graph import LMGraph
from spikelm.lm.layout import pack_weights
from spikelm.lm.learn.export import LEARNED_FILE, apply
from spikelm.lm.quantize import check_tokens
from spikelm.lm.reference import Reference, run_reference
from spikelm.lm.results import Generation, Simulation, drive, generation_ids, greedy, run_tokens
from spikelm.lm.tensors import Params, lean_heap, return_freed_memory
from spikelm.lm.threads import resolve as resolve_threads

__all__ = ["Generation", "Simulation", "SpikingLM", "convert", "demo_model_path", "load_demo"]



def demo_model_path() -> Path:
    """The folder of the shipped demo model (config.json, model.safetensors, tokenizer.json)."""
    return Path(__file__).resolve().parent.parent / "data"


def load_demo(bits=8, calibration_chars: int = 4000, coding: str = DEFAULT_CODING) -> tuple["SpikingLM", object]:
    """The demo model converted with calibration on the start of its held-out text."""
    from spikelm.lm.tokenizer import CharTokenizer

    folder = demo_model_path()
    tok = CharTokenizer.load(folder / "tokenizer.json")
    calib = tok.encode(tok.clean((folder / "calibration.txt").read_text())[:calibration_chars])
    return convert(folder, calibration=calib, bits=bits, coding=coding), tok


class SpikingLM:
    """A converted language model: the population graph and its executors."""

    def __init__(self, graph: LMGraph, params: dict, source: str = ""):
        self.graph = graph
        self.params = params  # the float model's weights (Params: float32 read as float64), or None once released
        self.source = source  # the folder or file it was converted from, if any

    @property
    def config(self):
        return self.graph.config

    @property
    def bits(self):
        """The activation precision (:class:`~spikelm.lm.precision.Precision`; ``str`` gives
        ``"8"`` or ``"lin=8,act=8,res=12,att=12,oth=8"``)."""
        return self.graph.meta["precision"]

    @property
    def coding(self) -> str:
        return self.graph.meta["coding"]

    @property
    def calibration(self):
        """The :class:`~spikelm.lm.calibration.Calibration` this model was converted from (computed
        or reused), for converting the same float model again without calibrating
        (``convert(model, calibration=snn.calibration, bits=...)``); None for a family that does
        not reuse one (GPT-2)."""
        return self.graph.meta.get("calibration")

    def with_coding(self, coding: str) -> "SpikingLM":
        """The same converted model (same codes, same logits) firing in another spike coding."""
        import dataclasses

        from spikelm.lm.codings import check_coding

        coding = check_coding(coding)
        g = self.graph
        pops = [dataclasses.replace(p, coding=coding) for p in g.pops]
        return self.with_graph(LMGraph(config=g.config, pops=pops, projections=g.projections, edges=g.edges,
                                       n_positions=g.n_positions, vocab_size=g.vocab_size,
                                       meta={**g.meta, "coding": coding}, prefix=g.prefix))

    def with_graph(self, graph: LMGraph) -> "SpikingLM":
        """The same float model with another graph of it (other codings, neurons or learned weights)."""
        return type(self)(graph, self.params, self.source)

    @property
    def context(self) -> int:
        """Text tokens a sequence may hold (the context less the constant prefix)."""
        return self.graph.n_positions - self.graph.n_prefix

    def _ids(self, ids, what="token_ids"):
        return check_tokens(ids, self.graph.vocab_size, what, self.context)

    @property
    def family(self):
        """The model's family (:mod:`spikelm.lm.families`)."""
        from spikelm.lm import families

        return families.of_config_object(self.config)

    def release_float(self) -> "SpikingLM":
        """Drop the float model's weights (the integer graph runs without them; SmolLM2: 0.5 GiB,
        Qwen2.5-0.5B: 2.5 GiB), and hand the memory back to the system; :meth:`float_logits` is
        refused afterwards. Returns self."""
        self.params = None
        return_freed_memory()
        return self

    def float_logits(self, token_ids) -> np.ndarray:
        """Logits of the float model (float64) on the same positions, for comparisons (after
        the graph's constant prefix, which the float model reads too)."""
        if self.params is None:
            raise ConfigError("float_logits: the float model was released (release_float) to save memory; "
                              "convert the model again to compare with it")
        ids = self._ids(token_ids)
        g = self.graph
        full = np.concatenate([g.prefix.ids, ids]) if g.prefix is not None else ids
        return self.family.float_logits(self.config, self.params, full)[g.n_prefix :]

    def reference(self, token_ids, codes: bool = True) -> Reference:
        """The dense quantized reference (QANN): ``.logits`` [L, vocab] float64 and ``.codes``
        (``codes=False``: logits alone, ``.codes`` empty, in a fraction of the memory)."""
        return run_reference(self.graph, self._ids(token_ids), keep_codes=codes)

    def runner(self, backend: str = "numba", record: bool = False, threads: int | None = None,
               positions: int | None = None):
        """A fresh event-driven executor (see :mod:`spikelm.lm.backends`); exact unless the graph
        has spike units or EI-IF neurons (then with their state, no plasticity, one thread).

        ``threads``: threads per token on the numba backend (:mod:`spikelm.lm.threads`: default
        ``$SPIKELM_THREADS``, else every core, at most one per 4 M weights); any number gives the
        same results, bit for bit. ``positions``: the text tokens the run is expected to hold
        (its per-position state is made for those and grows if the run goes further; None: the
        whole context)."""
        n = resolve_threads(threads, self.graph, backend, learning=not self.graph.plain)
        if not self.graph.plain:
            return self.learning(None, backend).runner_for(record)
        cls = runner_class(backend)
        rows = None if positions is None else self.graph.n_prefix + int(positions)
        if n > 1:
            return cls(self.graph, record=record, threads=n, positions=rows)
        return cls(self.graph, record=record, positions=rows)

    def learning(self, plasticity=None, backend: str = "numba"):
        """A learning run (:class:`spikelm.lm.learn.session.Learning`): ``plasticity`` (a
        :class:`~spikelm.lm.learn.config.Plasticity`, a TOML file path or a dict) attached."""
        from spikelm.lm.learn.session import Learning

        return Learning(self, plasticity, backend)

    def simulate(self, token_ids, backend: str = "numba", max_steps: int | None = None,
                 record: bool = False, on_token=None, plasticity=None, threads: int | None = None) -> Simulation:
        """Event-driven simulation, token by token to quiescence (``max_steps`` per token).

        ``record=True`` keeps the spikes in ``.events``; a callable ``record(steps, pops,
        nodes, values)`` receives them in time order instead (e.g. a SONATA writer).
        ``on_token(position, logits_row, counts)`` is called after each token. With
        ``plasticity`` (or a graph with spike units or EI-IF neurons) the run learns as it goes
        and ``.drift`` reports its distance from the exact reference per token (on one thread).
        ``threads``: see :meth:`runner`.
        """
        ids = self._ids(token_ids)
        if max_steps is not None and (not isinstance(max_steps, (int, np.integer)) or max_steps < 1):
            raise ConfigError(f"max_steps={max_steps!r}; allowed: a positive integer or None")
        if plasticity is not None or not self.graph.plain:
            resolve_threads(threads, self.graph, backend, learning=True)
            return self.learning(plasticity, backend).feed(ids, max_steps, on_token, record)
        runner = self.runner(backend, record, threads, positions=ids.size)
        return drive(runner, ids, max_steps, on_token, backend, own=True)

    def generate(self, prompt_ids, n_tokens: int, backend: str = "numba", max_steps: int | None = None,
                 record: bool = False, on_token=None, plasticity=None, threads: int | None = None) -> Generation:
        """Greedy decoding: the prompt, then ``n_tokens`` tokens, each run to quiescence.

        Settled positions never spike again: appending a token only causes the events of its
        own position. ``on_token(position, logits_row, counts)`` as in :meth:`simulate`;
        ``plasticity`` and ``threads`` as there (``.simulation.drift``).
        """
        ids = generation_ids(prompt_ids, n_tokens, self.graph.vocab_size, self.context)
        if plasticity is not None or not self.graph.plain:
            resolve_threads(threads, self.graph, backend, learning=True)
            return self.learning(plasticity, backend).generate(ids, n_tokens, max_steps, on_token, record)
        runner = self.runner(backend, record, threads, positions=ids.size + max(n_tokens - 1, 0))
        return greedy(ids, n_tokens, runner, lambda x: run_tokens(runner, x, max_steps, on_token), backend)

    def population_sizes(self) -> dict:
        """SONATA populations of a run: name -> neurons over the whole context."""
        ctx = self.graph.n_positions
        return {p.name: p.size * ctx for p in self.graph.pops if p.spiking}

    def spike_value_tops(self) -> dict:
        """Population name -> the largest |spike value| its coding gives a code of full range
        (1 for unit spikes; a power of two otherwise): the width of its values in a spike file."""
        from spikelm.lm.codings import coding_id, spike_values

        cid = coding_id(self.coding)
        return {p.name: max(1, int(spike_values(cid, [max(-p.qmin, p.qmax, 1)])[0]))
                for p in self.graph.pops if p.spiking}


def convert(model, calibration, bits=None, config=None, coding: str = DEFAULT_CODING, *,
            weight_bits: int | None = None, context: int | None = None, clamp=None,
            sink: bool = True, methods=None, budget: float | None = None, keep_float: bool = True) -> SpikingLM:
    """Quantize a float language model and build its spiking network.

    Parameters
    ----------
    model : torch.nn.Module, str, os.PathLike, dict or LoadedModel
        A model of a registered family (:mod:`spikelm.lm.families`; docs/lm.md lists them and
        what each reads): a transformers module or spikelm's ``TinyGPT``, a Hugging Face
        folder (config.json + safetensors, sharded or not, any float dtype, or
        pytorch_model.bin), a ``.gguf`` file (:mod:`spikelm.lm.gguf_file`), a state dict with
        ``config``, or what :func:`spikelm.lm.load.open_model` returned.
    calibration : 1-D array of int or Calibration
        Token ids of sample text (at least 8); activation scales are their max |x|. Or the
        :class:`~spikelm.lm.calibration.Calibration` of an earlier conversion of the same float
        model (:attr:`SpikingLM.calibration`): its maxima are used as they are, no float pass,
        and the graph is the one its token ids give, bit for bit, whatever ``bits``, ``clamp``,
        ``weight_bits``, ``coding``, ``budget`` or ``fisher``; one computed for another model
        (config, context or weights), another ``sink`` or ``rotate`` on one side only is
        refused in one line naming what differs. Every family but GPT-2 takes one (the Llama
        family, Qwen3, Gemma, and the shared decoder's: OPT, GPT-NeoX, Phi-3); GPT-2 refuses it.
    bits : int, str, dict or Precision
        Activation code widths: one width (2 to 16) for every quantizer point, or per point
        group, e.g. ``"lin=8,res=12,att=12"`` (:mod:`spikelm.lm.precision`). Default: the
        family's.
    config : a family's config, a config dict or a transformers config, optional
        The model's shape, for a bare state dict.
    coding : str
        Spike coding of every neuron: ``unit``, ``bitplane`` or ``signed_digit`` (the default:
        fewest SynOps) (:mod:`spikelm.lm.codings`); the codes and logits do not depend on it.
    weight_bits, context, clamp, sink
        Options of the families that take them (each family's ``options`` and docstring;
        another family refuses them in one line): the bits of folded integer weights, the
        positions to build neurons for, the code range over the calibration maximum (one
        integer, or per point group: ``"lin=32,act=64,res=8,oth=8"``), and the BOS attention
        sink as a constant prefix (docs/lm-llama.md).
    methods : str or sequence of str, optional
        Conversion methods (:mod:`spikelm.lm.methods`: ``fisher``, ``row-exponents``,
        ``rotate``), comma-separated; None: the family's default; ``"none"``: none.
    budget : float, optional
        SynOps per dense MAC the ``fisher`` steps are set to (estimated on the calibration
        text), instead of the ``lin`` / ``act`` bits; a budget below what the model can reach
        is refused, naming the least it reaches.
    keep_float : bool
        Keep the float model for comparisons (:meth:`SpikingLM.float_logits`, ``lm evaluate``'s
        float perplexity). False: each float weight is dropped as soon as its integer codes
        exist (the Llama family's builder) and the rest after conversion, as if
        :meth:`SpikingLM.release_float` were called (Qwen2.5-0.5B: about 1 GiB less at the
        peak); the graph is the same.
    """
    from spikelm.lm.codings import check_coding

    coding = check_coding(coding)
    with lean_heap():  # a layer's temporaries go back to the system as they are freed
        return _convert(model, calibration, bits, config, coding, weight_bits, context, clamp, sink, methods, budget,
                        keep_float)


def _convert(model, calibration, bits, config, coding, weight_bits, context, clamp, sink, methods, budget,
             keep_float) -> SpikingLM:
    from spikelm.lm import families
    from spikelm.lm.load import check_options, open_model
    from spikelm.lm.methods import parse_methods

    loaded = open_model(model, config, context)
    family = loaded.family
    check_options(family, weight_bits=weight_bits, clamp=clamp, budget=budget)
    if isinstance(calibration, Calibration) and not family.reuses_calibration:
        takers = ", ".join(f.label for f in families.all_families() if f.reuses_calibration)
        raise ConfigError(f"calibration: a Calibration is reused by {takers} models only; give {family.label} "
                          "models calibration token ids")
    if methods is not None:
        methods = parse_methods(methods, family)
    options = {k: v for k, v in (("weight_bits", weight_bits), ("clamp", clamp), ("sink", sink),
                                 ("methods", methods), ("budget", budget))
               if v is not None and k in family.options}
    if not keep_float and isinstance(loaded.params, Params):
        loaded.params.releasing = True
    graph = family.build(loaded.config, loaded.params, calibration, bits, coding, **options)
    learned = Path(loaded.source) / LEARNED_FILE if loaded.source and Path(loaded.source).is_dir() else None
    if learned is not None and os.path.lexists(learned):  # a directory or a broken link is refused there
        graph = apply(graph, learned)
    pack_weights(graph)  # one flat array of integer rows, which the compiled runner reads in place
    snn = SpikingLM(graph, loaded.params, loaded.source)
    if not keep_float:
        loaded.params = None
        snn.release_float()
    return snn
