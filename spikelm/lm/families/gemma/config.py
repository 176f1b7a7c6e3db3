"""The configuration of a Gemma decoder (Gemma 1, Gemma 2, Gemma 3 text; Hugging Face's fields).

The three share the Llama family's decoder, through its hooks (:mod:`spikelm.lm.families.llama.config`):

============================  ========  =========  =============
what differs from Llama        gemma     gemma2     gemma3_text
============================  ========  =========  =============
GeGLU (tanh GELU on the gate)  yes       yes        yes
RMSNorm gains ``1 + w``        yes       yes        yes
embeddings x sqrt(hidden)      yes       yes        yes
post-attention / post-MLP norm           yes        yes
q·k / sqrt(...)                head_dim  query_pre_attn_scalar (both)
attention / logit soft-cap               50 / 30    (off by default)
sliding-window layers                    every 2nd  5 of every 6
per-head q/k RMSNorm                                yes
local layers' RoPE base                             rope_local_base_freq
============================  ========  =========  =============
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spikelm.errors import ConfigError
from spikelm.lm.families.llama.config import LAYER_TYPES, LlamaConfig, check_layer_types, read_rotary
from spikelm.lm.families.rotary import Rotary

MODEL_TYPES = ("gemma", "gemma2", "gemma3_text", "gemma3")
ARCHITECTURES = {"GemmaForCausalLM": "gemma", "Gemma2ForCausalLM": "gemma2", "Gemma3ForCausalLM": "gemma3_text",
                 "Gemma3ForConditionalGeneration": "gemma3"}
#: transformers' defaults where a config leaves a field out: (attention soft-cap, logit soft-cap),
#: the window pattern (every n-th layer is global), the global RoPE base
SOFTCAPS = {"gemma": (None, None), "gemma2": (50.0, 30.0), "gemma3_text": (None, None)}
PATTERN = {"gemma2": 2, "gemma3_text": 6}
GELU_TANH = ("gelu_pytorch_tanh", "gelu_tanh")


@dataclass(frozen=True)
class GemmaConfig(LlamaConfig):
    """Shape of a Gemma decoder (see the module docstring; :class:`LlamaConfig` for the rest).

    ``rope_local``: the rotary embedding of the sliding-window layers (Gemma 3's
    ``rope_local_base_freq``; None: the global one).
    """

    model_type: str = "gemma"
    tie_word_embeddings: bool = True
    query_pre_attn_scalar: float | None = None
    attn_logit_softcapping: float | None = None
    final_logit_softcapping: float | None = None
    rope_local: Rotary | None = None

    MODEL_TYPES = MODEL_TYPES
    ARCHITECTURES = ARCHITECTURES
    LABEL = "Gemma"

    norm_offset = 1.0
    activation = "gelu_tanh"

    def __post_init__(self):
        super().__post_init__()
        for name in ("query_pre_attn_scalar", "attn_logit_softcapping", "final_logit_softcapping"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                                  or v <= 0):
                raise ConfigError(f"model config: {name}={v!r}; must be a finite number > 0 or null")
        if self.rope_local is not None and not isinstance(self.rope_local, Rotary):
            raise ConfigError(f"model config: rope_local={self.rope_local!r}; expected a Rotary")

    @property
    def qk_norm(self) -> bool:
        return self.model_type == "gemma3_text"

    @property
    def post_norms(self) -> bool:
        return self.model_type != "gemma"

    @property
    def embed_scale(self) -> float:
        return math.sqrt(self.hidden_size)

    @property
    def attn_divisor(self) -> float:
        if self.model_type == "gemma" or self.query_pre_attn_scalar is None:
            return math.sqrt(self.head_dim)
        return math.sqrt(self.query_pre_attn_scalar)

    @property
    def attn_softcap(self) -> float | None:
        return self.attn_logit_softcapping

    @property
    def final_softcap(self) -> float | None:
        return self.final_logit_softcapping

    def rotary_of(self, layer: int) -> Rotary:
        if self.rope_local is not None and self.window(layer):
            return self.rope_local
        return self.rotary

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.pop("rope_local")
        d.pop("use_sliding_window", None)
        d.pop("max_window_layers", None)
        d["hidden_activation"] = GELU_TANH[0]
        if self.model_type == "gemma3_text":  # transformers' nested form, one rotary per layer type
            local = self.rope_local if self.rope_local is not None else self.rotary
            d["rope_parameters"] = {LAYER_TYPES[0]: self.rotary.to_hf(), LAYER_TYPES[1]: local.to_hf()}
            d["rope_scaling"] = None
        return d

    @classmethod
    def _refuse(cls, d: dict, source: str) -> None:
        mt = d["model_type"]
        if mt == "gemma3":
            raise ConfigError(f"{source}: model_type='gemma3' is Gemma 3 with its vision tower "
                              "(Gemma3ForConditionalGeneration); spikelm converts the text-only Gemma 3 "
                              "(model_type 'gemma3_text', Gemma3ForCausalLM: the 270M and 1B models)")
        key = "hidden_activation" if d.get("hidden_activation") is not None else "hidden_act"
        act = d.get(key, GELU_TANH[0])
        allowed = GELU_TANH + (("gelu",) if mt == "gemma" else ())  # Gemma 1's 'gelu' means the tanh one
        if act not in allowed:
            raise ConfigError(f"{source}: {key}={act!r} is not supported; allowed: {', '.join(map(repr, allowed))} "
                              "(GeGLU with the tanh GELU)")
        if d.get("use_bidirectional_attention"):
            raise ConfigError(f"{source}: use_bidirectional_attention=true is not supported (an encoder); "
                              "allowed: false")
        for moe in ("num_experts", "num_local_experts", "num_experts_per_tok"):
            if d.get(moe):
                raise ConfigError(f"{source}: {moe}={d[moe]!r}: mixture-of-experts models are not supported")
        prf = d.get("partial_rotary_factor")
        if prf not in (None, 1, 1.0):
            raise ConfigError(f"{source}: partial_rotary_factor={prf!r} is not supported here; allowed: 1")

    @classmethod
    def _features(cls, d: dict, source: str, kw: dict) -> dict:
        mt, n_layers, max_pos = kw["model_type"], kw["num_hidden_layers"], kw["max_position_embeddings"]
        out = {}
        attn_cap, final_cap = SOFTCAPS[mt]
        if mt != "gemma":
            out["attn_logit_softcapping"] = d.get("attn_logit_softcapping", attn_cap)
            out["final_logit_softcapping"] = d.get("final_logit_softcapping", final_cap)
            out["query_pre_attn_scalar"] = d.get("query_pre_attn_scalar", 256)
        else:
            for key in ("attn_logit_softcapping", "final_logit_softcapping", "query_pre_attn_scalar"):
                out[key] = None
        params = d.get("rope_parameters")
        nested = isinstance(params, dict) and set(params) & set(LAYER_TYPES)
        if mt == "gemma3_text":
            if nested:
                glob = Rotary.from_hf(params.get(LAYER_TYPES[0]), d.get("rope_theta", 1e6), max_pos, source,
                                      "rope_parameters.full_attention")
                local = Rotary.from_hf(params.get(LAYER_TYPES[1]), d.get("rope_local_base_freq", 1e4), max_pos,
                                       source, "rope_parameters.sliding_attention")
            else:  # the Hub's older form: rope_theta, rope_local_base_freq, rope_scaling on the global layers
                glob = read_rotary(d, source, d.get("rope_theta", 1e6), max_pos)
                local = Rotary.from_hf(None, d.get("rope_local_base_freq", 1e4), max_pos, source)
            out["rope_local"] = local
        else:
            if nested:
                raise ConfigError(f"{source}: rope_parameters per layer type is a Gemma 3 feature; a {mt} model "
                                  "has one rotary embedding")
            glob = read_rotary(d, source, d.get("rope_theta", 10000.0), max_pos)
        out["rope_theta"] = glob.rope_theta
        out["rope_scaling"] = None if glob.rope_type == "default" else glob
        window = d.get("sliding_window", 4096) if mt != "gemma" else None
        if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
            raise ConfigError(f"{source}: sliding_window={window!r}; must be a positive integer or null")
        if window is None:
            return {**out, "sliding_window": None, "layer_types": None}
        types = d.get("layer_types")
        if types is None:
            every = d.get("sliding_window_pattern", PATTERN[mt])
            if isinstance(every, bool) or not isinstance(every, int) or every < 1:
                raise ConfigError(f"{source}: sliding_window_pattern={every!r}; must be a positive integer")
            types = [LAYER_TYPES[bool((i + 1) % every)] for i in range(n_layers)]
        return {**out, "sliding_window": window, "layer_types": check_layer_types(types, source, n_layers)}

