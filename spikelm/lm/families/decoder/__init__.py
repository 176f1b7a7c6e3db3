"""The shared decoder builder: not a family, the kit the decoder families are built from.

A decoder-only transformer is described by its options (:class:`~.arch.Decoder`: LayerNorm or
RMSNorm, pre- or post-norm, RoPE over all or part of each head, learned positions with an
offset, a parallel residual, a plain or gated MLP with any activation of
:mod:`spikelm.lm.activations`, a projection before the head); :mod:`.forward` is its float
model, :mod:`.build` its graph from the shared operators, :mod:`.family` the
:class:`~spikelm.lm.families.registry.Family` base that ties them to a family's tensor names,
and :mod:`.fields` the checks of a Hugging Face config dict. A family that fits these options
is a config, a tensor layout and a name map (docs/lm-families.md).
"""

from spikelm.lm.families.decoder.arch import Decoder
from spikelm.lm.families.decoder.family import DecoderFamily

__all__ = ["Decoder", "DecoderFamily"]
