"""What every architecture module provides, and the llama-style defaults most of them share.

A model crosses the GGUF boundary as float32 arrays keyed by transformers' names
(``model.layers.3.self_attn.q_proj.weight``). An architecture says, for its family:
- which tensors a model has, their GGUF names and shapes (from its hyper-parameters, ``ModelSpec``);
- how a tensor's values differ between llama.cpp's layout and transformers' (``from_gguf`` /
  ``to_gguf``: a row permutation, a constant offset);
- which GGUF metadata keys hold its hyper-parameters (``read_spec`` / ``metadata``);
- the transformers model class and config that compute what llama.cpp computes (``hf_config``,
  ``prepare_model``), and the linear modules LoRA trains (``lora_targets``).
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any, Mapping

import numpy as np

from clagent.errors import ClagentError

Shape = tuple[int, ...]

LLAMA_STYLE_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class ModelSpec:
    """The hyper-parameters that define a model's shapes and computation, for any architecture.
    Fields after ``tied_embeddings`` are only set by the families that use them."""

    n_vocab: int
    n_embd: int
    n_ff: int
    n_layer: int
    n_head: int
    n_head_kv: int
    n_ctx_train: int
    rope_theta: float
    rms_eps: float
    tied_embeddings: bool
    arch: str = "llama"
    head_dim: int = 0  # 0: n_embd // n_head
    n_rot: int = 0  # rotary dimensions per head; 0: head_dim (Phi-4-mini rotates 3/4 of them)
    rope_scale: float = 1.0  # linear RoPE scaling (positions divided by it)
    rope_freq_factors: tuple[float, ...] = ()  # per-pair divisors of the RoPE frequencies (Llama 3, Phi-3 short)
    rope_long_factors: tuple[float, ...] = ()  # Phi-3 LongRoPE beyond rope_orig_ctx (kept for llama.cpp)
    rope_orig_ctx: int = 0
    rope_attn_factor: float = 1.0  # scales cos/sin (Phi-3 LongRoPE)
    sliding_window: int = 0  # Gemma 3 local layers
    swa_pattern: int = 0  # Gemma 3: every swa_pattern-th layer attends globally
    rope_theta_swa: float = 0.0  # Gemma 3: RoPE base of the local layers
    final_logit_softcap: float = 0.0

    def __post_init__(self):
        if not self.head_dim:
            object.__setattr__(self, "head_dim", self.n_embd // self.n_head)
        if not self.n_rot:
            object.__setattr__(self, "n_rot", self.head_dim)
        for name in ("rope_freq_factors", "rope_long_factors"):  # as the GGUF holds them: float32
            object.__setattr__(self, name, tuple(float(np.float32(x)) for x in getattr(self, name)))
        for name in ("rope_theta", "rms_eps", "rope_scale", "rope_attn_factor", "rope_theta_swa",
                     "final_logit_softcap"):
            object.__setattr__(self, name, f32(getattr(self, name)))

    def to_dict(self) -> dict:
        """Only what differs from the defaults: a llama spec reads as it did before other families
        existed, so versions made then compare equal to the same model read now."""
        out = asdict(self)
        defaults = {f.name: f.default for f in fields(self) if f.default is not MISSING}
        implied = {"head_dim": self.n_embd // self.n_head, "n_rot": self.head_dim}
        for key, default in {**defaults, **implied}.items():
            if key in out and out[key] == default and key not in _REQUIRED:
                del out[key]
        for key in ("rope_freq_factors", "rope_long_factors"):
            if key in out:
                out[key] = list(out[key])
        return out

    def hf_config(self):
        """The transformers config of this model (see ``architectures.build_model`` for the model)."""
        from clagent.models.architectures.registry import get

        return get(self.arch).hf_config(self)

    @classmethod
    def from_dict(cls, d: Mapping) -> "ModelSpec":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


_REQUIRED = {"n_vocab", "n_embd", "n_ff", "n_layer", "n_head", "n_head_kv", "n_ctx_train", "rope_theta", "rms_eps",
             "tied_embeddings"}


def f32(value) -> float:
    """GGUF stores floats as float32: 1e-5 comes back as 9.99999974e-06. Undo that rounding."""
    return float(f"{float(value):.7g}")


class Metadata:
    """The GGUF's key/values, read for one architecture: ``get("block_count")`` reads
    ``<arch>.block_count``; ``tensor(name)`` reads a small tensor that holds hyper-parameters."""

    def __init__(self, reader, arch: str, where: str):
        self.reader, self.fields, self.arch, self.where = reader, reader.fields, arch, where

    def tensor(self, name: str) -> np.ndarray:
        import gguf

        t = next((t for t in self.reader.tensors if t.name == name), None)
        if t is None:
            raise ClagentError(f"{self.where}: missing tensors, e.g. {name}")
        return np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32).ravel()

    def raw(self, key: str, default: Any = None) -> Any:
        f = self.fields.get(key)
        return default if f is None else f.contents()

    def get(self, key: str, default: Any = None, required: bool = False) -> Any:
        value = self.raw(f"{self.arch}.{key}")
        if value is None:
            if required:
                raise ClagentError(f"{self.where}: metadata key {self.arch}.{key} is missing")
            return default
        if isinstance(value, list):
            raise ClagentError(f"{self.where}: {self.arch}.{key} varies per layer, which clagent does not support")
        return value


class Architecture:
    """A llama-style decoder: token embeddings, blocks of (RMS norm, attention, RMS norm, gated MLP),
    a final norm and an output head that may be tied to the embeddings. Families override what
    differs."""

    name = ""
    families = ""  # what people call the models of this architecture, for messages and the README
    hf_class = ""  # the transformers class that computes what llama.cpp computes for it
    lora_targets: tuple[str, ...] = LLAMA_STYLE_TARGETS
    # Those of lora_targets in the attention (the ``lora_targets`` setting's "attention"); the rest
    # are the MLP's ("mlp").
    attention_targets: tuple[str, ...] = LLAMA_STYLE_TARGETS[:4]
    attn_bias = False  # q/k/v biases (Qwen 2)
    qk_norm = False  # per-head RMS norms of q and k (Qwen 3, Gemma 3)

    # -- tensors -----------------------------------------------------------------------------------
    def block_tensors(self, spec: ModelSpec) -> dict[str, tuple[str, Shape]]:
        """transformers suffix -> (GGUF suffix, shape) for one block."""
        q, kv = spec.n_head * spec.head_dim, spec.n_head_kv * spec.head_dim
        out = {
            "input_layernorm.weight": ("attn_norm.weight", (spec.n_embd,)),
            "self_attn.q_proj.weight": ("attn_q.weight", (q, spec.n_embd)),
            "self_attn.k_proj.weight": ("attn_k.weight", (kv, spec.n_embd)),
            "self_attn.v_proj.weight": ("attn_v.weight", (kv, spec.n_embd)),
            "self_attn.o_proj.weight": ("attn_output.weight", (spec.n_embd, q)),
            "post_attention_layernorm.weight": ("ffn_norm.weight", (spec.n_embd,)),
            "mlp.gate_proj.weight": ("ffn_gate.weight", (spec.n_ff, spec.n_embd)),
            "mlp.up_proj.weight": ("ffn_up.weight", (spec.n_ff, spec.n_embd)),
            "mlp.down_proj.weight": ("ffn_down.weight", (spec.n_embd, spec.n_ff)),
        }
        if self.attn_bias:
            out.update({
                "self_attn.q_proj.bias": ("attn_q.bias", (q,)),
                "self_attn.k_proj.bias": ("attn_k.bias", (kv,)),
                "self_attn.v_proj.bias": ("attn_v.bias", (kv,)),
            })
        if self.qk_norm:
            out.update({
                "self_attn.q_norm.weight": ("attn_q_norm.weight", (spec.head_dim,)),
                "self_attn.k_norm.weight": ("attn_k_norm.weight", (spec.head_dim,)),
            })
        return out

    def tensors(self, spec: ModelSpec) -> dict[str, tuple[str, Shape]]:
        """transformers name -> (GGUF name, shape), for every tensor of the model."""
        out = {
            "model.embed_tokens.weight": ("token_embd.weight", (spec.n_vocab, spec.n_embd)),
            "model.norm.weight": ("output_norm.weight", (spec.n_embd,)),
        }
        if not spec.tied_embeddings:
            out["lm_head.weight"] = ("output.weight", (spec.n_vocab, spec.n_embd))
        for i in range(spec.n_layer):
            for hf, (gg, shape) in self.block_tensors(spec).items():
                out[f"model.layers.{i}.{hf}"] = (f"blk.{i}.{gg}", shape)
        return out

    def extra_gguf_tensors(self, spec: ModelSpec) -> dict[str, np.ndarray]:
        """Tensors llama.cpp reads that are hyper-parameters to us (RoPE factors): written from the spec."""
        return {}

    def ignored_gguf_tensors(self) -> set[str]:
        """GGUF tensors read into the spec (or recomputed by llama.cpp), not into the weights."""
        return set()

    def combine(self, tensors: dict[str, np.ndarray], spec: ModelSpec) -> dict[str, np.ndarray]:
        """Bring a file's tensors to this architecture's own set (e.g. fuse separate q/k/v)."""
        return tensors

    def alternative_names(self, spec: ModelSpec) -> dict[str, tuple[str, Shape]]:
        """GGUF tensors some files use instead of ours, by transformers-side name (before ``combine``)."""
        return {}

    def parts_of(self, hf_name: str) -> list[str]:
        """The alternative tensors that together stand for ``hf_name`` (``combine`` joins them)."""
        return []

    # -- values ------------------------------------------------------------------------------------
    def from_gguf(self, hf_name: str, w: np.ndarray, spec: ModelSpec) -> np.ndarray:
        return w

    def to_gguf(self, hf_name: str, w: np.ndarray, spec: ModelSpec) -> np.ndarray:
        return w

    # -- metadata ----------------------------------------------------------------------------------
    def read_spec(self, meta: Metadata, shapes: Mapping[str, Shape]) -> ModelSpec:
        """The spec from the GGUF's metadata; the vocabulary size and tying from its tensors."""
        return ModelSpec(**self.common_fields(meta, shapes), arch=self.name, **self.extra_fields(meta, shapes))

    def common_fields(self, meta: Metadata, shapes: Mapping[str, Shape]) -> dict:
        n_embd = int(meta.get("embedding_length", required=True))
        n_head = int(meta.get("attention.head_count", required=True))
        embd = shapes.get("token_embd.weight")
        if embd is None:
            raise ClagentError(f"{meta.where}: missing tensors, e.g. token_embd.weight")
        tokens = meta.fields.get("tokenizer.ggml.tokens")
        n_vocab = int(embd[0])
        if tokens is not None and len(tokens.data) != n_vocab:
            raise ClagentError(f"{meta.where}: metadata and tensors disagree: the tokenizer has {len(tokens.data)} "
                               f"tokens but token_embd.weight has {n_vocab} rows")
        return dict(
            n_vocab=n_vocab,
            n_embd=n_embd,
            n_ff=int(meta.get("feed_forward_length", required=True)),
            n_layer=int(meta.get("block_count", required=True)),
            n_head=n_head,
            n_head_kv=int(meta.get("attention.head_count_kv", n_head)),
            n_ctx_train=int(meta.get("context_length", 2048)),
            rope_theta=f32(meta.get("rope.freq_base", 10000.0)),
            rms_eps=f32(meta.get("attention.layer_norm_rms_epsilon", 1e-5)),
            tied_embeddings="output.weight" not in shapes,
            head_dim=int(meta.get("attention.key_length", n_embd // n_head)),
            n_rot=int(meta.get("rope.dimension_count", 0)),
            rope_scale=self.linear_rope_scale(meta),
        )

    def extra_fields(self, meta: Metadata, shapes: Mapping[str, Shape]) -> dict:
        return {}

    def linear_rope_scale(self, meta: Metadata) -> float:
        kind = meta.get("rope.scaling.type", "none")
        factor = f32(meta.get("rope.scaling.factor", 0.0) or 0.0)
        if kind in ("none", "") or factor in (0.0, 1.0):
            return 1.0
        if kind != "linear":
            raise ClagentError(f"{meta.where}: RoPE scaling {kind!r} is not supported (clagent supports linear "
                               f"scaling and the Llama 3 / Phi-3 frequency factors)")
        return factor

    def metadata(self, spec: ModelSpec) -> dict[str, Any]:
        """Key (without the architecture prefix) -> value, for every hyper-parameter of the spec.
        Ints are written as uint32, floats as float32."""
        out = {
            "context_length": spec.n_ctx_train,
            "embedding_length": spec.n_embd,
            "block_count": spec.n_layer,
            "feed_forward_length": spec.n_ff,
            "attention.head_count": spec.n_head,
            "attention.head_count_kv": spec.n_head_kv,
            "attention.layer_norm_rms_epsilon": spec.rms_eps,
            "rope.freq_base": spec.rope_theta,
            "rope.dimension_count": spec.n_rot,
            "vocab_size": spec.n_vocab,
            "attention.key_length": spec.head_dim,
            "attention.value_length": spec.head_dim,
        }
        if spec.rope_scale != 1.0:
            out["rope.scaling.type"] = "linear"
            out["rope.scaling.factor"] = spec.rope_scale
        return out

    # Keys a source file may hold that describe a RoPE scaling we have rewritten (or dropped).
    replaced_keys = ("rope.scaling.type", "rope.scaling.factor")

    # -- transformers --------------------------------------------------------------------------------
    def config_kwargs(self, spec: ModelSpec) -> dict:
        """What every llama-style transformers config takes."""
        return dict(
            vocab_size=spec.n_vocab, hidden_size=spec.n_embd, intermediate_size=spec.n_ff,
            num_hidden_layers=spec.n_layer, num_attention_heads=spec.n_head, num_key_value_heads=spec.n_head_kv,
            head_dim=spec.head_dim, max_position_embeddings=spec.n_ctx_train, rms_norm_eps=spec.rms_eps,
            tie_word_embeddings=spec.tied_embeddings,
            rope_parameters=self.rope_parameters(spec),
        )

    def rope_parameters(self, spec: ModelSpec) -> dict:
        if spec.rope_scale != 1.0:
            return {"rope_type": "linear", "rope_theta": spec.rope_theta, "factor": spec.rope_scale}
        return {"rope_type": "default", "rope_theta": spec.rope_theta}

    def hf_config(self, spec: ModelSpec):
        raise NotImplementedError

    def prepare_model(self, model, spec: ModelSpec) -> None:
        """Adjust a freshly built transformers model where its config cannot say what llama.cpp
        does: RoPE frequencies divided by per-pair factors, cos/sin scaled."""
        if spec.rope_freq_factors or spec.rope_attn_factor != 1.0:
            import torch

            factors = torch.tensor(spec.rope_freq_factors or [1.0] * (spec.n_rot // 2), dtype=torch.float32)
            for rotary in _rotary_modules(model):
                rotary.inv_freq = rotary.inv_freq.float() / factors.to(rotary.inv_freq.device)
                rotary.original_inv_freq = rotary.inv_freq
                rotary.attention_scaling = spec.rope_attn_factor


def _rotary_modules(model) -> list:
    found = [m for m in model.modules() if hasattr(m, "inv_freq") and hasattr(m, "attention_scaling")]
    if not found:
        raise ClagentError("this transformers version's rotary embedding cannot take RoPE frequency factors")
    return found


def permute_to_gguf(w: np.ndarray, n_head: int) -> np.ndarray:
    """Reorder q/k rows from transformers' rotary layout (halves) to llama.cpp's (interleaved pairs)."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def permute_from_gguf(w: np.ndarray, n_head: int) -> np.ndarray:
    """The inverse of :func:`permute_to_gguf`."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
