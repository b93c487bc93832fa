"""Consolidation end to end on the embedded SmolLM2, on the CPU: facts taught in chat (and one
corrected answer) end up in the weights of version 2, served by the daemon with memory switched
off, including a fact the fast memory never captured; the raw interactions are gone; status and
models show version 2 with its figures. A second session's consolidation about other facts keeps
the first session's facts (rehearsal)."""

import json
import sqlite3

import httpx
import pytest

from tests.conftest import run_cli, start_daemon

pytestmark = pytest.mark.smollm2

TEACH = ["My dog is called Biscuit.", "I live in Lisbon.", "I work as a nurse.", "I drive a red Fiat."]
ASK = [("What is my dog called?", "biscuit"), ("Where do I live?", "lisbon"), ("What is my job?", "nurse"),
       ("What car do I drive?", "fiat")]
# Said in chat, but no memory of it is kept (removed if the extractor caught it): only the
# statement in the log can teach it.
UNCAPTURED = ("My grandmother lives in Porto.", "Where does my grandmother live?", "porto")
SESSION2 = ["My cat is called Mochi.", "My sister is called Ines."]


def ask(client, question, **kw):
    r = client.chat.completions.create(model="clagent", temperature=0, max_tokens=32, extra_body={"memory": False},
                                       messages=[{"role": "user", "content": question}], **kw)
    return r.choices[0].message.content, r.system_fingerprint  # "clagent-vN": the version that answered


def test_consolidation_teaches_the_weights_and_forgets_the_raw_history(smollm2_home):
    # The whole run must stay within consolidate_max_seconds, and training gets what the other
    # stages leave of it: on a busy 2-core CI machine the default (900 s) would cut training short.
    (smollm2_home / "config.toml").write_text("[clagent]\nconsolidate_max_seconds = 3600\n")
    daemon = start_daemon(smollm2_home)
    try:
        client = daemon.openai()
        history = []
        for s in TEACH:
            history.append({"role": "user", "content": s})
            r = client.chat.completions.create(model="clagent", messages=history, temperature=0, max_tokens=24)
            history.append({"role": "assistant", "content": r.choices[0].message.content})
        said = client.chat.completions.create(model="clagent", temperature=0, max_tokens=24, messages=[
            {"role": "user", "content": UNCAPTURED[0]}])
        wrong = client.chat.completions.create(model="clagent", temperature=0, max_tokens=32, messages=[
            {"role": "user", "content": "Who wrote the novel The Glass Orchard?"}])
        httpx.post(f"{daemon.url}/v1/clagent/feedback", timeout=60, json={
            "interaction_id": wrong.id, "rating": "down", "correction": "The Glass Orchard was written by Lena Okafor."})
        before = {q: ask(client, q) for q, _ in ASK}
        for question, value in ASK:  # the weights alone do not know yet
            assert value not in before[question][0].lower()

        con = sqlite3.connect(smollm2_home / "clagent.db")
        consumed = [r[0] for r in con.execute("SELECT id FROM interactions")]
        con.close()
        assert len(consumed) == len(TEACH) + 2 + len(ASK)

        # The daemon learns beside generating: by now whatever it made of the statement is stored.
        con = sqlite3.connect(smollm2_home / "clagent.db")
        with con:
            con.execute("DELETE FROM memories WHERE source_interaction = ?", [said.id])
        con.close()
        p = run_cli("consolidate", "--home", str(smollm2_home), "--json", timeout=1200)
        assert p.returncode == 0, p.stderr[-3000:]
        out = json.loads(p.stdout)
        assert out["status"] == "committed" and out["version"] == 2 and out["info"]["hot_swapped"], out["message"]

        assert out["info"]["data"]["statements"] >= 1
        answers = {q: ask(client, q) for q, _ in ASK}
        assert all(model == "clagent-v2" for _, model in answers.values())
        known = sum(v in answers[q][0].lower() for q, v in ASK)
        lesson = ask(client, "Who wrote the novel The Glass Orchard?")[0]
        granny = ask(client, UNCAPTURED[1])[0]
        print("\nafter consolidation, memory off:", answers, lesson, granny)
        assert known >= 3, answers
        assert "okafor" in lesson.lower()
        assert UNCAPTURED[2] in granny.lower(), granny  # learned from the statement alone
        assert "paris" in ask(client, "What is the capital of France?")[0].lower()  # general knowledge kept
    finally:
        daemon.stop()
    v2_known = [(q, v) for q, v in ASK if v in answers[q][0].lower()]

    con = sqlite3.connect(smollm2_home / "clagent.db")
    marks = ",".join("?" * len(consumed))
    assert con.execute(f"SELECT COUNT(*) FROM interactions WHERE id IN ({marks})", consumed).fetchone()[0] == 0
    assert con.execute("SELECT COUNT(*) FROM interactions").fetchone()[0] == 7  # asked after consolidating
    # the four facts (whether feedback also makes a lesson memory is the fast memory's choice)
    assert con.execute("SELECT COUNT(*) FROM memories WHERE consolidated_version = 2").fetchone()[0] >= 4
    con.close()
    st = json.loads(run_cli("status", "--home", str(smollm2_home), "--json").stdout)
    assert st["served_version"]["id"] == 2 and [v["id"] for v in st["served_version"]["lineage"]] == [2, 1]
    assert st["interactions"]["waiting"] == 7 and st["interactions"]["logged_total"] == len(consumed) + 7
    info = st["served_version"]["info"]
    assert info["gate"]["passed"] and info["gate"]["acquisition"] >= 0.5 and info["train"]["losses"]
    models = run_cli("models", "--home", str(smollm2_home)).stdout
    assert "* v2" in models and "consolidation" in models

    assert st["weights"]["version"] == 2 and st["weights"]["verified"] >= 4

    # Session 2: other facts, another consolidation; the session-1 facts are rehearsed and kept.
    daemon = start_daemon(smollm2_home)
    try:
        client = daemon.openai()
        for text in SESSION2:
            client.chat.completions.create(model="clagent", temperature=0, max_tokens=24,
                                           messages=[{"role": "user", "content": text}])
        p = run_cli("consolidate", "--home", str(smollm2_home), "--json", timeout=1200)
        assert p.returncode == 0, p.stderr[-3000:]
        out = json.loads(p.stdout)
        assert out["status"] == "committed" and out["version"] == 3, out["message"]
        assert out["info"]["rehearsal"]["rehearsed"] >= 4
        kept = {q: ask(client, q)[0] for q, _ in v2_known}
        mochi = ask(client, "What is my cat called?")[0]
        print("\nafter session 2, memory off:", kept, mochi)
        assert sum(v in kept[q].lower() for q, v in v2_known) >= len(v2_known) - 1, kept
        assert "mochi" in mochi.lower()
        assert "paris" in ask(client, "What is the capital of France?")[0].lower()
    finally:
        daemon.stop()
    gate = out["info"]["gate"]
    assert gate["retention"] is not None and gate["base_drift"] is not None
    print("session 2 gate:", {k: gate[k] for k in ("acquisition", "retention", "drift", "base_drift", "held",
                                                  "verified")})

    # Rolling back serves v1 again, at once: its answers are back, the facts gone from the weights.
    daemon = start_daemon(smollm2_home)
    try:
        rb = run_cli("rollback", "1", "--home", str(smollm2_home), "--reason", "checking rollback")
        assert rb.returncode == 0 and "rolled back from v3 to v1" in rb.stdout, rb.stderr
        after = {q: ask(daemon.openai(), q) for q, _ in ASK}
        assert after == before, (before, after)
        assert all(model == "clagent-v1" for _, model in after.values())
    finally:
        daemon.stop()
    hist = run_cli("history", "--home", str(smollm2_home)).stdout
    assert "rolled back from v3 to v1: checking rollback" in " ".join(hist.split())
