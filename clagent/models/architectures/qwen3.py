"""``qwen3``: Qwen 3 (dense models).

No biases, but an RMS norm over each head of q and of k before RoPE (``attn_q_norm`` and
``attn_k_norm``, one weight per head dimension), and a head size of its own (``key_length``: 128 for
the 0.6B model, whose width is 1024 over 16 heads).
"""

from __future__ import annotations

from clagent.models.architectures.base import Architecture
from clagent.models.architectures.registry import register


@register
class Qwen3(Architecture):
    name = "qwen3"
    families = "Qwen 3"
    hf_class = "Qwen3ForCausalLM"
    qk_norm = True

    def hf_config(self, spec):
        from transformers import Qwen3Config

        return Qwen3Config(**self.config_kwargs(spec), hidden_act="silu", attention_bias=False,
                           use_sliding_window=False)
