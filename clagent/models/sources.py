"""Where a new home's (or a new base version's) model comes from: the embedded default, a preset
(``qwen2.5-coder-1.5b``: part packages assembled into a cache), a GGUF path, or ``ollama:NAME[:TAG]``
from the user's Ollama store. Checked before anything is written."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from clagent.errors import ClagentError
from clagent.models import embedded, gguf_io, ollama, presets


@dataclass(frozen=True)
class Source:
    path: Path  # the GGUF file
    label: str  # what the user named, kept with the version: a resolved path, ollama:NAME:TAG, preset:NAME
    detail: dict | None = None  # where the file came from, kept with the version (presets: packages, sha256)


def label(model: str | os.PathLike) -> str:
    """What a version made from ``model`` records as its source, without opening anything."""
    if ollama.is_reference(str(model)):
        return ollama.label(str(model))
    if presets.is_reference(model):
        return presets.get(model).label
    return str(Path(model).expanduser().resolve())


def resolve(model: str | os.PathLike | None) -> Source:
    if model is None:
        path = embedded.default_model_path()
        return Source(path, str(path))
    if ollama.is_reference(str(model)):
        found = ollama.resolve(str(model))
        if found.has_projector:
            raise ClagentError(f"{found.reference} is a vision (multimodal) model (its manifest has an image "
                               f"projector); clagent trains and serves text models")
        return Source(found.blob, found.reference)
    if presets.is_reference(model):
        return from_preset(presets.get(model))
    if isinstance(model, str) and presets.looks_like_name(model):
        raise ClagentError(f"unknown model {model!r}: no such file, and not a preset (presets: "
                           f"{', '.join(presets.names())}; or ollama:NAME[:TAG])")
    path = Path(label(model))
    return Source(path, str(path))


def from_preset(preset: "presets.Preset") -> Source:
    """The preset's file from the cache, assembled from its installed parts the first time and
    checked against its pinned sha256 every time."""
    from clagent.progress import Progress, say

    path = presets.ensure(preset, progress=Progress, say=say)
    return Source(path, preset.label, {**preset.describe(), "cache": str(path)})


def check(source: Source) -> gguf_io.ModelInfo:
    """The model's description, after every check an import makes before it writes anything."""
    try:
        return gguf_io.describe(source.path)
    except ClagentError as e:
        if source.label != str(source.path):  # name the model as the user did
            raise ClagentError(f"{source.label}: {e}") from None
        raise
