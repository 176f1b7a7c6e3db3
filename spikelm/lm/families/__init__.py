"""Model families of converted LMs: one folder per family, found through a registry.

A family (:class:`~spikelm.lm.families.registry.Family`) owns what differs between model
architectures: its config, its float forward, its tensors' names and shapes, how a
transformers module is recognised, and the builder that quantizes it into an
:class:`~spikelm.lm.graph.LMGraph` from the shared operators, product edges and codings.
Loading (:mod:`spikelm.lm.load`), conversion (:mod:`spikelm.lm.convert`) and learned model
folders reach a family only through the registry, so nothing outside a family's folder names it.

Built in: :mod:`~spikelm.lm.families.gpt2` and :mod:`~spikelm.lm.families.llama` (Llama,
Qwen2, Mistral, SmolLM2). A new family is a new folder whose ``__init__.py`` registers it,
plus its name in the line below (docs/design.md, "How to add a family").
"""

from spikelm.lm.families.registry import (Family, all_families, get, names, of_config, of_config_object, of_module,
                                          register)

# the built-in families: each folder registers its family on import
from spikelm.lm.families import gemma, gpt2, gpt_neox, llama, opt, phi3, qwen3  # noqa: F401

__all__ = ["Family", "all_families", "get", "names", "of_config", "of_config_object", "of_module", "register"]
