"""``recall``: representation-aligned, layer-wise merging (RECALL, EMNLP 2025), as read in
../shared/NOTES.md. Pure functions on arrays; the caller supplies the models' hidden
representations of a few typical samples.

1. Typical samples: k-means over embeddings of the new data, the sample nearest each centroid.
2. Representations: per model, per layer, the hidden states mean-pooled over tokens.
3. Similarity per layer: an RBF kernel between the tuned model's and each model's vectors,
   averaged over the samples (the tuned model with itself: 1).
4. Weights per layer: a softmax over the models of those similarities / temperature.
5. Fusion: each parameter of block l is sum_i alpha_i^l theta_i^l; the token embeddings take the
   weights of layer 0 (the embedding output) and the final norm and output head those of the last.

Departure from the paper, and why: hidden-state norms grow with depth, so raw distances would make
deep layers look divergent by scale alone. Each layer's vectors are divided by that layer's mean
vector norm before the distances are taken, and one sigma (the median distance over all layers and
samples) is used for every layer, so layers are compared on one scale.
"""

from __future__ import annotations

import re

import numpy as np

from clagent.errors import ClagentError
from clagent.merge.base import Lazy, MergeResult, register

_BLOCK = re.compile(r"^model\.layers\.(\d+)\.")


def kmeans(x: np.ndarray, k: int, seed: int = 0, iterations: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """(centroids (k, d), labels (n,)); k-means++ seeding, Lloyd iterations."""
    n = len(x)
    k = min(k, n)
    rng = np.random.default_rng(seed)
    centroids = [x[rng.integers(n)]]
    for _ in range(1, k):
        d2 = np.min(((x[:, None, :] - np.array(centroids)[None]) ** 2).sum(-1), axis=1)
        probs = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1 / n)
        centroids.append(x[rng.choice(n, p=probs)])
    c = np.array(centroids, dtype=np.float64)
    labels = np.zeros(n, dtype=int)
    for _ in range(iterations):
        labels = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
        new = np.array([x[labels == j].mean(0) if np.any(labels == j) else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return c, labels


def typical_indices(x: np.ndarray, k: int, seed: int = 0) -> list[int]:
    """The sample nearest each k-means centroid (no repeats), in centroid order."""
    centroids, _ = kmeans(np.asarray(x, dtype=np.float64), k, seed)
    chosen: list[int] = []
    for c in centroids:
        order = np.argsort(((x - c) ** 2).sum(-1))
        chosen.append(next(int(i) for i in order if int(i) not in chosen))
    return chosen


def layer_similarities(reps: dict[str, np.ndarray], tuned: str = "tuned") -> dict[str, np.ndarray]:
    """RBF similarity of every model to ``tuned``, per layer. ``reps[name]`` is
    (samples, layers, hidden). Returns name -> (layers,) in [0, 1]; ``tuned`` -> ones."""
    ref = np.asarray(reps[tuned], dtype=np.float64)
    scale = np.mean([np.linalg.norm(np.asarray(r, np.float64), axis=-1).mean(0) for r in reps.values()], axis=0)
    scale = np.where(scale > 0, scale, 1.0)  # (layers,)
    dists = {name: np.linalg.norm((np.asarray(r, np.float64) - ref) / scale[None, :, None], axis=-1)
             for name, r in reps.items() if name != tuned}  # (samples, layers)
    pooled = np.concatenate([d.ravel() for d in dists.values()]) if dists else np.zeros(1)
    sigma = float(np.median(pooled[pooled > 0])) if np.any(pooled > 0) else 1.0
    sims = {name: np.exp(-(d ** 2) / (2 * sigma ** 2)).mean(0) for name, d in dists.items()}
    sims[tuned] = np.ones(ref.shape[1])
    return sims


def layer_weights(sims: dict[str, np.ndarray], temperature: float) -> dict[str, np.ndarray]:
    """Softmax over the models, layer by layer."""
    if temperature <= 0:
        raise ClagentError(f"recall temperature must be positive, got {temperature}")
    names = list(sims)
    logits = np.stack([sims[n] for n in names]) / temperature  # (models, layers)
    logits -= logits.max(0, keepdims=True)
    w = np.exp(logits)
    w /= w.sum(0, keepdims=True)
    return {n: w[i] for i, n in enumerate(names)}


def layer_of(name: str, n_layer: int) -> int:
    """Which representation layer a parameter belongs to: 0 embeddings, l+1 block l, n_layer the
    final norm and head."""
    m = _BLOCK.match(name)
    if m:
        return int(m.group(1)) + 1
    if name.startswith("model.embed_tokens"):
        return 0
    return n_layer  # model.norm, lm_head


def fuse(models: dict[str, dict[str, np.ndarray]], weights: dict[str, np.ndarray], n_layer: int) -> Lazy:
    def fused(key: str) -> np.ndarray:
        arrays = [models[n][key] for n in models]
        if all(a is arrays[0] for a in arrays):  # a tensor no model changed (LoRA leaves most alone)
            return arrays[0]
        layer = layer_of(key, n_layer)
        return sum(np.float32(weights[n][layer]) * models[n][key] for n in models).astype(np.float32)

    return Lazy(models["base"], fused)


@register("recall")
def recall(models, representations: dict[str, np.ndarray] | None = None, temperature: float = 0.5, **_):
    if representations is None or set(representations) != set(models):
        raise ClagentError("the recall merge needs the hidden representations of every model taking part")
    n_layer = next(iter(representations.values())).shape[1] - 1
    shapes = {r.shape for r in representations.values()}
    if len(shapes) != 1:
        raise ClagentError(f"representations of different shapes: {sorted(shapes)}")
    sims = layer_similarities(representations)
    weights = layer_weights(sims, temperature)
    report = {"temperature": temperature,
              "similarity": {n: [round(float(v), 4) for v in s] for n, s in sims.items()},
              "weights": {n: [round(float(v), 4) for v in w] for n, w in weights.items()}}
    return MergeResult(fuse(models, weights, n_layer), "recall", report)
