"""LoRA training of the slow weights, on CUDA when there is a GPU, else on the CPU."""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from clagent.models.architectures import ModelSpec, build_model, lora_targets
from clagent.updater.dataset import Tokenized


@dataclass
class TrainConfig:
    max_steps: int = 60
    max_seconds: float = 600.0
    learning_rate: float = 5e-4
    rank: int = 16
    alpha: int = 32
    batch_size: int = 4
    seed: int = 0
    device: str | None = None  # None: cuda if available, else cpu


@dataclass
class TrainResult:
    tensors: dict  # the fine-tuned model's full weights (LoRA merged in), float32 numpy
    losses: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    tokens: int = 0
    device: str = "cpu"
    trainable_parameters: int = 0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def pick_device(requested: str | None = None) -> str:
    import torch

    if requested:
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def _batches(data: list[Tokenized], batch_size: int, rng: random.Random):
    order: list[int] = []
    while True:
        if len(order) < batch_size:
            order += rng.sample(range(len(data)), len(data))
        yield [data[order.pop()] for _ in range(min(batch_size, len(data)))]


def answer_loss(model, ids, mask, labels):
    """The causal-LM loss (mean cross-entropy of each labelled next token), with the output head
    applied only where there is a label. The same value as ``model(..., labels=labels).loss``, but
    the head of a large vocabulary (Gemma's 262k tokens, Qwen's 152k) is most of a small model's
    compute and memory, and prompt tokens carry no label."""
    import torch

    hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
    target = labels[:, 1:]
    keep = target != -100
    logits = model.lm_head(hidden[keep]).float()
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return torch.nn.functional.cross_entropy(logits, target[keep])


def train_lora(spec: ModelSpec, tensors: dict[str, np.ndarray], data: list[Tokenized], cfg: TrainConfig,
               progress: Callable[[int, int, str], None] | None = None) -> TrainResult:
    """LoRA on the architecture's own linear modules (``lora_targets``: the seven projections of
    llama-style models, Phi-3's fused qkv and gate-up ones), merged back into full weights."""
    import torch
    from peft import LoraConfig, get_peft_model

    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    model = build_model(spec, tensors, device, copy=False)  # LoRA never writes to the base weights
    model.config.use_cache = False
    lora = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=0.0, target_modules=lora_targets(spec),
                      bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate,
                              weight_decay=0.0)
    warmup = max(1, cfg.max_steps // 10)

    def lr_at(step: int) -> float:  # linear warm-up, cosine decay
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, cfg.max_steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(optim, lr_at)
    result = TrainResult(tensors={}, device=device, trainable_parameters=trainable)
    model.train()
    started = time.monotonic()
    batches = _batches(data, cfg.batch_size, rng)
    for step in range(cfg.max_steps):
        if time.monotonic() - started > cfg.max_seconds:
            break
        batch = next(batches)
        width = max(len(t.input_ids) for t in batch)
        ids = torch.full((len(batch), width), 0, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, t in enumerate(batch):
            n = len(t.input_ids)
            ids[i, :n] = torch.tensor(t.input_ids)
            labels[i, :n] = torch.tensor(t.labels)
            mask[i, :n] = 1
        loss = answer_loss(model.get_base_model(), ids.to(device), mask.to(device), labels.to(device))
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optim.step()
        sched.step()
        optim.zero_grad(set_to_none=True)
        result.losses.append(round(float(loss.detach()), 4))
        result.tokens += int(mask.sum())
        result.steps = step + 1
        if progress:
            progress(step + 1, cfg.max_steps, f"steps, loss {result.losses[-1]:.3f}")
    if device == "cuda":
        torch.cuda.synchronize()
    result.seconds = time.monotonic() - started
    result.tensors = merged_weights(model, tensors)
    return result


def merged_weights(model, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The fine-tuned model's full weights: each LoRA-trained matrix plus its adapter's update, as
    new arrays; every other tensor is the base's own array (shared, not copied: the base weights
    are frozen, and a 1.5B model is 6 GB a copy)."""
    import torch
    from peft.tuners.lora import LoraLayer

    out = dict(tensors)
    prefix = "base_model.model."
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, LoraLayer) and hasattr(module, "get_delta_weight"):
                key = f"{name[len(prefix):] if name.startswith(prefix) else name}.weight"
                delta = module.get_delta_weight("default").float().cpu().numpy()
                out[key] = (np.asarray(tensors[key], dtype=np.float32) + delta).astype(np.float32, copy=False)
    return out
