"""``ties`` (TIES-merging): trim each task vector to its largest-magnitude entries, elect a sign per
entry, and add the mean of the entries that agree with it. Every model other than ``base`` is a
task vector relative to it (with one fine-tuned model the sign election keeps the trimmed vector)."""

import numpy as np

from clagent.merge.base import Lazy, MergeResult, register


def trim(delta: np.ndarray, density: float) -> np.ndarray:
    """Keep the ``density`` share of entries with the largest magnitude, zero the rest."""
    if density >= 1.0 or delta.size == 0:
        return delta
    k = max(1, int(round(density * delta.size)))
    threshold = np.partition(np.abs(delta).ravel(), delta.size - k)[delta.size - k]
    return np.where(np.abs(delta) >= threshold, delta, 0).astype(delta.dtype)


def ties_delta(deltas: list[np.ndarray], density: float) -> np.ndarray:
    trimmed = np.stack([trim(d, density) for d in deltas])
    sign = np.sign(trimmed.sum(axis=0))  # elected sign: the direction with more total mass
    agree = (np.sign(trimmed) == sign) & (trimmed != 0)
    count = agree.sum(axis=0)
    summed = np.where(agree, trimmed, 0).sum(axis=0)
    return np.where(count > 0, summed / np.maximum(count, 1), 0).astype(np.float32)


@register("ties")
def ties(models, density: float = 0.2, scale: float = 1.0, **_):
    base = models["base"]
    others = [name for name in models if name != "base"]

    def fused(k: str) -> np.ndarray:
        delta = ties_delta([models[n][k] - base[k] for n in others], density)
        return (base[k] + np.float32(scale) * delta).astype(np.float32)

    return MergeResult(Lazy(base, fused), "ties", {"density": density, "scale": scale})
