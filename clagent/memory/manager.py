"""The fast memory: learns from what the user says and from their corrections, and picks what goes
into the next prompt. The daemon owns one; the CLI makes one when the daemon is not running."""

from __future__ import annotations

import re
import sys
import threading
from dataclasses import dataclass, field
from typing import Callable

import sqlite_utils

from clagent.config import Settings
from clagent.errors import ClagentError
from clagent.memory import store
from clagent.memory.db import scrub
from clagent.memory.embedder import DIM, Embedder
from clagent.memory.extract import KINDS, Candidate, extract
from clagent.memory.index import VectorIndex
from clagent.memory.retrieve import Hit, memory_block, pack, rank

MAX_TEXT = 1000


def validate_text(text) -> str:
    if not isinstance(text, str):
        raise ClagentError("memory text must be a string")
    text = text.strip()
    if not text:
        raise ClagentError("memory text is empty")
    if len(text) > MAX_TEXT:
        raise ClagentError(f"memory text is too long ({len(text)} characters, at most {MAX_TEXT})")
    unprintable = sum(1 for c in text if not (c.isprintable() or c in "\n\t"))
    if "\x00" in text or unprintable > max(1, len(text) // 20):
        raise ClagentError("memory text looks like binary data")
    return text


def validate_kind(kind) -> str:
    if kind not in KINDS:
        raise ClagentError(f"memory kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return kind


@dataclass
class Added:
    memory: dict
    action: str  # added | updated (near-duplicate restated) | superseded (replaced older ones)
    superseded: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"memory": store.public(self.memory), "action": self.action, "superseded": self.superseded}


@dataclass
class Recall:
    block: str = ""
    used: list[Hit] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        return [h.id for h in self.used]


class MemoryManager:
    def __init__(self, db: sqlite_utils.Database, settings: Settings, embedder: Embedder | None = None):
        self.db = db
        self.settings = settings
        self.embedder = embedder or Embedder()
        self.index = VectorIndex(DIM)
        self._ready = threading.Event()
        self._load_error: Exception | None = None
        self._write = threading.Lock()  # a dedupe check and its insert happen as one step

    # -- loading ----------------------------------------------------------------------------------
    def load(self) -> None:
        try:
            self.embedder.warm_up()
            for memory_id, vector in store.all_active_embeddings(self.db):
                self.index.add(memory_id, vector)
        except Exception as e:  # noqa: BLE001 - reported on use, the daemon keeps serving
            self._load_error = e
            print(f"clagent: memory unavailable: {e}", file=sys.stderr)
        finally:
            self._ready.set()

    def load_in_background(self) -> None:
        threading.Thread(target=self.load, name="memory-load", daemon=True).start()

    def _wait(self) -> None:
        self._ready.wait()
        if self._load_error is not None:
            raise ClagentError(f"memory is unavailable: {self._load_error}")

    # -- learning ---------------------------------------------------------------------------------
    def add(self, text: str, kind: str | None = None, source: str = "api",
            source_interaction: str | None = None) -> Added:
        """Add a memory the user gave explicitly (API, CLI, "remember that ...")."""
        text = validate_text(text)
        if kind is not None:
            validate_kind(kind)
        found = extract(text if re.match(r"^(?:please\s+)?remember\b", text, re.I) else f"remember that {text}")
        if found:
            c = found[0]
            c = Candidate(c.text, c.index_text, kind or c.kind, c.key, explicit=True)
        else:
            c = Candidate(text, text, kind or "fact", None, explicit=True)
        return self._remember(c, source, source_interaction)

    def learn_from_message(self, text: str, interaction_id: str | None) -> list[Added]:
        out = []
        for c in extract(text[:4000]):
            out.append(self._remember(c, "explicit" if c.explicit else "chat", interaction_id))
        return out

    def learn_from_feedback(self, question: str, correction: str, interaction_id: str) -> Added:
        """A thumbs-down with a correction becomes a lesson tied to the question it corrects."""
        question = validate_text(question)[:300]
        correction = validate_text(correction)
        text = f'The right answer to "{question}" is: {correction}'
        c = Candidate(text, f"{question} {correction}", "lesson", "lesson|" + question.lower().strip(" ?!."))
        return self._remember(c, "feedback", interaction_id, question=question)

    def _remember(self, c: Candidate, source: str, interaction_id: str | None,
                  question: str | None = None) -> Added:
        self._wait()
        vector = self.embedder.encode_one(c.index_text)
        with self._write:
            older = store.active_with_key(self.db, c.key) if c.key else []
            for row in older:
                if row["text"].lower() == c.text.lower():
                    store.refresh(self.db, row["id"], c.text, c.index_text, vector)
                    return Added(store.get(self.db, row["id"]), "updated")
            if not older:
                for hit_id, sim in self.index.search(vector, 1):
                    row = store.get(self.db, hit_id)
                    if sim >= self.settings.memory_dedupe_similarity and row["kind"] == c.kind:
                        store.refresh(self.db, hit_id, c.text, c.index_text, vector)
                        self.index.add(hit_id, vector)
                        return Added(store.get(self.db, hit_id), "updated")
            superseded = [row["id"] for row in older]
            new_id = store.insert(self.db, text=c.text, index_text=c.index_text, kind=c.kind, key=c.key,
                                  source=source, embedding=vector, source_interaction=interaction_id,
                                  question=question, supersedes=superseded)
            self.index.add(new_id, vector)
            for old in superseded:
                self.index.remove(old)
        return Added(store.get(self.db, new_id), "superseded" if superseded else "added", superseded)

    # -- recalling --------------------------------------------------------------------------------
    def recall(self, query: str, count_tokens: Callable[[str], int]) -> Recall:
        """The memories for a prompt whose last user message is ``query``, as a prompt block."""
        self._wait()
        s = self.settings
        hits = self.index.search(self.embedder.encode_one(query[:2000]), 20)
        rows = {r["id"]: r for r in self._rows([i for i, _ in hits])}
        candidates = [Hit(i, rows[i]["kind"], rows[i]["text"], sim, rows[i]["updated_at"], rows[i]["use_count"])
                      for i, sim in hits if i in rows and rows[i]["kind"] != "instruction"]
        facts = rank(candidates, s.memory_min_similarity, s.memory_margin)
        # Standing instructions ("from now on ...") apply to every answer, whatever the question.
        instructions = [Hit(r["id"], r["kind"], r["text"], 1.0, r["updated_at"], r["use_count"])
                        for r in store.listing(self.db, "active", "instruction", s.memory_max_items)]
        facts, instructions = pack(facts, instructions, s.memory_max_items, s.memory_token_budget, count_tokens)
        return Recall(memory_block(facts, instructions), instructions + facts)

    def _rows(self, ids: list[int]) -> list[dict]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        # By primary key only: with "status = 'active'" in the WHERE clause SQLite picks the status
        # index and walks every active row.
        rows = self.db.query(f"SELECT id, kind, text, status, updated_at, use_count FROM memories WHERE id IN ({marks})", ids)
        return [r for r in rows if r["status"] == "active"]

    def mark_used(self, ids: list[int]) -> None:
        store.mark_used(self.db, ids)

    # -- the user in charge -----------------------------------------------------------------------
    def search(self, query: str, limit: int = 20) -> list[dict]:
        self._wait()
        hits = self.index.search(self.embedder.encode_one(validate_text(query)), limit)
        out = []
        for memory_id, sim in hits:
            row = store.public(store.get(self.db, memory_id))
            row["similarity"] = round(sim, 3)
            out.append(row)
        return out

    def forget(self, ids: list[int]) -> list[dict]:
        rows = [store.get(self.db, i) for i in ids]  # an unknown id fails before anything is deleted
        with self._write:
            store.delete(self.db, [r["id"] for r in rows])
            for r in rows:
                self.index.remove(r["id"])
        scrub(self.db)  # forgotten: in no file of the home either (WAL included)
        return [store.public(r) for r in rows]

    def forget_matching(self, needle: str) -> list[dict]:
        needle = validate_text(needle)
        rows = store.matching(self.db, needle)
        if not rows:
            raise ClagentError(f"no memory contains {needle!r}")
        return self.forget([r["id"] for r in rows])
