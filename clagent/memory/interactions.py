"""The interaction log: every exchange the daemon served, and the user's feedback on it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import sqlite_utils

from clagent.errors import ClagentError
from clagent.memory.db import scrub, transaction, utcnow

LOGGED_TOTAL_KEY = "interactions_logged_total"


@dataclass
class Interaction:
    id: str
    conversation_id: str
    version: int
    model: str
    messages: list[dict]
    params: dict = field(default_factory=dict)
    response: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_ms: float | None = None
    total_ms: float | None = None
    stream: bool = False
    memory_ids: list[int] = field(default_factory=list)
    created_at: str = field(default_factory=utcnow)
    kind: str = "chat"  # or "completion" (its prompt is logged as one message with the role "prompt")


def log_interaction(db: sqlite_utils.Database, it: Interaction) -> None:
    with transaction(db):
        db.execute(
            """INSERT INTO interactions (id, conversation_id, created_at, version, model, messages,
               params, response, finish_reason, prompt_tokens, completion_tokens, ttft_ms,
               total_ms, stream, memory_ids, kind) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
            [
                it.id, it.conversation_id, it.created_at, it.version, it.model,
                json.dumps(it.messages), json.dumps(it.params), it.response, it.finish_reason,
                it.prompt_tokens, it.completion_tokens, it.ttft_ms, it.total_ms, int(it.stream),
                json.dumps(it.memory_ids), it.kind,
            ],
        )
        # An aggregate that outlives the raw rows (they are deleted once consolidated).
        db.execute(
            """INSERT INTO state (key, value) VALUES (?, '1')
               ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1""",
            [LOGGED_TOTAL_KEY],
        )


def logged_total(db: sqlite_utils.Database) -> int:
    rows = list(db.query("SELECT value FROM state WHERE key = ?", [LOGGED_TOTAL_KEY]))
    return int(rows[0]["value"]) if rows else 0


RATINGS = {"up": 1, "down": -1, "+1": 1, "-1": -1, "good": 1, "bad": -1}


def set_feedback(db: sqlite_utils.Database, interaction_id: str, rating: str | int | None,
                 correction: str | None = None) -> dict:
    """Rate an interaction up or down, optionally with a corrected answer."""
    if isinstance(rating, str):
        if rating not in RATINGS:
            raise ClagentError(f"rating must be 'up' or 'down', got {rating!r}")
        rating = RATINGS[rating]
    elif rating not in (1, -1, None):
        raise ClagentError(f"rating must be 'up' or 'down', got {rating!r}")
    if correction is not None:
        correction = correction.strip()
        if not correction:
            raise ClagentError("correction must not be empty")
        if rating is None:
            rating = -1  # a correction says the answer was wrong
    if rating is None:
        raise ClagentError("feedback needs a rating or a correction")
    with transaction(db):
        cur = db.execute(
            "UPDATE interactions SET rating = ?, correction = ?, feedback_at = ? WHERE id = ?",
            [rating, correction, utcnow(), interaction_id],
        )
        if cur.rowcount == 0:
            raise ClagentError(f"no interaction with id {interaction_id!r}")
    return get_interaction(db, interaction_id)


def get_interaction(db: sqlite_utils.Database, interaction_id: str) -> dict | None:
    rows = list(db.query("SELECT * FROM interactions WHERE id = ?", [interaction_id]))
    return _decode(rows[0]) if rows else None


def recent_interactions(db: sqlite_utils.Database, n: int = 10, conversation: str | None = None) -> list[dict]:
    where, args = ("WHERE conversation_id = ?", [conversation]) if conversation is not None else ("", [])
    rows = db.query(f"SELECT * FROM interactions {where} ORDER BY created_at DESC, rowid DESC LIMIT ?", [*args, n])
    return [_decode(r) for r in rows]


def interaction_counts(db: sqlite_utils.Database) -> dict:
    row = next(db.query(
        """SELECT COUNT(*) AS total,
                  COALESCE(SUM(rating = 1), 0) AS rated_up,
                  COALESCE(SUM(rating = -1), 0) AS rated_down,
                  COALESCE(SUM(correction IS NOT NULL), 0) AS corrected,
                  COUNT(DISTINCT conversation_id) AS conversations
           FROM interactions"""
    ))
    return dict(row)


def _decode(row: dict) -> dict:
    row = dict(row)
    for key in ("messages", "params", "memory_ids"):
        if row.get(key):
            row[key] = json.loads(row[key])
    row["stream"] = bool(row.get("stream"))
    return row


def delete_interactions(db: sqlite_utils.Database, ids: list[str] | None = None,
                        conversation: str | None = None, everything: bool = False) -> dict:
    """Delete waiting interactions for good, at the user's request: the ones in ``ids``, those of
    one ``conversation``, or ``everything`` not yet consolidated. Their text is then in no file
    of the home (secure_delete, and the WAL scrubbed). The memories learned from them stay (they
    are listed and forgotten on their own); their count is returned.

    An unknown id or conversation raises ClagentError before anything is deleted."""
    if sum(x is not None and x is not False for x in (ids, conversation, everything or None)) != 1:
        raise ClagentError("give interaction ids, a conversation or all (one of them)")
    if ids is not None:
        ids = list(dict.fromkeys(ids))
        if not ids:
            raise ClagentError("no interaction id given")
        marks = ",".join("?" * len(ids))
        found = {r["id"] for r in db.query(f"SELECT id FROM interactions WHERE id IN ({marks})", ids)}
        missing = [i for i in ids if i not in found]
        if missing:
            raise ClagentError(f"no waiting interaction with id {missing[0]!r}")
        where, args = f"id IN ({marks})", ids
    elif conversation is not None:
        where, args = "conversation_id = ?", [conversation]
        if db.execute(f"SELECT 1 FROM interactions WHERE {where} LIMIT 1", args).fetchone() is None:
            raise ClagentError(f"no waiting interaction in conversation {conversation!r}")
    else:
        where, args = "1", []
    with transaction(db):
        doomed = [r[0] for r in db.execute(f"SELECT id FROM interactions WHERE {where}", args).fetchall()]
        deleted = db.execute(f"DELETE FROM interactions WHERE {where}", args).rowcount
    kept = 0
    for i in range(0, len(doomed), 500):
        chunk = doomed[i:i + 500]
        kept += db.execute(f"SELECT COUNT(*) FROM memories WHERE source_interaction IN ({','.join('?' * len(chunk))})",
                           chunk).fetchone()[0]
    scrub(db)
    return {"deleted": deleted, "ids": doomed, "memories_kept": kept}
