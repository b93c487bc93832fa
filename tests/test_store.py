"""The SQLite store: WAL, migrations, interactions and feedback, transactions."""

import pytest

from clagent.errors import ClagentError
from clagent.memory import db as dbmod
from clagent.memory.interactions import (Interaction, get_interaction, interaction_counts, log_interaction,
                                         logged_total, recent_interactions, set_feedback)


@pytest.fixture
def db(tmp_path):
    d = dbmod.connect(tmp_path / "c.db")
    yield d
    d.conn.close()


def test_wal_and_migrations_are_idempotent(tmp_path, db):
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"versions", "interactions", "state", "events", "_migrations"} <= set(db.table_names())
    applied = [r["name"] for r in db["_migrations"].rows]
    assert applied == [m.__name__ for m in dbmod.MIGRATIONS]
    again = dbmod.connect(tmp_path / "c.db")
    assert dbmod.migrate(again) == []
    again.conn.close()


def _it(n, conv="c1"):
    return Interaction(id=f"chatcmpl-{n}", conversation_id=conv, version=1, model="clagent-v1",
                       messages=[{"role": "user", "content": f"q{n}"}], response=f"a{n}",
                       prompt_tokens=5, completion_tokens=3, total_ms=10.0)


def test_log_and_feedback(db):
    for n in range(3):
        log_interaction(db, _it(n, conv="c1" if n < 2 else "c2"))
    assert logged_total(db) == 3
    row = get_interaction(db, "chatcmpl-1")
    assert row["messages"] == [{"role": "user", "content": "q1"}] and row["response"] == "a1"
    assert [r["id"] for r in recent_interactions(db, 2)] == ["chatcmpl-2", "chatcmpl-1"]

    assert set_feedback(db, "chatcmpl-0", "up")["rating"] == 1
    row = set_feedback(db, "chatcmpl-1", None, correction="  the answer is 42 ")
    assert row["rating"] == -1 and row["correction"] == "the answer is 42"
    counts = interaction_counts(db)
    assert counts == {"total": 3, "rated_up": 1, "rated_down": 1, "corrected": 1, "conversations": 2}


@pytest.mark.parametrize("rating,correction,match", [
    ("sideways", None, "rating"), (5, None, "rating"), (None, None, "needs a rating"), ("down", "   ", "empty"),
])
def test_bad_feedback_is_rejected(db, rating, correction, match):
    log_interaction(db, _it(0))
    with pytest.raises(ClagentError, match=match):
        set_feedback(db, "chatcmpl-0", rating, correction)
    assert get_interaction(db, "chatcmpl-0")["rating"] is None


def test_feedback_on_unknown_interaction(db):
    with pytest.raises(ClagentError, match="no interaction"):
        set_feedback(db, "chatcmpl-nope", "up")


def test_transaction_rolls_back(db):
    with pytest.raises(RuntimeError):
        with dbmod.transaction(db):
            db.execute("INSERT INTO state (key, value) VALUES ('x', '1')")
            raise RuntimeError("boom")
    assert list(db.query("SELECT * FROM state WHERE key = 'x'")) == []


def test_corrupt_database_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ClagentError, match="cannot open database"):
        dbmod.connect(bad)
