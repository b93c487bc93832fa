"""LoRA training of the slow weights, on CUDA when there is a GPU, else on the CPU.

Besides the cross-entropy on the new data, training can be anchored: on general prompts (never the
gate's drift prompts) the model's next-token distributions are kept close, by a KL term, to those of
a reference model (the base version, stored once, or the model being trained, before training).
What is learned then changes the facts asked about, not how the model answers everything else;
replaying the reference's greedy answers with cross-entropy instead pulls every distribution
towards its argmax, which is itself a drift.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from clagent.models.architectures import ModelSpec, build_model, lora_groups, lora_targets
from clagent.updater.dataset import Tokenized

ANCHOR_TOP_K = 32


@dataclass
class Anchor:
    """A general prompt and a reference answer, teacher-forced: the positions from ``start`` on
    predict the answer; ``idx``/``logp`` (positions, k) are the reference model's top-k next-token
    log-probabilities there (None: taken from the model itself before training)."""
    input_ids: list[int]
    start: int
    idx: np.ndarray | None = None
    logp: np.ndarray | None = None

    @property
    def positions(self) -> int:
        return len(self.input_ids) - 1 - self.start


def parse_targets(text: str, spec: ModelSpec | None = None) -> list[str]:
    """``lora_targets``: "all", "attention", "mlp" or a comma list of module names, as the modules
    of ``spec``'s architecture (llama-style ones without a spec): Phi-3's "attention" is its fused
    qkv_proj and o_proj. A name the architecture lacks is a ValueError that lists what it has."""
    arch = spec.arch if spec is not None else "llama"
    groups = lora_groups(arch)
    names: list[str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part not in groups and part not in groups["all"]:
            raise ValueError(f"unknown LoRA target {part!r} for {arch} models: use all, attention, mlp or "
                             f"{', '.join(groups['all'])}")
        names += [n for n in groups.get(part, [part]) if n not in names]
    if not names:
        raise ValueError("no LoRA target given")
    return names


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
    targets: list[str] | None = None  # the architecture's module names (None: all of lora_targets(spec))
    anchor_weight: float = 0.0  # weight of the KL term on the anchors (0: none)
    anchor_batch: int = 2  # anchors per step


@dataclass
class TrainResult:
    tensors: dict  # the fine-tuned model's full weights (LoRA merged in), float32 numpy
    losses: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    tokens: int = 0
    device: str = "cpu"
    trainable_parameters: int = 0
    anchor_kl: list[float] = field(default_factory=list)  # the KL term per step
    anchors: list[Anchor] = field(default_factory=list)  # with their reference distributions filled in

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def set_threads(threads: int) -> int:
    """Torch's CPU threads for this process: ``threads``, or 0 for half the cores (at least one)."""
    import os

    import torch

    n = threads if threads > 0 else max(1, (os.cpu_count() or 2) // 2)
    torch.set_num_threads(n)
    return n


def pick_device(requested: str | None = None) -> str:
    import torch

    if requested:
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def _batches(data: list, batch_size: int, rng: random.Random, length=lambda x: len(x.input_ids)):
    """Endless batches, every item once per epoch; items of similar length batched together (a
    batch is padded to its longest: a notes example among short questions would double its cost)."""
    size = min(batch_size, len(data))
    while True:
        order = rng.sample(range(len(data)), len(data))
        batches = []
        for g in range(0, len(order), size * 8):
            group = sorted(order[g:g + size * 8], key=lambda i: length(data[i]))
            batches += [group[i:i + size] for i in range(0, len(group), size)]
        rng.shuffle(batches)
        for b in batches:
            if len(b) < size:  # the epoch's remainder, topped up from the start of the next
                b = b + rng.sample([i for i in range(len(data)) if i not in b], size - len(b))
            yield [data[i] for i in b]


def _pad(rows: list[list[int]]):
    import torch

    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    return ids, mask


def _head(model, hidden):
    """The output head on ``hidden`` (float32 logits), with the final soft-capping where the
    architecture has one (Gemma)."""
    import torch

    logits = model.lm_head(hidden).float()
    cap = getattr(model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def answer_loss(model, ids, mask, labels):
    """The causal-LM loss (mean cross-entropy of each labelled next token), with the output head
    applied only where there is a label. The same value as ``model(..., labels=labels).loss``, but
    the head of a large vocabulary (Gemma's 262k tokens, Qwen's 152k) is most of a small model's
    compute and memory, and prompt tokens carry no label."""
    import torch

    hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
    target = labels[:, 1:]
    keep = target != -100
    return torch.nn.functional.cross_entropy(_head(model, hidden[keep]), target[keep])


def _span(a: Anchor) -> int:
    """How many of the anchor's positions are compared (all, or as many as its reference holds)."""
    return a.positions if a.idx is None else min(a.positions, len(a.idx))


def _anchor_logits(model, ids, mask, anchors: list[Anchor]) -> list:
    """Each anchor's next-token logits on its answer positions, the head applied there only (as in
    ``answer_loss``); row i of ``ids`` is ``anchors[i]``."""
    import torch

    hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
    spans = [_span(a) for a in anchors]
    picked = torch.cat([hidden[i, a.start:a.start + n] for i, (a, n) in enumerate(zip(anchors, spans))])
    return list(_head(model, picked).split(spans))


def reference_distributions(model, anchors: list[Anchor], device: str, k: int = ANCHOR_TOP_K) -> None:
    """Fill in each anchor's top-k log-probabilities from ``model`` (a causal LM) as it is now."""
    import torch

    with torch.no_grad():
        for a in anchors:
            if a.idx is not None:
                continue
            ids = torch.tensor([a.input_ids], device=device)
            logits = _anchor_logits(model, ids, torch.ones_like(ids), [a])[0]
            top = torch.log_softmax(logits, -1).topk(k, dim=-1)
            a.idx, a.logp = top.indices.cpu().numpy(), top.values.cpu().numpy()


def _kl(rows: list, anchors: list[Anchor]):
    """Mean over the anchors' positions of KL(reference || model), on the reference's top-k;
    ``rows[i]`` are the model's logits on anchor i's positions."""
    import torch

    total, count = 0.0, 0
    for logits, a in zip(rows, anchors):
        n = len(logits)
        logq = torch.log_softmax(logits.float(), -1)
        idx = torch.from_numpy(np.asarray(a.idx[:n])).to(logq.device)
        logp = torch.from_numpy(np.asarray(a.logp[:n], dtype=np.float32)).to(logq.device)
        total = total + (logp.exp() * (logp - logq.gather(-1, idx))).sum()
        count += n
    return total / max(1, count)


def _anchor_kl(logits, anchors: list[Anchor]):
    """``_kl`` from a model's full logits (batch, positions, vocab), row i being ``anchors[i]``."""
    return _kl([logits[i, a.start:a.start + _span(a)] for i, a in enumerate(anchors)], anchors)


def train_lora(spec: ModelSpec, tensors: dict[str, np.ndarray], data: list[Tokenized], cfg: TrainConfig,
               progress: Callable[[int, int, str], None] | None = None,
               anchors: list[Anchor] = ()) -> TrainResult:
    """LoRA on the architecture's own linear modules (``cfg.targets``, by default all of
    ``lora_targets``: the seven projections of llama-style models, Phi-3's fused qkv and gate-up
    ones), merged back into full weights. With ``anchors`` and ``cfg.anchor_weight``, a KL term
    holds the next-token distributions on them near their reference (the model before training,
    where an anchor carries none)."""
    import torch
    from peft import LoraConfig, get_peft_model

    available = lora_targets(spec)
    targets = list(cfg.targets) if cfg.targets else available
    unknown = [t for t in targets if t not in available]
    if unknown:
        raise ValueError(f"the {spec.arch} model has no LoRA target {', '.join(map(repr, unknown))}: "
                         f"it has {', '.join(available)}")
    device = pick_device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    model = build_model(spec, tensors, device, copy=False)  # LoRA never writes to the base weights
    model.config.use_cache = False
    anchors = [a for a in anchors if a.positions > 0] if cfg.anchor_weight > 0 else []
    if anchors:
        model.eval()
        reference_distributions(model, anchors, device)  # the model before training, where none was given
    lora = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=0.0, target_modules=targets,
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
    result = TrainResult(tensors={}, device=device, trainable_parameters=trainable, anchors=list(anchors))
    model.train()
    inner = model.get_base_model()  # the LoRA layers in place: its body and head are called apart
    started = time.monotonic()
    batches = _batches(data, cfg.batch_size, rng)
    anchor_batches = _batches(anchors, min(cfg.anchor_batch, len(anchors)), rng, lambda a: len(a.input_ids)) \
        if anchors else None
    for step in range(cfg.max_steps):
        if time.monotonic() - started > cfg.max_seconds:
            break
        batch = next(batches)
        held = next(anchor_batches) if anchor_batches else []
        ids, mask = _pad([t.input_ids for t in batch])
        labels = torch.full(ids.shape, -100, dtype=torch.long)
        for i, t in enumerate(batch):
            labels[i, :len(t.labels)] = torch.tensor(t.labels)
        loss = answer_loss(inner, ids.to(device), mask.to(device), labels.to(device))
        total = loss
        if held:  # a pass of its own: the anchors are longer than the facts, padding both costs more
            a_ids, a_mask = _pad([a.input_ids for a in held])
            kl = _kl(_anchor_logits(inner, a_ids.to(device), a_mask.to(device), held), held)
            total = loss + cfg.anchor_weight * kl
            result.anchor_kl.append(round(float(kl.detach()), 4))
            result.tokens += int(a_mask.sum())
        total.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optim.step()
        sched.step()
        optim.zero_grad(set_to_none=True)
        result.losses.append(round(float(loss.detach()), 4))
        result.tokens += int(mask.sum())
        result.steps = step + 1
        if progress:
            progress(step + 1, cfg.max_steps, f"steps, loss {result.losses[-1]:.3f}"
                     + (f", anchor KL {result.anchor_kl[-1]:.3f}" if held else ""))
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
