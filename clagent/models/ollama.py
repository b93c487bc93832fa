"""Models already in the user's Ollama store: ``ollama:NAME[:TAG]`` -> the GGUF blob Ollama keeps.

Ollama's store (``$OLLAMA_MODELS``, else ``~/.ollama/models``; the Linux system service keeps it in
``/usr/share/ollama/.ollama/models``) has a JSON manifest per model at
``manifests/<registry>/<namespace>/<name>/<tag>``; its layer of media type
``application/vnd.ollama.image.model`` names the weights by digest, ``sha256:<hex>``, stored as
``blobs/sha256-<hex>``: the GGUF itself. Nothing is copied or changed in the store.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from clagent.errors import ClagentError

PREFIX = "ollama:"
REGISTRY = "registry.ollama.ai"
NAMESPACE = "library"
MODEL_MEDIA_TYPE = "application/vnd.ollama.image.model"
PROJECTOR_MEDIA_TYPE = "application/vnd.ollama.image.projector"


@dataclass(frozen=True)
class OllamaModel:
    reference: str  # ollama:NAME:TAG as the user can write it again
    blob: Path
    manifest: Path
    store: Path
    has_projector: bool  # a vision model's image encoder, kept by Ollama as a separate layer


def is_reference(source: str | os.PathLike | None) -> bool:
    return isinstance(source, str) and source.startswith(PREFIX)


def parse(reference: str) -> tuple[str, str, str, str]:
    """``ollama:NAME[:TAG]`` -> (registry, namespace, name, tag). NAME may be ``user/name`` or
    ``host/user/name``; the tag defaults to ``latest``."""
    body = reference[len(PREFIX):] if reference.startswith(PREFIX) else reference
    name, _, tag = body.rpartition(":") if ":" in body.rsplit("/", 1)[-1] else (body, "", "")
    tag = tag or "latest"
    parts = [p for p in name.split("/") if p]
    if not parts or len(parts) > 3 or any(p in (".", "..") for p in parts) or not tag.strip() or "/" in tag:
        raise ClagentError(f"{reference!r} is not an Ollama model name (write ollama:NAME or ollama:NAME:TAG, "
                           f"e.g. ollama:gemma3:270m)")
    registry, namespace = REGISTRY, NAMESPACE
    if len(parts) == 3:
        registry, namespace, model = parts
    elif len(parts) == 2:
        namespace, model = parts
    else:
        model = parts[0]
    return registry, namespace, model, tag


def label(reference: str) -> str:
    """The name as clagent records it (``ollama:NAME:TAG``, user models ``ollama:USER/NAME:TAG``),
    without looking at the store."""
    registry, namespace, model, tag = parse(reference)
    if (registry, namespace) == (REGISTRY, NAMESPACE):
        return f"{PREFIX}{model}:{tag}"
    return f"{PREFIX}{namespace}/{model}:{tag}" if registry == REGISTRY else f"{PREFIX}{registry}/{namespace}/{model}:{tag}"


def stores() -> list[Path]:
    """Where Ollama keeps models: ``$OLLAMA_MODELS`` alone when set, else the user's and the
    system service's folders."""
    env = os.environ.get("OLLAMA_MODELS")
    if env:
        return [Path(env).expanduser()]
    return [Path.home() / ".ollama" / "models", Path("/usr/share/ollama/.ollama/models")]


def resolve(reference: str) -> OllamaModel:
    """The GGUF blob of an installed Ollama model, or a one-line error saying why there is none."""
    registry, namespace, model, tag = parse(reference)
    candidates = stores()
    found = [s for s in candidates if _is_dir(s)]
    if not found:
        hint = "" if os.environ.get("OLLAMA_MODELS") else " (set OLLAMA_MODELS if Ollama keeps its models elsewhere)"
        raise ClagentError(f"no Ollama model store found: looked in {', '.join(map(str, candidates))}{hint}")
    short = label(reference)[len(PREFIX):]
    for store in found:
        if not os.access(store, os.R_OK | os.X_OK) or not os.access(store / "manifests", os.R_OK | os.X_OK):
            raise ClagentError(f"cannot read the Ollama store at {store}: permission denied (run clagent as a user "
                               f"who can read it, or copy the model's GGUF blob and pass its path)")
        manifest = store / "manifests" / registry / namespace / model / tag
        if not _is_file(manifest):
            continue
        return _from_manifest(store, manifest, label(reference))
    installed = sorted({m for s in found for m in installed_models(s)})
    listed = (", ".join(installed[:8]) + (" ..." if len(installed) > 8 else "")) if installed else "none"
    raise ClagentError(f"Ollama model {short!r} is not installed in {', '.join(map(str, found))} "
                       f"(installed: {listed}); run `ollama pull {short}` first")


def _from_manifest(store: Path, manifest: Path, reference: str) -> OllamaModel:
    try:
        data = json.loads(manifest.read_text())
        layers = data["layers"]
        layer = next((x for x in layers if x.get("mediaType") == MODEL_MEDIA_TYPE), None)
    except OSError as e:
        raise ClagentError(f"cannot read the Ollama manifest {manifest}: {e.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ClagentError(f"the Ollama manifest {manifest} is not valid JSON with layers") from None
    if layer is None:
        raise ClagentError(f"the Ollama manifest {manifest} has no model layer ({MODEL_MEDIA_TYPE})")
    digest = str(layer.get("digest", ""))
    algo, _, hexdigest = digest.partition(":")
    if algo != "sha256" or not hexdigest or not all(c in "0123456789abcdef" for c in hexdigest.lower()):
        raise ClagentError(f"the Ollama manifest {manifest} names its model by an invalid digest {digest!r}")
    blob = store / "blobs" / f"sha256-{hexdigest}"
    try:
        size = blob.stat().st_size
    except FileNotFoundError:
        raise ClagentError(f"the Ollama store {store} lacks the model blob {blob.name} its manifest names "
                           f"(an interrupted pull? run `ollama pull` again)") from None
    except OSError as e:
        raise ClagentError(f"cannot read the Ollama store at {store}: {e.strerror}") from None
    if not os.access(blob, os.R_OK):
        raise ClagentError(f"cannot read the Ollama model blob {blob}: permission denied")
    if isinstance(layer.get("size"), int) and layer["size"] != size:
        raise ClagentError(f"the Ollama model blob {blob} has {size} bytes, its manifest says {layer['size']} "
                           f"(an interrupted pull? run `ollama pull` again)")
    projector = any(x.get("mediaType") == PROJECTOR_MEDIA_TYPE for x in layers)
    return OllamaModel(reference=reference, blob=blob, manifest=manifest, store=store, has_projector=projector)


def installed_models(store: Path) -> list[str]:
    """NAME:TAG of every manifest in a store (user models as namespace/NAME:TAG)."""
    root = store / "manifests"
    out = []
    try:
        for manifest in root.glob("*/*/*/*"):
            if manifest.is_file():
                registry, namespace, model, tag = manifest.relative_to(root).parts
                prefix = "" if (registry, namespace) == (REGISTRY, NAMESPACE) else f"{namespace}/"
                out.append(f"{prefix}{model}:{tag}")
    except OSError:
        pass
    return out


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False
