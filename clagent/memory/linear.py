"""Softmax regression, the learned piece of the fast memory's capture decision:
trained with full-batch Adam in numpy, used as a matrix product. Pure functions."""

from __future__ import annotations

from importlib import resources

import numpy as np

from clagent.errors import ClagentError


def softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def fit(x: np.ndarray, y: np.ndarray, classes: int, l2: float = 1e-4, steps: int = 2000,
        lr: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(weights (features, classes), bias (classes,)); classes weighted to balance."""
    n, d = x.shape
    onehot = np.eye(classes, dtype=np.float32)[y]
    counts = np.bincount(y, minlength=classes).astype(np.float32)
    weight = (n / (classes * np.maximum(counts, 1)))[y][:, None]
    w = np.zeros((d, classes), dtype=np.float32)
    b = np.zeros(classes, dtype=np.float32)
    moments = [(np.zeros_like(w), np.zeros_like(w)), (np.zeros_like(b), np.zeros_like(b))]
    for t in range(1, steps + 1):
        g = (softmax(x @ w + b) - onehot) * weight / n
        for param, grad, (m, v) in ((w, x.T @ g + l2 * w, moments[0]), (b, g.sum(axis=0), moments[1])):
            m *= 0.9
            m += 0.1 * grad
            v *= 0.999
            v += 0.001 * grad * grad
            param -= lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    return w, b


def out_of_fold(x: np.ndarray, y: np.ndarray, classes: int, folds: int = 5, seed: int = 0, **kw) -> np.ndarray:
    """Each example's probabilities from a model that never saw it."""
    order = np.random.default_rng(seed).permutation(len(y))
    probs = np.zeros((len(y), classes), dtype=np.float32)
    for f in range(folds):
        test = order[f::folds]
        train = np.setdiff1d(order, test)
        w, b = fit(x[train], y[train], classes, **kw)
        probs[test] = softmax(x[test] @ w + b)
    return probs


def load(name: str, path=None, **expected: tuple) -> dict[str, np.ndarray]:
    """The arrays of a trained model: ``path``, else the file ``name`` shipped in clagent/data.
    ``expected`` names arrays that must hold exactly these values (the features it was trained on)."""
    try:
        source = resources.files("clagent").joinpath("data", name) if path is None else None
        with (resources.as_file(source) if source is not None else _Given(path)) as f, np.load(f) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as e:
        raise ClagentError(f"the model {name} cannot be read: {e}") from None
    for key, values in expected.items():
        if tuple(arrays.get(key, ())) != tuple(values):
            raise ClagentError(f"the model {name} was trained on other {key}: retrain it")
    return arrays


class _Given:
    def __init__(self, path):
        self.path = path

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        return False
