"""The home's SQLite database: opened in WAL mode, schema kept by numbered migrations."""

from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import sqlite_utils

from clagent.errors import ClagentError

DB_FILE = "clagent.db"

MIGRATIONS = []


def migration(fn):
    MIGRATIONS.append(fn)
    return fn


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@migration
def m001_initial(db: sqlite_utils.Database) -> None:
    db["versions"].create(
        {
            "id": int,
            "parent": int,
            "created_at": str,
            "method": str,  # how it was made: "import", "consolidation", ...
            "master_file": str,  # float (F16) GGUF, relative to the home
            "served_file": str,  # quantized GGUF, relative to the home
            "quant": str,
            "info": str,  # JSON: source, sizes, figures of the run that made it
        },
        pk="id",
        foreign_keys=[("parent", "versions", "id")],
    )
    db["state"].create({"key": str, "value": str}, pk="key")
    db["interactions"].create(
        {
            "id": str,  # the completion id returned to the client (chatcmpl-...)
            "conversation_id": str,
            "created_at": str,
            "version": int,
            "model": str,
            "messages": str,  # JSON list of the request's messages
            "params": str,  # JSON of the sampling parameters
            "response": str,
            "finish_reason": str,
            "prompt_tokens": int,
            "completion_tokens": int,
            "ttft_ms": float,
            "total_ms": float,
            "stream": int,
            "rating": int,  # +1 up, -1 down, NULL none
            "correction": str,
            "feedback_at": str,
        },
        pk="id",
    )
    db["interactions"].create_index(["conversation_id"])
    db["interactions"].create_index(["created_at"])
    db["events"].create(
        {"id": int, "at": str, "kind": str, "version": int, "detail": str}, pk="id"
    )


@migration
def m002_memories(db: sqlite_utils.Database) -> None:
    db["memories"].create(
        {
            "id": int,
            "text": str,  # as injected into the prompt (third person: "The user's dog is ...")
            "index_text": str,  # what is embedded and matched (close to how the user says it)
            "kind": str,  # fact | preference | lesson | instruction
            "key": str,  # what the memory is about; a newer memory with the same key supersedes
            "status": str,  # active | superseded
            "superseded_by": int,
            "source": str,  # chat | feedback | explicit | api | cli
            "source_interaction": str,
            "question": str,  # for lessons: the question the correction answers
            "created_at": str,
            "updated_at": str,
            "use_count": int,
            "last_used_at": str,
            "embedding": bytes,  # float32, L2-normalised
            "consolidated_version": int,  # the model version that absorbed it (consolidation)
        },
        pk="id",
        not_null={"text", "kind", "status", "created_at", "updated_at"},
        defaults={"status": "active", "use_count": 0},
    )
    db["memories"].create_index(["status", "kind"])
    db["memories"].create_index(["key"])
    db["interactions"].add_column("memory_ids", str)


@migration
def m003_pruned_versions(db: sqlite_utils.Database) -> None:
    # The retention policy deletes old versions' files; their records stay, marked.
    db.execute("ALTER TABLE versions ADD COLUMN pruned_at TEXT")


def connect(path: Path) -> sqlite_utils.Database:
    """Open (creating and migrating if needed) the database at ``path``."""
    try:
        conn = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA foreign_keys = ON")
        db = sqlite_utils.Database(conn)
        db.enable_wal()
        # In WAL mode NORMAL is safe against application crashes (only a power loss can undo the
        # last commits) and spares an fsync per logged interaction.
        conn.execute("PRAGMA synchronous = NORMAL")
        migrate(db)
    except sqlite3.DatabaseError as e:
        raise ClagentError(f"cannot open database {path}: {e}") from None
    return db


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply the migrations not yet applied, each in its own transaction."""
    if "_migrations" not in db.table_names():
        db["_migrations"].create({"name": str, "applied_at": str}, pk="name")
    done = {row["name"] for row in db["_migrations"].rows}
    applied = []
    for fn in MIGRATIONS:
        if fn.__name__ in done:
            continue
        with transaction(db):
            fn(db)
            # Plain SQL: sqlite-utils' insert() would commit our transaction early.
            db.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", [fn.__name__, utcnow()])
        applied.append(fn.__name__)
    return applied


_tx_lock = threading.RLock()


@contextmanager
def transaction(db: sqlite_utils.Database):
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception.

    The connection runs in autocommit mode (isolation_level=None), so this is the
    only place transactions start; the lock serialises threads sharing it.
    """
    with _tx_lock:
        db.conn.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.conn.execute("ROLLBACK")
            raise
        else:
            db.conn.execute("COMMIT")
