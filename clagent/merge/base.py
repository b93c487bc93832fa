"""The merge interface and its registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Mapping

import numpy as np

from clagent.errors import ClagentError

State = Mapping[str, np.ndarray]
METHODS: dict[str, Callable[..., "MergeResult"]] = {}


class Lazy(Mapping):
    """Merged tensors, each computed from the models' when it is read. An export that writes them
    one at a time then never holds a whole merged model besides the models merged (a 1.5B model is
    7 GB in float32)."""

    def __init__(self, keys: Iterable[str], compute: Callable[[str], np.ndarray]):
        self._keys = list(keys)
        self._known = set(self._keys)
        self._compute = compute

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._known:
            raise KeyError(key)
        return self._compute(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


@dataclass
class MergeResult:
    tensors: Mapping[str, np.ndarray]  # a ``Lazy`` mapping: read each tensor once
    method: str
    report: dict = field(default_factory=dict)  # e.g. per-layer weights, for the version's lineage


def register(name: str):
    def wrap(fn):
        METHODS[name] = fn
        return fn
    return wrap


def check_compatible(models: Mapping[str, State]) -> None:
    """Same tensor names and shapes in every model, or a clear error before anything is merged."""
    if "base" not in models or "tuned" not in models:
        raise ClagentError("a merge needs the models 'base' and 'tuned'")
    ref_name, ref = "base", models["base"]
    for name, state in models.items():
        if set(state) != set(ref):
            diff = sorted(set(state) ^ set(ref))
            raise ClagentError(f"cannot merge {name!r} with {ref_name!r}: different tensors (e.g. {diff[0]})")
        for key, t in state.items():
            if t.shape != ref[key].shape:
                raise ClagentError(f"cannot merge {name!r} with {ref_name!r}: {key} has shape "
                                   f"{tuple(t.shape)} vs {tuple(ref[key].shape)}")


def merge(method: str, models: Mapping[str, State], **params) -> MergeResult:
    if method not in METHODS:
        raise ClagentError(f"unknown merge method {method!r}; choose one of {', '.join(sorted(METHODS))}")
    check_compatible(models)
    return METHODS[method](models, **params)
