"""The daemon over real HTTP with the official openai client, on the tiny model."""

import json
import sqlite3

import httpx
import openai
import pytest


def rows(home, sql="SELECT * FROM interactions ORDER BY created_at", args=()):
    con = sqlite3.connect(home / "clagent.db")
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, args)]
    finally:
        con.close()


def test_chat_completion_is_served_and_logged(daemon):
    client = daemon.openai()
    r = client.chat.completions.create(
        model="clagent", messages=[{"role": "user", "content": "Hello there"}],
        max_tokens=8, temperature=0, seed=1, extra_headers={"X-Clagent-Conversation": "conv-a"},
    )
    assert r.id.startswith("chatcmpl-") and r.model == "clagent"  # the name asked for
    assert r.clagent_version == 1 and r.system_fingerprint == "clagent-v1"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason in ("stop", "length")
    assert 0 < r.usage.completion_tokens <= 8 and r.usage.prompt_tokens > 3
    [row] = rows(daemon.home)
    assert row["id"] == r.id and row["conversation_id"] == "conv-a" and row["version"] == 1
    assert json.loads(row["messages"]) == [{"role": "user", "content": "Hello there"}]
    assert row["response"] == r.choices[0].message.content
    assert row["completion_tokens"] == r.usage.completion_tokens and row["total_ms"] > 0
    assert json.loads(row["params"])["max_tokens"] == 8


def test_greedy_is_deterministic_and_stream_matches(daemon):
    client = daemon.openai()
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Count to five"}]
    a = client.chat.completions.create(model="clagent", messages=msgs, max_tokens=12, temperature=0)
    b = client.chat.completions.create(model="clagent", messages=msgs, max_tokens=12, temperature=0)
    assert a.choices[0].message.content == b.choices[0].message.content

    chunks = list(client.chat.completions.create(model="clagent", messages=msgs, max_tokens=12, temperature=0,
                                                 stream=True, stream_options={"include_usage": True},
                                                 extra_body={"conversation_id": "conv-s"}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == a.choices[0].message.content
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and chunks[-1].usage.completion_tokens == a.usage.completion_tokens
    assert len({c.id for c in chunks}) == 1
    logged = rows(daemon.home, "SELECT * FROM interactions WHERE id = ?", (chunks[0].id,))
    assert logged[0]["stream"] == 1 and logged[0]["response"] == text and logged[0]["conversation_id"] == "conv-s"


def test_sse_wire_format_ends_with_done(daemon):
    body = {"model": "clagent", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": True}
    with httpx.stream("POST", f"{daemon.base_url}/chat/completions", json=body, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert r.headers["x-clagent-conversation"].startswith("conv-")
        lines = [l for l in r.iter_lines() if l]
    assert all(l.startswith("data: ") for l in lines)
    assert lines[-1] == "data: [DONE]"
    assert json.loads(lines[0][6:])["object"] == "chat.completion.chunk"


def test_stop_and_length(daemon):
    client = daemon.openai()
    r = client.chat.completions.create(model="clagent", messages=[{"role": "user", "content": "x"}],
                                       max_tokens=3, temperature=0, stop=["\u2603"])
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3


def test_models_health_status_feedback(daemon):
    client = daemon.openai()
    assert [m.id for m in client.models.list().data] == ["clagent", "clagent-v1", "all-MiniLM-L6-v2"]
    assert httpx.get(f"{daemon.url}/health").json() == {"status": "ok", "version": 1}
    r = client.chat.completions.create(model="clagent-v1", messages=[{"role": "user", "content": "2+2?"}], max_tokens=4)
    assert r.model == "clagent-v1"
    fb = httpx.post(f"{daemon.url}/v1/clagent/feedback",
                    json={"interaction_id": r.id, "rating": "down", "correction": "4"})
    assert fb.status_code == 200 and fb.json()["rating"] == -1
    [row] = rows(daemon.home)
    assert (row["rating"], row["correction"]) == (-1, "4") and row["feedback_at"]
    st = httpx.get(f"{daemon.url}/v1/clagent/status").json()
    assert st["daemon"]["running"] and st["daemon"]["served_version"] == 1
    assert st["served_version"]["id"] == 1 and st["served_version"]["quant"] == "Q8_0"
    assert st["interactions"]["waiting"] == 1 and st["interactions"]["rated_down"] == 1
    assert st["store"]["models_bytes"] > 0


BAD_REQUESTS = [
    (b"{not json", 400, None),
    (b'"a string"', 400, None),
    (json.dumps({"model": "clagent"}).encode(), 400, "messages"),
    (json.dumps({"messages": []}).encode(), 400, "messages"),
    (json.dumps({"messages": "hello"}).encode(), 400, "messages"),
    (json.dumps({"messages": [{"role": "wizard", "content": "hi"}]}).encode(), 400, "messages[0].role"),
    (json.dumps({"messages": [{"role": "user", "content": 42}]}).encode(), 400, "messages[0].content"),
    (json.dumps({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}).encode(), 400, "messages[0].content"),
    (json.dumps({"messages": [{"role": "user"}]}).encode(), 400, "messages[0].content"),
    (json.dumps({"messages": [{"role": "system", "content": "only system"}]}).encode(), 400, "messages"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10**9}).encode(), 400, "max_tokens"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}).encode(), 400, "max_tokens"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}).encode(), 400, "temperature"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}], "n": 3}).encode(), 400, "n"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}], "stop": [1]}).encode(), 400, "stop"),
    (json.dumps({"messages": [{"role": "user", "content": "hi"}], "model": "gpt-4"}).encode(), 404, "model"),
    (json.dumps({"messages": [{"role": "user", "content": "word " * 5000}]}).encode(), 400, "messages"),
]


@pytest.mark.parametrize("body,status,param", BAD_REQUESTS)
def test_bad_requests_get_openai_errors_and_daemon_keeps_serving(shared_daemon, body, status, param):
    daemon = shared_daemon
    r = httpx.post(f"{daemon.base_url}/chat/completions", content=body,
                   headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"] and err["type"] and "Traceback" not in r.text
    assert err["param"] == param
    ok = httpx.post(f"{daemon.base_url}/chat/completions", timeout=60,
                    json={"messages": [{"role": "user", "content": "still there?"}], "max_tokens": 2})
    assert ok.status_code == 200


def test_errors_through_the_openai_client(daemon):
    client = daemon.openai()
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="clagent", messages=[{"role": "user", "content": "a " * 3000}], stream=True)
    assert e.value.body["code"] == "context_length_exceeded"
    assert rows(daemon.home) == []  # rejected requests are not interactions


def test_bad_feedback_and_swap_requests(daemon):
    post = lambda path, body: httpx.post(f"{daemon.url}{path}", json=body)
    assert post("/v1/clagent/feedback", {"interaction_id": "chatcmpl-nope", "rating": "up"}).status_code == 404
    assert post("/v1/clagent/feedback", {"rating": "up"}).status_code == 400
    r = daemon.openai().chat.completions.create(model="clagent", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    bad = post("/v1/clagent/feedback", {"interaction_id": r.id, "rating": "meh"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "rating"
    assert post("/v1/clagent/swap", {"version": 99}).status_code == 404
    assert post("/v1/clagent/swap", {"version": "1"}).status_code == 400
    assert httpx.get(f"{daemon.url}/v1/nothing-here").json()["error"]["message"]


def test_content_parts_and_developer_role_are_accepted(daemon):
    r = httpx.post(f"{daemon.base_url}/chat/completions", timeout=60, json={
        "messages": [{"role": "developer", "content": "Be terse."},
                     {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]}],
        "max_tokens": 2})
    assert r.status_code == 200
    row = rows(daemon.home)[0]
    assert json.loads(row["messages"]) == [{"role": "system", "content": "Be terse."},
                                           {"role": "user", "content": "Hi there"}]


def test_client_disconnect_mid_stream_is_logged_as_cancelled(daemon):
    body = {"messages": [{"role": "user", "content": "tell a long story"}], "max_tokens": 1500, "stream": True,
            "temperature": 1.0}
    with httpx.stream("POST", f"{daemon.base_url}/chat/completions", json=body, timeout=60) as r:
        for n, _ in enumerate(r.iter_lines()):
            if n > 3:
                break
    import time
    for _ in range(100):
        got = rows(daemon.home)
        if got:
            break
        time.sleep(0.1)
    assert got and got[0]["finish_reason"] in ("cancelled", "stop")
    assert got[0]["completion_tokens"] < 1500
    assert httpx.get(f"{daemon.url}/health").status_code == 200
