"""``POST /v1/embeddings`` with the embedded sentence model (all-MiniLM-L6-v2, the fast memory's).

Vectors are L2-normalised, as OpenAI's are. The model reads at most its first 256 word pieces of a
text (sentence-transformers truncates the rest); usage counts the tokens it read, [CLS] and [SEP]
included. Embedding never takes the chat engine's lock.
"""

from __future__ import annotations

import base64
import json
import threading

import numpy as np

from clagent.daemon.catalog import EMBEDDING_DIMENSIONS
from clagent.daemon.errors import APIError
from clagent.daemon.schemas import EmbeddingRequest
from clagent.memory.embedder import Embedder, model_folder


class Embeddings:
    def __init__(self, embedder: Embedder | None = None):
        self._embedder = embedder  # the memory's, when memory is on: one model in memory, not two
        self._tokenizer = None
        self._max_length = 256
        self._lock = threading.Lock()

    def embedder(self) -> Embedder:
        with self._lock:
            if self._embedder is None:
                self._embedder = Embedder()
            return self._embedder

    def token_counts(self, texts: list[str]) -> list[int]:
        """Word pieces the model reads of each text. The model folder's own tokenizer.json through
        the tokenizers library: no second import of transformers racing the memory's."""
        with self._lock:
            if self._tokenizer is None:
                from tokenizers import Tokenizer

                folder = model_folder()
                config = folder / "sentence_bert_config.json"
                if config.is_file():
                    self._max_length = int(json.loads(config.read_text()).get("max_seq_length", 256))
                tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
                tokenizer.no_padding()
                tokenizer.enable_truncation(self._max_length)
                self._tokenizer = tokenizer
            return [len(e.ids) for e in self._tokenizer.encode_batch(texts)]

    def embed(self, req: EmbeddingRequest) -> tuple[np.ndarray, int]:
        if req.dimensions is not None and req.dimensions != EMBEDDING_DIMENSIONS:
            raise APIError(400, f"this embedding model gives {EMBEDDING_DIMENSIONS} dimensions, not {req.dimensions}",
                           param="dimensions")
        tokens = sum(self.token_counts(req.inputs))
        vectors = self.embedder().encode(req.inputs)
        return vectors, tokens

    @staticmethod
    def body(vectors: np.ndarray, tokens: int, model: str, encoding_format: str) -> dict:
        def encode(v: np.ndarray):
            if encoding_format == "base64":  # little-endian float32, as OpenAI sends them
                return base64.b64encode(v.astype("<f4").tobytes()).decode("ascii")
            return [float(x) for x in v]

        return {"object": "list", "model": model,
                "data": [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
