"""Exact cosine search over the active memories' embeddings, held in one matrix in RAM and
updated in place as memories come and go."""

from __future__ import annotations

import threading

import numpy as np


class VectorIndex:
    def __init__(self, dim: int):
        self.dim = dim
        self._vectors = np.zeros((0, dim), dtype=np.float32)
        self._ids = np.zeros(0, dtype=np.int64)
        self._n = 0
        self._row: dict[int, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._n

    def __contains__(self, item_id: int) -> bool:
        return item_id in self._row

    def add(self, item_id: int, vector: np.ndarray) -> None:
        vector = np.asarray(vector, dtype=np.float32).reshape(self.dim)
        with self._lock:
            if item_id in self._row:
                self._vectors[self._row[item_id]] = vector
                return
            if self._n == len(self._vectors):  # grow by doubling: amortised O(1) appends
                capacity = max(16, 2 * len(self._vectors))
                vectors = np.zeros((capacity, self.dim), dtype=np.float32)
                ids = np.zeros(capacity, dtype=np.int64)
                vectors[: self._n], ids[: self._n] = self._vectors[: self._n], self._ids[: self._n]
                self._vectors, self._ids = vectors, ids
            self._vectors[self._n] = vector
            self._ids[self._n] = item_id
            self._row[item_id] = self._n
            self._n += 1

    def add_many(self, ids, vectors: np.ndarray) -> None:
        for item_id, vector in zip(ids, vectors):
            self.add(int(item_id), vector)

    def remove(self, item_id: int) -> bool:
        """Move the last row into the hole: O(1)."""
        with self._lock:
            row = self._row.pop(item_id, None)
            if row is None:
                return False
            last = self._n - 1
            if row != last:
                self._vectors[row] = self._vectors[last]
                self._ids[row] = self._ids[last]
                self._row[int(self._ids[row])] = row
            self._n -= 1
            return True

    def search(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """The k most similar items as (id, cosine), best first."""
        with self._lock:
            if self._n == 0 or k <= 0:
                return []
            sims = self._vectors[: self._n] @ np.asarray(query, dtype=np.float32)
            k = min(k, self._n)
            top = np.argpartition(-sims, k - 1)[:k]
            top = top[np.argsort(-sims[top], kind="stable")]
            return [(int(self._ids[i]), float(sims[i])) for i in top]
