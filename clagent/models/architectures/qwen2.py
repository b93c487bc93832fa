"""``qwen2``: Qwen 2 and Qwen 2.5 (and their Coder and Math models).

Llama's layout without the permutation (llama.cpp rotates Qwen's q and k as halves, like
transformers), plus a bias on each of q, k and v: ``attn_q.bias`` and so on, trained and merged like
any other tensor. LoRA trains the same seven projections as for llama.
"""

from __future__ import annotations

from clagent.models.architectures.base import Architecture
from clagent.models.architectures.registry import register


@register
class Qwen2(Architecture):
    name = "qwen2"
    families = "Qwen 2/2.5"
    hf_class = "Qwen2ForCausalLM"
    attn_bias = True

    def hf_config(self, spec):
        from transformers import Qwen2Config

        return Qwen2Config(**self.config_kwargs(spec), hidden_act="silu", use_sliding_window=False)
