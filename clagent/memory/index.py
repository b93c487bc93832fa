"""Exhaustive cosine search over the active memories' embeddings, held in one matrix in RAM and
updated in place as memories come and go.

The matrix is float16: the scan is bound by memory bandwidth, and half the bytes make it about
twice as fast (6 ms instead of 11 ms at 100k memories on a 2-core machine). Every vector is still
compared with the query; cosines differ from float32 by about 1e-3.
"""

from __future__ import annotations

import threading

import numpy as np
import torch


class VectorIndex:
    def __init__(self, dim: int):
        self.dim = dim
        self._vectors = torch.zeros((0, dim), dtype=torch.float16)
        self._ids = np.zeros(0, dtype=np.int64)
        self._n = 0
        self._row: dict[int, int] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._n

    def __contains__(self, item_id: int) -> bool:
        return item_id in self._row

    def add(self, item_id: int, vector: np.ndarray) -> None:
        vector = torch.from_numpy(np.array(vector, dtype=np.float32).reshape(self.dim)).half()
        with self._lock:
            if item_id in self._row:
                self._vectors[self._row[item_id]] = vector
                return
            if self._n == len(self._vectors):  # grow by doubling: amortised O(1) appends
                capacity = max(16, 2 * len(self._vectors))
                vectors = torch.zeros((capacity, self.dim), dtype=torch.float16)
                ids = np.zeros(capacity, dtype=np.int64)
                vectors[: self._n], ids[: self._n] = self._vectors[: self._n], self._ids[: self._n]
                self._vectors, self._ids = vectors, ids
            self._vectors[self._n] = vector
            self._ids[self._n] = item_id
            self._row[item_id] = self._n
            self._n += 1

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
            q = torch.from_numpy(np.array(query, dtype=np.float32).reshape(self.dim)).half()
            sims = (self._vectors[: self._n] @ q).float()
            top = torch.topk(sims, min(k, self._n))
            return [(int(self._ids[i]), float(s)) for i, s in zip(top.indices.tolist(), top.values.tolist())]
