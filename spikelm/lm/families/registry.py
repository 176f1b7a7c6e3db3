"""The family registry: the :class:`Family` protocol, :func:`register`, and how a model is recognised.

A family is one folder of :mod:`spikelm.lm.families`; its ``__init__.py`` defines a
:class:`Family` subclass and registers an instance. The rest of ``spikelm.lm`` reaches a
family only through this protocol (loading, the float model, conversion), so adding one is a
new folder plus its registration (docs/design.md, "How to add a family").

Recognition: a Hugging Face config (``config.json``, a transformers config, a GGUF file's)
belongs to the family that claims its ``model_type``, else the one that claims one of its
``architectures`` (a transformers class name); a module belongs to the family whose
:meth:`Family.reads_module` says so; a config object to the family whose ``config_class`` it
is an instance of. What no family claims is one line naming the field and what is supported.
"""

from __future__ import annotations

import numpy as np

from spikelm.errors import ConfigError


class Family:
    """A model family (subclass it in the family's folder and :func:`register` an instance).

    Attributes
    ----------
    name : str
        Registry key, also ``graph.meta["family"]`` unless the config names a member.
    label : str
        The family in messages (``"GPT-2"``).
    model_types, architectures : tuple of str
        The ``model_type`` values and the ``architectures`` / transformers class names it reads.
    config_class : type
        Its configuration (a frozen dataclass). Besides its own fields it offers the names the
        rest of lm/ reads: ``vocab_size``, ``n_positions`` (the context it is built for),
        ``n_layer``, ``n_embd``, ``tie_word_embeddings`` and ``to_dict()``.
    default_bits : int or str
        Its activation precision when none is given (:mod:`spikelm.lm.precision`).
    options : dict
        Conversion options it takes besides ``bits`` and ``coding`` (name -> default), among
        ``context``, ``weight_bits``, ``clamp``, ``sink``, ``methods``, ``budget``.
    methods : tuple of str
        The conversion methods (:mod:`spikelm.lm.methods`) it builds.
    missing : dict
        Why it lacks an option its peers take (name -> reason), for the refusal.
    reads_untyped : bool
        A config with neither ``model_type`` nor ``architectures`` is this family's.
    reuses_calibration : bool
        Its ``build`` takes a :class:`~spikelm.lm.calibration.Calibration` for ``calibration``
        (and puts the one it computed or reused in ``graph.meta["calibration"]``); a family
        without it refuses one in one line (:func:`spikelm.lm.convert`).
    """

    name = ""
    label = ""
    model_types: tuple = ()
    architectures: tuple = ()
    config_class: type = type(None)
    default_bits: int | str = 8
    options: dict = {}
    methods: tuple = ()
    missing: dict = {}
    reads_untyped = False
    reuses_calibration = False

    # ---------------------------------------------------------------- reading

    def config(self, raw: dict, source: str, context: int | None = None):
        """The family's config from a Hugging Face config dict; what it cannot build is refused
        in one line naming ``source`` and the field. ``context``: positions to build."""
        raise NotImplementedError

    def tensors(self, cfg):
        """Its :class:`~spikelm.lm.tensors.TensorLayout` (names and shapes ``cfg`` needs)."""
        raise NotImplementedError

    def gguf_tensor(self, arch: str, name: str, w, meta: dict):
        """The GGUF tensor ``name`` (llama.cpp's name) of a file of architecture ``arch``, as
        transformers' loader hands it to its model (the lean reader, :mod:`spikelm.lm.gguf_file`,
        applies it); by default unchanged. ``meta``: the file's metadata."""
        return w

    def check_state_dict(self, cfg, state: dict, source: str = "state dict") -> dict:
        """Float64 parameters under the canonical names, checked against ``cfg``."""
        from spikelm.lm.tensors import check_tensors

        return check_tensors(state, self.tensors(cfg), cfg, source)

    def reads_module(self, model) -> bool:
        """True for a torch module of this family (by default: its class name is one of ``architectures``)."""
        return type(model).__name__ in self.architectures

    def from_module(self, model, context: int | None = None):
        """``(config, params)`` of a module :meth:`reads_module` accepted."""
        name = type(model).__name__
        cfg = self.config(model.config.to_dict(), f"{name}.config", context)
        return cfg, self.check_state_dict(cfg, model.state_dict(), name)

    # ---------------------------------------------------------------- the float model and conversion

    def float_logits(self, cfg, params: dict, ids) -> np.ndarray:
        """Float64 logits [L, vocab] of the float model on token ids ``ids`` (one sequence)."""
        raise NotImplementedError

    def build(self, cfg, params: dict, calibration, bits, coding: str, **options):
        """Quantize the float model into an :class:`~spikelm.lm.graph.LMGraph` (``bits`` None:
        the family's default precision; ``options``: those of :attr:`options` that were given)."""
        raise NotImplementedError

    def save_folder(self, cfg, params: dict, folder) -> None:
        """Write ``config.json`` and the weights of a model held only in memory (a learned
        model folder needs them); by default refused: give the source folder instead."""
        raise ConfigError(f"save_model: the {self.label} model came from memory; give source= its "
                          "Hugging Face folder")


_REGISTRY: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add a family; another family under a taken name, ``model_type`` or architecture is an error."""
    if not isinstance(family, Family) or not family.name:
        raise ConfigError(f"register: {family!r} is not a named Family")
    for other in _REGISTRY.values():
        if type(other) is type(family):
            continue
        taken = (other.name == family.name and "name") or \
            (set(other.model_types) & set(family.model_types) and "model_type") or \
            (set(other.architectures) & set(family.architectures) and "architecture")
        if taken:
            raise ConfigError(f"register: family {family.name!r}: its {taken} is taken by {other.name!r}")
    _REGISTRY[family.name] = family
    return family


def get(name: str) -> Family:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"model family {name!r} is unknown; registered: {', '.join(sorted(_REGISTRY))}") from None


def names() -> list[str]:
    return sorted(_REGISTRY)


def all_families() -> list[Family]:
    return list(_REGISTRY.values())


def supported(what: str) -> str:
    """Every registered family's ``model_types`` or ``architectures``, for messages."""
    return ", ".join(sorted({x for f in _REGISTRY.values() for x in getattr(f, what)}))


def of_config(raw: dict, source: str) -> Family:
    """The family of a Hugging Face config dict (see the module docstring)."""
    archs = raw.get("architectures") or []
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise ConfigError(f"{source}: architectures={archs!r}; expected a list of names among "
                          f"{supported('architectures')}")
    mt = raw.get("model_type")
    by_type = next((f for f in _REGISTRY.values() if isinstance(mt, str) and mt in f.model_types), None)
    if by_type is not None:
        unknown = [a for a in archs if a not in by_type.architectures]
        if unknown:
            raise ConfigError(f"{source}: model_type={mt!r} but architectures={unknown!r}: they disagree; a "
                              f"{by_type.label} folder names {', '.join(by_type.architectures)}")
        return by_type
    by_arch = [f for f in _REGISTRY.values() if any(a in f.architectures for a in archs)]
    if mt is not None:
        raise ConfigError(f"{source}: model_type={mt!r} is an unknown architecture; supported: "
                          f"{supported('model_types')}")
    if by_arch:
        unknown = [a for a in archs if a not in by_arch[0].architectures]
        if unknown:
            raise ConfigError(f"{source}: architectures={unknown!r} is an unknown architecture; supported: "
                              f"{supported('architectures')}")
        return by_arch[0]
    if archs:
        raise ConfigError(f"{source}: architectures={archs!r} is an unknown architecture; supported: "
                          f"{supported('architectures')}")
    untyped = [f for f in _REGISTRY.values() if f.reads_untyped]
    if not untyped:
        raise ConfigError(f"{source}: neither model_type nor architectures is given; supported model types: "
                          f"{supported('model_types')}")
    return untyped[0]


def of_module(model) -> Family:
    """The family of a torch module, or a one-line error naming what is supported."""
    for f in _REGISTRY.values():
        if f.reads_module(model):
            return f
    raise ConfigError(f"model: {type(model).__name__} is an unknown architecture; supported: "
                      f"{supported('architectures')}, a Hugging Face folder, a GGUF file or a state dict with a "
                      "config")


def of_config_object(cfg) -> Family | None:
    """The family whose ``config_class`` ``cfg`` is an instance of, the most specific first (a
    variant's config may subclass its base family's); None: none."""
    for cls in type(cfg).__mro__:
        for f in _REGISTRY.values():
            if f.config_class is cls:
                return f
    return None


class HFNames:
    """The names every family's config offers the rest of lm/ (``n_layer``, ``n_embd``), read
    off the Hugging Face field names a config dataclass holds (``num_hidden_layers``,
    ``hidden_size``). A base of the configs that use those names."""

    @property
    def n_layer(self) -> int:
        return self.num_hidden_layers

    @property
    def n_embd(self) -> int:
        return self.hidden_size
