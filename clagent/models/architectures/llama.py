"""``llama``: Llama 2 and 3, Mistral, SmolLM2 and the many models built the same way.

llama.cpp's RoPE rotates adjacent pairs of a head's dimensions, transformers' rotates its two
halves against each other, so llama.cpp's converter permutes the rows of q and k: they are permuted
back on the way in and again on the way out. Llama 3.1/3.2 stretch the low RoPE frequencies; the
GGUF holds the per-pair divisors as the tensor ``rope_freqs.weight``, which becomes part of the spec.
"""

from __future__ import annotations

import numpy as np

from clagent.models.architectures.base import Architecture, permute_from_gguf, permute_to_gguf
from clagent.models.architectures.registry import register

ROPE_FREQS = "rope_freqs.weight"


@register
class Llama(Architecture):
    name = "llama"
    families = "Llama 2/3, Mistral, SmolLM2"
    hf_class = "LlamaForCausalLM"

    def from_gguf(self, hf_name, w, spec):
        return self._permute(hf_name, w, spec, permute_from_gguf)

    def to_gguf(self, hf_name, w, spec):
        return self._permute(hf_name, w, spec, permute_to_gguf)

    @staticmethod
    def _permute(hf_name, w, spec, fn):
        if hf_name.endswith("self_attn.q_proj.weight"):
            return fn(w, spec.n_head)
        if hf_name.endswith("self_attn.k_proj.weight"):
            return fn(w, spec.n_head_kv)
        return w

    def extra_fields(self, meta, shapes):
        if ROPE_FREQS in shapes:
            return {"rope_freq_factors": tuple(meta.tensor(ROPE_FREQS).tolist())}
        return {}

    def ignored_gguf_tensors(self):
        return {ROPE_FREQS}

    def extra_gguf_tensors(self, spec):
        return {ROPE_FREQS: np.array(spec.rope_freq_factors, np.float32)} if spec.rope_freq_factors else {}

    def hf_config(self, spec):
        from transformers import LlamaConfig

        return LlamaConfig(**self.config_kwargs(spec), hidden_act="silu", attention_bias=False, mlp_bias=False)
