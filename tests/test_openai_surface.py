"""The OpenAI surface tools call, through the official openai client against a real daemon on the
tiny model: raw completions, embeddings, model names and retrieval; abandoned requests that stop,
free the engine, are logged as cancelled and are never trained on; big prompts that hold up nobody;
bad input refused in OpenAI's shape with nothing logged."""

from __future__ import annotations

import base64
import json
import re
import socket
import sqlite3
import threading
import time
from urllib.parse import urlsplit

import httpx
import numpy as np
import openai
import pytest

from tests.conftest import start_daemon


def rows(home, sql="SELECT * FROM interactions ORDER BY created_at", args=()):
    con = sqlite3.connect(home / "clagent.db")
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, args)]
    finally:
        con.close()


def count(home) -> int:
    return rows(home, "SELECT COUNT(*) AS n FROM interactions")[0]["n"]


def wait_for_row(home, interaction_id: str, seconds: float = 60) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = rows(home, "SELECT * FROM interactions WHERE id = ?", (interaction_id,))
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"{interaction_id} was not logged")


def metric(daemon, name: str, **labels) -> float:
    text = httpx.get(f"{daemon.url}/metrics", timeout=30).text
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"{name}\{{(.*)\}} (\S+)$", line)
        if m and all(f'{k}="{v}"' in m[1] for k, v in labels.items()):
            total += float(m[2])
    return total


# -- raw completions -----------------------------------------------------------------------------------
def test_completions_streamed_and_not(shared_daemon):
    d = shared_daemon
    client = d.openai()
    before = count(d.home)
    kw = dict(model="clagent", prompt="Once upon a time", max_tokens=12, temperature=0)
    r = client.completions.create(**kw)
    assert r.object == "text_completion" and r.id.startswith("cmpl-") and r.model == "clagent"
    assert r.clagent_version == 1 and r.system_fingerprint == "clagent-v1"
    [choice] = r.choices
    assert choice.index == 0 and choice.finish_reason in ("stop", "length") and choice.text
    assert 0 < r.usage.completion_tokens <= 12 and r.usage.prompt_tokens == 4
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens

    again = client.completions.create(**kw)
    assert again.choices[0].text == choice.text  # greedy is deterministic

    chunks = list(client.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    assert all(c.object == "text_completion" and c.id == chunks[0].id and c.model == "clagent" for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == choice.text
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason == choice.finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == r.usage.completion_tokens

    # each logged once, as a completion, with the prompt and what was generated
    logged = rows(d.home, "SELECT * FROM interactions WHERE id IN (?, ?, ?)", (r.id, again.id, chunks[0].id))
    assert len(logged) == 3 and count(d.home) == before + 3
    assert {x["kind"] for x in logged} == {"completion"}
    streamed = next(x for x in logged if x["id"] == chunks[0].id)
    assert streamed["stream"] == 1 and streamed["response"] == choice.text and streamed["version"] == 1
    assert json.loads(streamed["messages"]) == [{"role": "prompt", "content": "Once upon a time"}]
    assert json.loads(streamed["params"])["max_tokens"] == 12


def test_completion_parameters(shared_daemon):
    client = shared_daemon.openai()
    # without max_tokens: the daemon's default_max_tokens (512), as for chat
    r = client.completions.create(model="clagent", prompt="The weather today", temperature=0)
    [row] = rows(shared_daemon.home, "SELECT params FROM interactions WHERE id = ?", (r.id,))
    assert json.loads(row["params"])["max_tokens"] == 512
    assert r.usage.completion_tokens == 512 or r.choices[0].finish_reason == "stop"

    # stop: the text ends before the stop sequence, which is not included
    full = client.completions.create(model="clagent", prompt="Numbers:", max_tokens=24, temperature=0).choices[0].text
    assert len(full) > 12, full
    stop = full[8:11]
    cut = client.completions.create(model="clagent", prompt="Numbers:", max_tokens=24, temperature=0, stop=[stop])
    assert cut.choices[0].finish_reason == "stop"
    assert cut.choices[0].text == full[:full.index(stop)]

    # seed: the same seed samples the same text, another seed (almost surely) another
    sample = lambda seed: client.completions.create(model="clagent", prompt="Say something", max_tokens=16,
                                                   temperature=1.5, top_p=1.0, seed=seed).choices[0].text
    assert sample(7) == sample(7)
    assert len({sample(s) for s in (1, 2, 3)}) > 1
    # top_p near zero keeps only the most likely token: greedy
    greedy = client.completions.create(model="clagent", prompt="Say something", max_tokens=10, temperature=0)
    nucleus = client.completions.create(model="clagent", prompt="Say something", max_tokens=10, temperature=1.5,
                                        top_p=1e-6, seed=3)
    assert nucleus.choices[0].text == greedy.choices[0].text

    # echo puts the prompt before the completion
    echoed = client.completions.create(model="clagent", prompt="Numbers:", max_tokens=24, temperature=0, echo=True)
    assert echoed.choices[0].text == "Numbers:" + full

    # a list of prompts: one choice each, in order, each logged under its own id
    batch = client.completions.create(model="clagent", prompt=["Numbers:", "Once upon a time"], max_tokens=24,
                                      temperature=0)
    assert [c.index for c in batch.choices] == [0, 1] and batch.choices[0].text == full
    logged = rows(shared_daemon.home, "SELECT id, response FROM interactions WHERE id LIKE ? ORDER BY id",
                  (batch.id + "-%",))
    assert [x["id"] for x in logged] == [f"{batch.id}-0", f"{batch.id}-1"]
    assert [x["response"] for x in logged] == [c.text for c in batch.choices]

    streamed = list(client.completions.create(model="clagent", prompt=["Numbers:", "Once upon a time"],
                                              max_tokens=24, temperature=0, stream=True))
    for i, choice in enumerate(batch.choices):
        mine = [c.choices[0] for c in streamed if c.choices and c.choices[0].index == i]
        assert "".join(c.text for c in mine) == choice.text
        assert [c.finish_reason for c in mine if c.finish_reason] == [choice.finish_reason]

    # the body LangChain's OpenAI LLM sends for two prompts (nulls and an empty logit_bias included)
    lc = httpx.post(f"{shared_daemon.base_url}/completions", timeout=60, json={
        "model": "clagent", "prompt": ["Numbers:", "Once upon a time"], "temperature": 0.0, "top_p": 1,
        "frequency_penalty": 0, "presence_penalty": 0, "n": 1, "logit_bias": {}, "seed": None, "logprobs": None,
        "max_tokens": 24})
    assert lc.status_code == 200 and [c["text"] for c in lc.json()["choices"]] == [c.text for c in batch.choices]

    # token ids of the served model as the prompt
    ids = client.completions.create(model="clagent", prompt=[[504, 3658, 42]], max_tokens=4, temperature=0)
    assert ids.usage.prompt_tokens == 3 and ids.choices[0].text


def test_model_names_and_retrieval(shared_daemon):
    d = shared_daemon
    client = d.openai()
    assert [m.id for m in client.models.list().data] == ["clagent", "clagent-v1", "all-MiniLM-L6-v2"]
    served = client.models.retrieve("clagent")
    assert served.id == "clagent" and served.object == "model" and served.owned_by == "clagent"
    assert served.clagent_version == 1 and served.clagent_served is True and served.clagent_type == "chat"
    v1 = client.models.retrieve("clagent-v1")
    assert v1.id == "clagent-v1" and v1.clagent_version == 1 and v1.created == served.created > 1_600_000_000
    emb = client.models.retrieve("sentence-transformers/all-MiniLM-L6-v2")
    assert emb.clagent_type == "embedding" and emb.clagent_dimensions == 384
    for missing in ("gpt-4o", "clagent-v7", "clagent-vx"):
        with pytest.raises(openai.NotFoundError) as e:
            client.models.retrieve(missing)
        assert e.value.body["code"] == "model_not_found"

    # the response carries the name asked for; the version is in a field and a header
    for asked in ("clagent", "clagent-v1"):
        raw = client.chat.completions.with_raw_response.create(
            model=asked, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
        assert raw.headers["x-clagent-version"] == "1"
        r = raw.parse()
        assert r.model == asked and r.clagent_version == 1
        chunks = list(client.chat.completions.create(model=asked, messages=[{"role": "user", "content": "hi"}],
                                                     max_tokens=2, stream=True))
        assert {c.model for c in chunks} == {asked}
    no_model = httpx.post(f"{d.base_url}/completions", json={"prompt": "hi", "max_tokens": 2}, timeout=60)
    assert no_model.json()["model"] == "clagent" and no_model.headers["x-clagent-version"] == "1"


# -- embeddings ------------------------------------------------------------------------------------------
def test_embeddings_one_and_batch_float_and_base64(shared_daemon, embedder):
    client = shared_daemon.openai()
    texts = ["The cat sat on the mat.", "A kitten is sitting on a rug.", "Interest rates rose again this quarter."]
    one = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts[0], encoding_format="float")
    assert one.model == "all-MiniLM-L6-v2" and len(one.data) == 1 and one.data[0].index == 0
    v = np.array(one.data[0].embedding)
    assert v.shape == (384,) and abs(np.linalg.norm(v) - 1) < 1e-4
    # the same vector as the embedding model gives in this process
    assert np.allclose(v, embedder.encode([texts[0]])[0], atol=1e-4)
    # the model's own tokenizer counts: [CLS] the cat sat on the mat . [SEP]
    assert one.usage.prompt_tokens == one.usage.total_tokens == 9

    batch = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts, encoding_format="float")
    vectors = np.array([d.embedding for d in sorted(batch.data, key=lambda d: d.index)])
    assert vectors.shape == (3, 384) and np.allclose(vectors[0], v, atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.2  # related sentences are closer than unrelated ones
    assert batch.usage.prompt_tokens > 3 * 8

    # base64: what the openai client asks for by default (and decodes); raw, little-endian float32
    default = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)
    assert np.allclose(np.array([d.embedding for d in default.data]), vectors, atol=1e-6)
    raw = httpx.post(f"{shared_daemon.base_url}/embeddings", timeout=60,
                     json={"model": "all-MiniLM-L6-v2", "input": texts[:2], "encoding_format": "base64"}).json()
    decoded = np.frombuffer(base64.b64decode(raw["data"][1]["embedding"]), dtype="<f4")
    assert np.allclose(decoded, vectors[1], atol=1e-6)

    # under the name the client asked for, in any case; the Hugging Face id works too
    asked = client.embeddings.create(model="sentence-transformers/all-minilm-l6-v2", input="hello")
    assert asked.model == "sentence-transformers/all-minilm-l6-v2"
    with pytest.raises(openai.NotFoundError) as e:
        client.embeddings.create(model="text-embedding-3-small", input="hello")
    assert "all-MiniLM-L6-v2" in e.value.body["message"] and "384" in e.value.body["message"]


# -- no work for nobody ------------------------------------------------------------------------------------
def _abandon(url: str, path: str, body: dict, after: float) -> None:
    """Send a request on a raw connection and close it before any answer comes."""
    parts = urlsplit(url)
    data = json.dumps(body).encode()
    s = socket.create_connection((parts.hostname, parts.port))
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    time.sleep(after)
    s.close()


LONG = 8000  # tokens: many seconds of the tiny model's generation, even on a fast machine


@pytest.fixture
def roomy_daemon(tiny_home):
    """A daemon whose context and token limit allow very long answers."""
    from clagent.config import Settings

    Settings(n_ctx=8192, max_tokens_limit=8192).write(tiny_home)
    d = start_daemon(tiny_home)
    yield d
    d.stop()


def test_abandoned_requests_stop_free_the_engine_and_are_not_trained_on(roomy_daemon):
    from clagent.home import Home
    from clagent.updater import dataset
    from clagent.updater.pipeline import pending

    daemon = roomy_daemon
    client = daemon.openai()
    client.chat.completions.create(model="clagent", messages=[{"role": "user", "content": "warm up"}], max_tokens=2)
    t0 = time.monotonic()
    client.chat.completions.create(model="clagent", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    alone = time.monotonic() - t0

    # The official client giving up (its timeout), then three closed sockets, as tabs being closed.
    gave_up = daemon.openai(timeout=1.5)
    with pytest.raises(openai.APITimeoutError):
        gave_up.chat.completions.create(model="clagent", temperature=1.0, max_tokens=LONG,
                                        messages=[{"role": "user", "content": "Tell a very long story, zebra-0"}])
    closers = [threading.Thread(target=_abandon, args=(daemon.url, path, body, 1.0)) for path, body in [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": f"Tell a very long story, zebra-{i}"}],
                                  "max_tokens": LONG, "temperature": 1.0}) for i in (1, 2)
    ] + [("/v1/completions", {"prompt": "A very long story about zebra-3", "max_tokens": LONG, "temperature": 1.0})]]
    for t in closers:
        t.start()
    for t in closers:
        t.join()

    # the next request is answered as soon as the abandoned ones have stopped: within a few seconds
    t0 = time.monotonic()
    r = client.chat.completions.create(model="clagent", messages=[{"role": "user", "content": "one word?"}],
                                       max_tokens=2)
    waited = time.monotonic() - t0
    assert r.choices[0].message.content is not None
    assert waited < alone + 5, (waited, alone)

    # each abandoned one logged once, as cancelled, far short of its long answer
    abandoned = [x for x in rows(daemon.home) if "zebra" in x["messages"]]
    assert len(abandoned) == 4, [x["messages"] for x in abandoned]
    assert all(x["finish_reason"] == "cancelled" for x in abandoned), [x["finish_reason"] for x in abandoned]
    assert all(x["completion_tokens"] < LONG / 2 for x in abandoned)
    assert sorted(x["kind"] for x in abandoned) == ["chat", "chat", "chat", "completion"]

    # the next consolidation consumes them (they are deleted at its commit) but learns nothing from them
    home = Home.open(daemon.home)
    try:
        interactions, memories = pending(home)
        ds = dataset.build(interactions, memories, home.settings.system_prompt)
    finally:
        home.close()
    assert {x["id"] for x in abandoned} <= set(ds.interaction_ids)
    assert not [e for e in ds.examples if "zebra" in json.dumps(e.messages)]
    assert ds.counts["skipped"] >= 4

    # /metrics: closed before any answer is 499, not 200; generations cancelled by kind
    assert metric(daemon, "clagent_http_requests_total", endpoint="/v1/chat/completions", status="499") == 3
    assert metric(daemon, "clagent_http_requests_total", endpoint="/v1/completions", status="499") == 1
    assert metric(daemon, "clagent_generations_total", kind="chat", finish_reason="cancelled") == 3
    assert metric(daemon, "clagent_generations_total", kind="completion", finish_reason="cancelled") == 1
    assert httpx.get(f"{daemon.url}/health").status_code == 200


def test_a_huge_prompt_holds_up_nobody(shared_daemon):
    d = shared_daemon
    client = d.openai()
    before = count(d.home)
    huge = "word " * 1_000_000  # 5 MB
    small = dict(model="clagent", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    client.chat.completions.create(**small)
    t0 = time.monotonic()
    client.chat.completions.create(**small)
    alone = time.monotonic() - t0

    refused = []

    def send_huge(path, body):
        r = httpx.post(f"{d.base_url}{path}", json=body, timeout=120)
        refused.append((r.status_code, r.json()["error"]))

    for path, body in [("/chat/completions", {"messages": [{"role": "user", "content": huge}]}),
                       ("/completions", {"prompt": huge}),
                       ("/completions", {"prompt": "word " * 20_000})]:  # fits the byte bound, tokenized
        big = threading.Thread(target=send_huge, args=(path, body))
        big.start()
        t0 = time.monotonic()
        client.chat.completions.create(**small)
        waited = time.monotonic() - t0
        big.join()
        assert waited < alone + 2, (path, waited, alone)
    assert [s for s, _ in refused] == [400, 400, 400]
    assert {e["code"] for _, e in refused} == {"context_length_exceeded"}
    assert count(d.home) == before + 5  # the small chats only


def test_the_log_says_the_context_in_force(shared_daemon):
    out = shared_daemon.output()
    assert out.count("context 2048 tokens") == 1, out
    assert "n_ctx" not in out and "n_ctx_train (0)" not in out


# -- bad input -------------------------------------------------------------------------------------------
BAD = [
    ("/completions", {"prompt": ""}, 400, "prompt"),
    ("/completions", {"prompt": "   "}, 400, "prompt"),
    ("/completions", {}, 400, "prompt"),
    ("/completions", {"prompt": []}, 400, "prompt"),
    ("/completions", {"prompt": ["text", 42]}, 400, "prompt"),
    ("/completions", {"prompt": ["text", [1, 2]]}, 400, "prompt"),
    ("/completions", {"prompt": [1, "two"]}, 400, "prompt"),
    ("/completions", {"prompt": {"text": "hi"}}, 400, "prompt"),
    ("/completions", {"prompt": [[1, 2], [3, 10**9]]}, 400, "prompt"),
    ("/completions", {"prompt": ["x"] * 33}, 400, "prompt"),
    ("/completions", {"prompt": "hi", "n": 2}, 400, "n"),
    ("/completions", {"prompt": "hi", "best_of": 3}, 400, "best_of"),
    ("/completions", {"prompt": "hi", "logprobs": 2}, 400, "logprobs"),
    ("/completions", {"prompt": "hi", "suffix": "def f():"}, 400, "suffix"),
    ("/completions", {"prompt": "hi", "echo": "yes"}, 400, "echo"),
    ("/completions", {"prompt": "hi", "max_tokens": 0}, 400, "max_tokens"),
    ("/completions", {"prompt": "hi", "temperature": 3}, 400, "temperature"),
    ("/completions", {"prompt": "hi", "model": "gpt-3.5-turbo-instruct"}, 404, "model"),
    ("/completions", {"prompt": "hi", "model": "all-MiniLM-L6-v2"}, 400, "model"),
    ("/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "logprobs": True}, 400, "logprobs"),
    ("/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 3}, 400, "top_logprobs"),
    ("/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "n": 2}, 400, "n"),
    ("/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "model": "clagent-v9"}, 404, "model"),
    ("/embeddings", {"input": ""}, 400, "input"),
    ("/embeddings", {"input": []}, 400, "input"),
    ("/embeddings", {"input": ["fine", ""]}, 400, "input"),
    ("/embeddings", {"input": ["fine", 3]}, 400, "input"),
    ("/embeddings", {}, 400, "input"),
    ("/embeddings", {"input": ["x"] * 10_000}, 400, "input"),
    ("/embeddings", {"input": "a" * 5_000_000}, 400, "input"),
    ("/embeddings", {"input": ["ab " * 1000] * 1700}, 400, "input"),  # 5 MB in many inputs
    ("/embeddings", {"input": [101, 2023, 102]}, 400, "input"),  # token ids (LangChain's default)
    ("/embeddings", {"input": [[101, 2023, 102]]}, 400, "input"),
    ("/embeddings", {"input": "hi", "encoding_format": "int8"}, 400, "encoding_format"),
    ("/embeddings", {"input": "hi", "dimensions": 1536}, 400, "dimensions"),
    ("/embeddings", {"input": "hi", "model": "text-embedding-ada-002"}, 404, "model"),
]


@pytest.mark.parametrize("path,body,status,param", BAD, ids=[f"{p}-{i}" for i, (p, *_r) in enumerate(BAD)])
def test_bad_input_gets_an_openai_error_and_nothing_is_logged(shared_daemon, path, body, status, param):
    d = shared_daemon
    before = count(d.home)
    r = httpx.post(f"{d.base_url}{path}", json=body, timeout=120)
    assert r.status_code == status, r.text[:500]
    err = r.json()["error"]
    assert err["message"] and err["type"] == "invalid_request_error" and err["param"] == param
    assert "Traceback" not in r.text and len(r.text) < 2000
    assert count(d.home) == before
    ok = httpx.post(f"{d.base_url}/completions", json={"prompt": "still there?", "max_tokens": 2}, timeout=60)
    assert ok.status_code == 200


def test_openai_client_errors_for_the_new_endpoints(shared_daemon):
    client = shared_daemon.openai()
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="clagent", prompt="a " * 3000)
    assert e.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="clagent", prompt="hi", n=2)
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="all-MiniLM-L6-v2", input=["x"] * 3000)
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="nope", prompt="hi")


def test_another_version_is_described_but_not_served_and_embeddings_without_memory(tiny_home, tiny_gguf_b):
    from clagent.config import Settings
    from clagent.home import Home

    home = Home.open(tiny_home)
    home.import_model(tiny_gguf_b, parent=1, verbose=False, serve=False)
    home.close()
    Settings(memory_enabled=False).write(tiny_home)
    d = start_daemon(tiny_home)
    try:
        client = d.openai()
        # with memory off the daemon still embeds (loading the model on first use)
        emb = client.embeddings.create(model="all-MiniLM-L6-v2", input=["one", "two"])
        assert len(emb.data) == 2 and len(emb.data[1].embedding) == 384
        v2 = client.models.retrieve("clagent-v2")
        assert v2.clagent_version == 2 and v2.clagent_served is False and v2.clagent_parent == 1
        assert "clagent-v2" not in [m.id for m in client.models.list().data]
        with pytest.raises(openai.NotFoundError) as e:
            client.completions.create(model="clagent-v2", prompt="hi", max_tokens=2)
        assert "clagent-v1 is the one served" in e.value.body["message"]
    finally:
        d.stop()
