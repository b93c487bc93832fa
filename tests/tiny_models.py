"""Tiny random models of every supported architecture, built by the suite itself (no weights from
anywhere), each with what makes its family different switched on: Llama 3 RoPE frequency factors,
Qwen 2 biases and an untied output head, Qwen 3 q/k norms and a head size of its own, Gemma 3
local/global layers with a sliding window shorter than the test prompts, Phi-3 LongRoPE factors
and partial rotary dimensions. They borrow the embedded SmolLM2's tokenizer (49152 tokens)."""

from __future__ import annotations

import math

import numpy as np

from clagent.models import architectures
from clagent.models.architectures import ModelSpec

BASE = dict(n_vocab=49152, n_embd=64, n_ff=128, n_layer=2, n_head=4, n_head_kv=2, n_ctx_train=2048,
            rope_theta=10000.0, rms_eps=1e-5, tied_embeddings=True)


def _llama3_factors(head_dim: int, theta: float) -> tuple[float, ...]:
    """Llama 3.1's RoPE frequency divisors (factor 8, low 1, high 4, original context 64 here, so
    that some pairs fall in each band)."""
    out = []
    for i in range(0, head_dim, 2):
        wavelen = 2 * math.pi * theta ** (i / head_dim)
        if wavelen < 64 / 4:
            out.append(1.0)
        elif wavelen > 64 / 1:
            out.append(8.0)
        else:
            smooth = (64 / wavelen - 1) / (4 - 1)
            out.append(1 / ((1 - smooth) / 8 + smooth))
    return tuple(out)


SPECS = {
    "llama": ModelSpec(**BASE, arch="llama", rope_freq_factors=_llama3_factors(16, 10000.0)),
    "qwen2": ModelSpec(**{**BASE, "tied_embeddings": False, "rope_theta": 1e6}, arch="qwen2"),
    "qwen3": ModelSpec(**{**BASE, "n_layer": 3}, arch="qwen3", head_dim=32),
    "gemma3": ModelSpec(**{**BASE, "n_layer": 3, "n_head_kv": 1, "rope_theta": 1e6, "rms_eps": 1e-6}, arch="gemma3",
                        head_dim=32, sliding_window=8, swa_pattern=3, rope_theta_swa=10000.0),
    "phi3": ModelSpec(**BASE, arch="phi3", n_rot=12,
                      rope_freq_factors=(1.0, 1.1, 1.3, 1.8, 2.5, 3.0),
                      rope_long_factors=(1.0, 2.0, 4.0, 8.0, 12.0, 16.0), rope_orig_ctx=512,
                      rope_attn_factor=math.sqrt(1 + math.log(4) / math.log(512))),
}


def make_model(arch: str, seed: int = 0, spec: ModelSpec | None = None):
    """(spec, transformers model) with random weights large enough that outputs depend on all of
    them: norms away from their neutral value (1, or 0 for Gemma's 1 + w), biases non-zero."""
    import torch

    spec = spec or SPECS[arch]
    torch.manual_seed(seed)
    model = architectures.build_model(spec).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2:
                p.normal_(0, 0.08)
            elif name.endswith("bias"):
                p.normal_(0, 0.1)
            else:  # a norm
                p.normal_(0.0 if arch == "gemma3" else 1.0, 0.1)
    return spec, model


def state(model) -> dict[str, np.ndarray]:
    return {k: v.detach().float().numpy().copy() for k, v in model.state_dict().items()}
