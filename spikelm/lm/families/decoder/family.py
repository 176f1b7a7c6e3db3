"""The :class:`Family` of a decoder built by the shared builder: a family maps its checkpoint's
tensor names onto the builder's (:meth:`DecoderFamily.weights`) and describes its architecture
(its config's ``decoder``); the float forward, the conversion and saving come from here."""

from __future__ import annotations

import json

import numpy as np

from spikelm.lm.families.decoder import build as builder
from spikelm.lm.families.decoder.forward import float_forward
from spikelm.lm.families.registry import Family


class DecoderFamily(Family):
    """A family whose config offers ``decoder`` (a :class:`~spikelm.lm.families.decoder.arch.Decoder`)
    and ``model_type``, and which implements :meth:`weights` (and :meth:`tensors`, :meth:`config`)."""

    default_bits = builder.DEFAULT_BITS
    reuses_calibration = True
    options = {"context": None, "weight_bits": builder.DEFAULT_WEIGHT_BITS, "clamp": builder.DEFAULT_CLAMP,
               "sink": True}

    def weights(self, cfg, params: dict) -> dict:
        """The builder's weights (names as in :mod:`spikelm.lm.families.decoder.forward`) from the
        family's checked parameters: views where a fused tensor splits, products where a
        projection folds into a table."""
        raise NotImplementedError

    def float_logits(self, cfg, params, ids):
        return float_forward(cfg.decoder, self.weights(cfg, params), np.asarray(ids, dtype=np.int64))

    def build(self, cfg, params, calibration, bits, coding, **options):
        o = {**self.options, **options}  # the context was the config's (self.config)
        return builder.build(cfg.decoder, self.weights(cfg, params), calibration, bits, coding,
                             weight_bits=o["weight_bits"], clamp=o["clamp"], sink=o["sink"], config=cfg,
                             family=cfg.model_type)

    def save_folder(self, cfg, params, folder):
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in params.items()},
                  str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1) + "\n")
