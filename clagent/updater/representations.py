"""What the RECALL merge needs from the models: a few typical samples of this consolidation's own
data, and every model's per-layer hidden states on them, mean-pooled over tokens."""

from __future__ import annotations

import numpy as np

from clagent.merge.recall import typical_indices
from clagent.models.architectures import ModelSpec, build_model
from clagent.updater.dataset import Tokenized


def typical_examples(tokenized: list[Tokenized], k: int, embedder) -> list[Tokenized]:
    """The examples nearest each k-means centroid of their user prompts' embeddings. Only new data
    counts (memories, lessons, corrections, interactions), not the replayed general prompts."""
    new = [t for t in tokenized if t.source != "replay"] or tokenized
    return [new[i] for i in typical_indices(embedder.encode([t.prompt for t in new]), k)]


def hidden_means(spec: ModelSpec, tensors: dict[str, np.ndarray], samples: list[Tokenized],
                 device: str = "cpu") -> np.ndarray:
    """(samples, layers + 1, hidden): the embedding output and every block's output, mean-pooled."""
    import torch

    model = build_model(spec, tensors, device, copy=False).eval()
    out = []
    with torch.no_grad():
        for s in samples:
            hs = model(torch.tensor([s.input_ids], device=device), output_hidden_states=True).hidden_states
            out.append(np.stack([h[0].float().mean(0).cpu().numpy() for h in hs]))
    del model
    return np.stack(out)
