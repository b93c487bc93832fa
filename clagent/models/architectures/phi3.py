"""``phi3``: Phi-3, Phi-3.5 and Phi-4 (text) models.

q, k and v live in one fused matrix (``attn_qkv``, q's rows then k's then v's), and the MLP's gate
and up projections in another (``ffn_up`` with 2 x n_ff rows, gate first) — in transformers too,
so LoRA trains ``qkv_proj`` and ``gate_up_proj`` whole. A file with q, k and v stored apart (some
converters write them so) is fused on the way in. Long-context models carry LongRoPE factors as
the tensors ``rope_factors_short``/``rope_factors_long``: llama.cpp uses the short ones within the
original context, as does training here; both are kept for export. Phi-4-mini rotates only part of
each head (``rope.dimension_count``). llama.cpp ignores Phi-3's sliding window, so training does too.
"""

from __future__ import annotations

import numpy as np

from clagent.models.architectures.base import Architecture, f32
from clagent.models.architectures.registry import register

SHORT, LONG = "rope_factors_short.weight", "rope_factors_long.weight"


@register
class Phi3(Architecture):
    name = "phi3"
    families = "Phi-3, Phi-3.5, Phi-4"
    hf_class = "Phi3ForCausalLM"
    lora_targets = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
    attention_targets = ("qkv_proj", "o_proj")

    def block_tensors(self, spec):
        q, kv = spec.n_head * spec.head_dim, spec.n_head_kv * spec.head_dim
        return {
            "input_layernorm.weight": ("attn_norm.weight", (spec.n_embd,)),
            "self_attn.qkv_proj.weight": ("attn_qkv.weight", (q + 2 * kv, spec.n_embd)),
            "self_attn.o_proj.weight": ("attn_output.weight", (spec.n_embd, q)),
            "post_attention_layernorm.weight": ("ffn_norm.weight", (spec.n_embd,)),
            "mlp.gate_up_proj.weight": ("ffn_up.weight", (2 * spec.n_ff, spec.n_embd)),
            "mlp.down_proj.weight": ("ffn_down.weight", (spec.n_embd, spec.n_ff)),
        }

    def alternative_names(self, spec):
        q, kv = spec.n_head * spec.head_dim, spec.n_head_kv * spec.head_dim
        out = {}
        for i in range(spec.n_layer):
            for part, rows in (("q", q), ("k", kv), ("v", kv)):
                out[f"model.layers.{i}.self_attn.{part}_proj.weight"] = (f"blk.{i}.attn_{part}.weight",
                                                                          (rows, spec.n_embd))
        return out

    def parts_of(self, hf_name):
        if hf_name.endswith("self_attn.qkv_proj.weight"):
            prefix = hf_name[: -len("qkv_proj.weight")]
            return [f"{prefix}{p}_proj.weight" for p in "qkv"]
        return []

    def combine(self, tensors, spec):
        for i in range(spec.n_layer):
            parts = [f"model.layers.{i}.self_attn.{p}_proj.weight" for p in "qkv"]
            if all(p in tensors for p in parts):
                tensors[f"model.layers.{i}.self_attn.qkv_proj.weight"] = np.concatenate([tensors.pop(p) for p in parts])
        return tensors

    def linear_rope_scale(self, meta):
        if meta.get("rope.scaling.type", "none") == "longrope":
            return 1.0  # the factors are tensors, read below
        return super().linear_rope_scale(meta)

    def extra_fields(self, meta, shapes):
        if SHORT not in shapes:
            return {}
        return {
            "rope_freq_factors": tuple(meta.tensor(SHORT).tolist()),
            "rope_long_factors": tuple(meta.tensor(LONG).tolist()) if LONG in shapes else (),
            "rope_orig_ctx": int(meta.get("rope.scaling.original_context_length", 0) or 0),
            "rope_attn_factor": f32(meta.get("rope.scaling.attn_factor", 1.0)),
        }

    def ignored_gguf_tensors(self):
        return {SHORT, LONG}

    def extra_gguf_tensors(self, spec):
        if not spec.rope_freq_factors:
            return {}
        out = {SHORT: np.array(spec.rope_freq_factors, np.float32)}
        if spec.rope_long_factors:
            out[LONG] = np.array(spec.rope_long_factors, np.float32)
        return out

    def metadata(self, spec):
        out = super().metadata(spec)
        if spec.rope_freq_factors:
            out["rope.scaling.type"] = "longrope"
        if spec.rope_orig_ctx:
            out["rope.scaling.original_context_length"] = spec.rope_orig_ctx
        if spec.rope_attn_factor != 1.0:
            out["rope.scaling.attn_factor"] = spec.rope_attn_factor
        return out

    replaced_keys = Architecture.replaced_keys + ("rope.scaling.original_context_length", "rope.scaling.attn_factor")

    def rope_parameters(self, spec):
        out = super().rope_parameters(spec)
        if spec.n_rot != spec.head_dim:
            out["partial_rotary_factor"] = spec.n_rot / spec.head_dim
        return out

    def hf_config(self, spec):
        from transformers import Phi3Config

        kwargs = self.config_kwargs(spec)
        kwargs.pop("head_dim")  # Phi-3's head size is always width / heads
        return Phi3Config(**kwargs, hidden_act="silu", sliding_window=None, resid_pdrop=0.0, embd_pdrop=0.0,
                          attention_dropout=0.0, pad_token_id=None,
                          original_max_position_embeddings=spec.rope_orig_ctx or spec.n_ctx_train)
