"""Memory through the daemon's API and the CLI (tiny model: the plumbing, not the answers)."""

import json
import sqlite3

import httpx
import pytest

from tests.conftest import run_cli


def mem(daemon, method, path="", **kw):
    return httpx.request(method, f"{daemon.url}/v1/clagent/memories{path}", timeout=60, **kw)


def test_chat_learns_and_recalls_across_conversations(daemon):
    client = daemon.openai()
    client.chat.completions.create(model="clagent", max_tokens=4, messages=[
        {"role": "user", "content": "My dog is called Rex. I live in Porto."}],
        extra_headers={"X-Clagent-Conversation": "A"})
    client.chat.completions.create(model="clagent", max_tokens=4, messages=[
        {"role": "user", "content": "Oops, my dog is called Biscuit."}], extra_headers={"X-Clagent-Conversation": "A"})
    active = mem(daemon, "GET").json()["data"]
    assert sorted(m["text"] for m in active) == ["The user lives in Porto.", "The user's dog is called Biscuit."]
    everything = mem(daemon, "GET", params={"status": "all"}).json()["data"]
    [rex] = [m for m in everything if "Rex" in m["text"]]
    assert rex["status"] == "superseded" and rex["source"] == "chat" and rex["source_interaction"].startswith("chatcmpl-")

    r = client.chat.completions.with_raw_response.create(
        model="clagent", max_tokens=4, messages=[{"role": "user", "content": "What is my dog called?"}],
        extra_headers={"X-Clagent-Conversation": "B"})
    body = r.parse()
    used = body.model_extra["memories_used"]
    assert [m["text"] for m in used] == ["The user's dog is called Biscuit."]
    assert r.headers["x-clagent-memories-used"] == str(used[0]["id"])
    con = sqlite3.connect(daemon.home / "clagent.db")
    logged = json.loads(con.execute("SELECT memory_ids FROM interactions WHERE id = ?", [body.id]).fetchone()[0])
    use_count = con.execute("SELECT use_count FROM memories WHERE id = ?", [used[0]["id"]]).fetchone()[0]
    con.close()
    assert logged == [used[0]["id"]] and use_count == 1

    off = client.chat.completions.create(model="clagent", max_tokens=4, extra_body={"memory": False},
                                         messages=[{"role": "user", "content": "What is my dog called?"}])
    assert off.model_extra["memories_used"] == []
    off = client.chat.completions.create(model="clagent", max_tokens=4, extra_headers={"X-Clagent-Memory": "off"},
                                         messages=[{"role": "user", "content": "What is my dog called?"}])
    assert off.model_extra["memories_used"] == []


def test_memory_endpoints(daemon):
    r = mem(daemon, "POST", json={"text": "my favourite colour is green"})
    assert r.status_code == 201 and r.json()["action"] == "added"
    green = r.json()["memory"]
    assert green["kind"] == "preference" and green["source"] == "api"
    r = mem(daemon, "POST", json={"text": "My favorite color is blue", "kind": "preference"})
    assert r.json()["action"] == "superseded" and r.json()["superseded"] == [green["id"]]
    blue = r.json()["memory"]
    mem(daemon, "POST", json={"text": "From now on, keep answers short."})
    found = mem(daemon, "GET", params={"search": "which colour do I like"}).json()["data"]
    assert found[0]["id"] == blue["id"] and found[0]["similarity"] > 0.4
    st = httpx.get(f"{daemon.url}/v1/clagent/status").json()["memory"]
    assert st == {"enabled": True, "active": {"preference": 1, "instruction": 1}, "superseded": 1, "total_active": 2}

    assert mem(daemon, "DELETE", f"/{blue['id']}").json()["deleted"][0]["id"] == blue["id"]
    assert mem(daemon, "DELETE", f"/{blue['id']}").status_code == 404
    r = mem(daemon, "POST", "/forget", json={"match": "keep answers"})
    assert len(r.json()["deleted"]) == 1
    assert mem(daemon, "POST", "/forget", json={"match": "keep answers"}).status_code == 404


@pytest.mark.parametrize("body,status,param", [
    ({"text": ""}, 400, "text"), ({"text": "x" * 2000}, 400, "text"), ({"text": 5}, 400, "text"),
    ({"text": "\x00\x01\x02\x03junk"}, 400, "text"), ({"text": "my dog is Rex", "kind": "gossip"}, 400, "kind"),
])
def test_bad_memory_requests(shared_daemon, body, status, param):
    daemon = shared_daemon
    r = mem(daemon, "POST", json=body)
    assert r.status_code == status and r.json()["error"]["param"] == param
    assert mem(daemon, "GET").json()["data"] == []
    assert mem(daemon, "POST", "/forget", json={}).status_code == 400
    assert mem(daemon, "GET", params={"status": "weird"}).status_code == 400


def test_feedback_correction_becomes_a_lesson(daemon):
    client = daemon.openai()
    r = client.chat.completions.create(model="clagent", max_tokens=4,
                                       messages=[{"role": "user", "content": "Who wrote The Glass Orchard?"}])
    fb = httpx.post(f"{daemon.url}/v1/clagent/feedback",
                    json={"interaction_id": r.id, "rating": "down", "correction": "Lena Okafor wrote it."}).json()
    lesson = fb["lesson"]["memory"]
    assert lesson["kind"] == "lesson" and lesson["question"] == "Who wrote The Glass Orchard?"
    assert lesson["source"] == "feedback" and lesson["source_interaction"] == r.id
    again = client.chat.completions.create(model="clagent", max_tokens=4,
                                           messages=[{"role": "user", "content": "Who wrote The Glass Orchard?"}])
    assert [m["id"] for m in again.model_extra["memories_used"]] == [lesson["id"]]
    up = httpx.post(f"{daemon.url}/v1/clagent/feedback", json={"interaction_id": again.id, "rating": "up"}).json()
    assert up["lesson"] is None


def test_memory_cli_with_daemon_stopped_then_running(tiny_home):
    home = str(tiny_home)
    p = run_cli("memory", "add", "--home", home, "My dog is called Rex")
    assert p.returncode == 0 and "remembered: 1  fact  The user's dog is called Rex." in p.stdout
    p = run_cli("memory", "add", "--home", home, "my dog is called Biscuit")
    assert "replaces 1" in p.stdout
    assert "Biscuit" in run_cli("memory", "list", "--home", home).stdout
    listing = run_cli("memory", "list", "--home", home, "--all").stdout
    assert "[superseded by 2]" in listing
    status = run_cli("status", "--home", home).stdout
    assert "memory     1 active (1 fact); 1 superseded" in status

    from tests.conftest import start_daemon

    d = start_daemon(tiny_home)
    try:
        p = run_cli("memory", "add", "--home", home, "I live in Lisbon")
        assert p.returncode == 0, p.stderr
        hits = json.loads(run_cli("memory", "list", "--home", home, "--search", "where do I live", "--json").stdout)
        assert hits[0]["text"] == "The user lives in Lisbon."
        p = run_cli("memory", "forget", "--home", home, "--match", "lisbon")
        assert "forgot:" in p.stdout
        assert httpx.get(f"{d.url}/v1/clagent/memories", params={"search": "where do I live"}).json()["data"][0][
            "text"] != "The user lives in Lisbon."
        p = run_cli("memory", "forget", "--home", home, "999")
        assert p.returncode == 1 and "no memory with id 999" in p.stderr and len(p.stderr.strip().splitlines()) == 1
        p = run_cli("memory", "forget", "--home", home)
        assert p.returncode == 1 and "give memory ids or --match" in p.stderr
    finally:
        d.stop()
    p = run_cli("memory", "add", "--home", home, "")
    assert p.returncode == 1 and "empty" in p.stderr


def test_the_response_says_which_memories_were_stored(daemon):
    client = daemon.openai()
    r = client.chat.completions.create(model="clagent", max_tokens=4, messages=[
        {"role": "user", "content": "Morning! My brother Tomás works at the harbour in Vigo. How are you?"}])
    stored = r.model_extra["memories_stored"]
    assert [(m["text"], m["action"]) for m in stored] == [("The user's brother Tomás works at the harbour in Vigo.",
                                                           "added")]
    # streamed: the last chunk before [DONE] carries it
    chunks = list(client.chat.completions.create(model="clagent", max_tokens=4, stream=True, messages=[
        {"role": "user", "content": "Oh, Tomás moved to Porto last spring, he works at the port there now."}]))
    [last] = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert "Porto" in last.model_extra["memories_stored"][0]["text"]
    nothing = client.chat.completions.create(model="clagent", max_tokens=4,
                                             messages=[{"role": "user", "content": "You got this, every step matters!"}])
    assert nothing.model_extra["memories_stored"] == []


def test_a_message_with_fifty_statements_stores_them_all(daemon):
    people = ["Ana", "Bruno", "Chloé", "Dmitri", "Eun-ji", "Farid", "Greta", "Hiro", "Ines", "Jamal"]
    places = ["Lyon", "Gdańsk", "Oaxaca", "Tromsø", "Cork", "Nairobi", "Busan", "Porto", "Adelaide", "Quito"]
    lines = [f"My colleague {p} lives in {c} and her badge number is {100 + i * 7}." if i % 2 else
             f"My cousin {p} moved to {c} in {1990 + i * 3}."
             for i, (p, c) in enumerate((p, c) for p in people for c in places[:5])]
    assert len(lines) == 50
    r = daemon.openai().chat.completions.create(model="clagent", max_tokens=4,
                                                messages=[{"role": "user", "content": " ".join(lines)}])
    stored = r.model_extra["memories_stored"]
    assert len(stored) == 50
    assert all(m["text"].startswith("The user's") for m in stored)
