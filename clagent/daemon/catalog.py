"""The model names the API answers to, and what ``/v1/models`` says about them.

- ``clagent``: the served model, whatever its version; the stable name clients should use.
- ``clagent-v<N>``: the served version by its number. Other registered versions are described by
  ``GET /v1/models/clagent-v<N>`` (``clagent_served: false``) but not served: asking one for a
  completion is a 404 that says which version is served.
- ``all-MiniLM-L6-v2`` (also ``sentence-transformers/all-MiniLM-L6-v2``, any case): the embedding
  model. Embeddings answer to these names only, so that a client expecting another model's vectors
  (1,536 dimensions for ``text-embedding-3-small``) gets a clear 404, not vectors of the wrong size.

Responses carry the name the client asked for (``clagent`` when it gave none); the version that
answered is in ``clagent_version``, ``system_fingerprint`` and the ``X-Clagent-Version`` header.
"""

from __future__ import annotations

import re
from datetime import datetime

from clagent.daemon.errors import APIError
from clagent.errors import ClagentError
from clagent.home import Home

CHAT_ALIAS = "clagent"
EMBEDDING_ID = "all-MiniLM-L6-v2"
EMBEDDING_DIMENSIONS = 384
EMBEDDING_NAMES = {EMBEDDING_ID.lower(), f"sentence-transformers/{EMBEDDING_ID}".lower()}
VERSION_HEADER = "x-clagent-version"
_VERSION_NAME = re.compile(rf"{CHAT_ALIAS}-v(\d{{1,9}})")


def version_name(version: int) -> str:
    return f"{CHAT_ALIAS}-v{version}"


def fingerprint(version: int | None) -> str | None:
    return version_name(version) if version is not None else None


def _epoch(iso: str | None, default: int) -> int:
    try:
        return int(datetime.fromisoformat(iso).timestamp()) if iso else default
    except ValueError:
        return default


class Catalog:
    def __init__(self, home: Home, served_version, started_at: int):
        self.home = home
        self.served_version = served_version  # () -> int | None
        self.started_at = started_at

    # -- resolving what a request asked for ------------------------------------------------------
    def chat_name(self, asked: str | None) -> str:
        """The name a generation answers under; a 404 for anything it cannot be."""
        if asked in (None, ""):
            return CHAT_ALIAS
        served = self.served_version()
        if asked == CHAT_ALIAS or asked == version_name(served):
            return asked
        hint = f"this daemon serves {CHAT_ALIAS!r} (now {version_name(served)})"
        m = _VERSION_NAME.fullmatch(asked)
        if m and self._version(int(m[1])) is not None:
            raise APIError(404, f"the model {asked!r} is a registered version, but {version_name(served)} is the one "
                                f"served; ask for {CHAT_ALIAS!r}, or roll back to it (clagent rollback {m[1]})",
                           param="model", code="model_not_found")
        if asked.lower() in EMBEDDING_NAMES:
            raise APIError(400, f"{asked!r} is the embedding model (POST /v1/embeddings); {hint}", param="model",
                           code="model_not_supported")
        raise APIError(404, f"the model {asked!r} does not exist; {hint}", param="model", code="model_not_found")

    def embedding_name(self, asked: str | None) -> str:
        if asked in (None, ""):
            return EMBEDDING_ID
        if asked.lower() in EMBEDDING_NAMES:
            return asked
        raise APIError(404, f"the embedding model {asked!r} does not exist; this daemon embeds with {EMBEDDING_ID!r} "
                            f"({EMBEDDING_DIMENSIONS} dimensions)", param="model", code="model_not_found")

    # -- describing ------------------------------------------------------------------------------
    def _version(self, number: int):
        try:
            return self.home.registry.get(number)
        except ClagentError:
            return None

    def _chat_entry(self, model_id: str, version) -> dict:
        served = self.served_version()
        return {"id": model_id, "object": "model", "created": _epoch(version.created_at, self.started_at),
                "owned_by": "clagent", "clagent_type": "chat", "clagent_version": version.id,
                "clagent_served": version.id == served, "clagent_method": version.method,
                "clagent_parent": version.parent, "clagent_quant": version.quant,
                "clagent_pruned": version.pruned_at is not None}

    def _embedding_entry(self, model_id: str = EMBEDDING_ID) -> dict:
        return {"id": model_id, "object": "model", "created": self.started_at, "owned_by": "sentence-transformers",
                "clagent_type": "embedding", "clagent_dimensions": EMBEDDING_DIMENSIONS}

    def listing(self) -> list[dict]:
        """What a client may ask for: the served model under both its names, and the embedding model."""
        served = self.served_version()
        version = self._version(served) if served is not None else None
        entries = []
        if version is not None:
            entries += [self._chat_entry(CHAT_ALIAS, version), self._chat_entry(version_name(served), version)]
        return [*entries, self._embedding_entry()]

    def describe(self, model_id: str) -> dict:
        served = self.served_version()
        if model_id == CHAT_ALIAS and served is not None:
            return self._chat_entry(CHAT_ALIAS, self._version(served))
        m = _VERSION_NAME.fullmatch(model_id)
        version = self._version(int(m[1])) if m else None
        if version is not None:
            return self._chat_entry(model_id, version)
        if model_id.lower() in EMBEDDING_NAMES:
            return self._embedding_entry(model_id)
        raise APIError(404, f"the model {model_id!r} does not exist; GET /v1/models lists them", param="model",
                       code="model_not_found")
