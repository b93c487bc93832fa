"""``gemma3``: Gemma 3 text models (270M, 1B, and the text part of the larger ones).

- Gemma's RMS norms multiply by (1 + w); llama.cpp's converter stores 1 + w, so every norm weight
  (the four per block, q/k norms, the final norm) is offset by one between the two.
- The embeddings are scaled by sqrt(width) on the way in, by both engines at run time (nothing in
  the weights); the output head is tied to them.
- Five local layers (sliding window, RoPE base 10,000) to one global layer (RoPE base 1,000,000,
  linear scaling on the larger models), q/k norms, a GELU-gated MLP, norms after attention and
  after the MLP too, and queries scaled by 1/sqrt(head size) (1/sqrt(width / heads) for 27B).
"""

from __future__ import annotations

from clagent.errors import ClagentError
from clagent.models.architectures.base import Architecture, f32
from clagent.models.architectures.registry import register

DEFAULT_PATTERN = 6  # llama.cpp's default: layers 5, 11, 17 ... are global
DEFAULT_BASE_SWA = 10000.0


@register
class Gemma3(Architecture):
    name = "gemma3"
    families = "Gemma 3"
    hf_class = "Gemma3ForCausalLM"
    qk_norm = True

    def block_tensors(self, spec):
        out = super().block_tensors(spec)
        out["post_attention_layernorm.weight"] = ("post_attention_norm.weight", (spec.n_embd,))
        out["pre_feedforward_layernorm.weight"] = ("ffn_norm.weight", (spec.n_embd,))
        out["post_feedforward_layernorm.weight"] = ("post_ffw_norm.weight", (spec.n_embd,))
        return out

    def from_gguf(self, hf_name, w, spec):
        return w - 1.0 if hf_name.endswith("norm.weight") else w

    def to_gguf(self, hf_name, w, spec):
        return w + 1.0 if hf_name.endswith("norm.weight") else w

    def extra_fields(self, meta, shapes):
        window = int(meta.get("attention.sliding_window", 0) or 0)
        out = {"sliding_window": window, "final_logit_softcap": f32(meta.get("final_logit_softcapping", 0.0) or 0.0)}
        if window:
            out["swa_pattern"] = _pattern(meta)
            out["rope_theta_swa"] = f32(meta.get("rope.freq_base_swa", DEFAULT_BASE_SWA))
        if meta.get("attn_logit_softcapping"):
            raise ClagentError(f"{meta.where}: attention logit soft-capping (Gemma 2) is not supported")
        return out

    def metadata(self, spec):
        out = super().metadata(spec)
        if spec.sliding_window:
            out["attention.sliding_window"] = spec.sliding_window
            out["rope.freq_base_swa"] = spec.rope_theta_swa
            if spec.swa_pattern != DEFAULT_PATTERN:
                out["attention.sliding_window_pattern"] = spec.swa_pattern
        if spec.final_logit_softcap:
            out["final_logit_softcapping"] = spec.final_logit_softcap
        return out

    replaced_keys = Architecture.replaced_keys + ("attention.sliding_window", "attention.sliding_window_pattern",
                                                  "rope.freq_base_swa", "final_logit_softcapping")

    def layer_types(self, spec) -> list[str]:
        """llama.cpp's rule: with pattern n, layer i is local unless i % n == n - 1."""
        if not spec.sliding_window:
            return ["full_attention"] * spec.n_layer
        n = spec.swa_pattern
        return ["sliding_attention" if n == 0 or i % n < n - 1 else "full_attention" for i in range(spec.n_layer)]

    def rope_parameters(self, spec):
        full = super().rope_parameters(spec)
        return {"full_attention": full,
                "sliding_attention": {"rope_type": "default", "rope_theta": spec.rope_theta_swa or DEFAULT_BASE_SWA}}

    def hf_config(self, spec):
        from transformers import Gemma3TextConfig

        scalar = spec.n_embd // spec.n_head if spec.n_layer == 62 else spec.head_dim  # llama.cpp: 27B by depth
        return Gemma3TextConfig(
            **self.config_kwargs(spec), hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=scalar,
            sliding_window=spec.sliding_window or spec.n_ctx_train, layer_types=self.layer_types(spec),
            final_logit_softcapping=spec.final_logit_softcap or None, attn_logit_softcapping=None,
            pad_token_id=None,
        )


def _pattern(meta) -> int:
    raw = meta.raw(f"{meta.arch}.attention.sliding_window_pattern")
    if raw is None:
        return DEFAULT_PATTERN
    if not isinstance(raw, list):
        return int(raw)
    # a per-layer list of "is local": accepted when it is the periodic layout a pattern describes
    for n in range(1, len(raw) + 1):
        if all(bool(v) == (i % n < n - 1) for i, v in enumerate(raw)):
            return n
    raise ClagentError(f"{meta.where}: an irregular sliding-window layout is not supported")
