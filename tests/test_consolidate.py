"""Consolidation on the tiny model: commit, data-free deletion, and consistency when killed at any
stage, with a lock against a second run and a gate that can say no."""

import json
import signal
import sqlite3
import subprocess

import numpy as np
import pytest

from clagent.config import Settings
from clagent.home import Home
from clagent.memory.manager import MemoryManager
from tests.conftest import clagent_cmd, run_cli

STAGES = ["replaying", "loading the float master", "training", "merging", "exporting", "quantizing",
          "gate:", "committing"]


def snapshot(path):
    con = sqlite3.connect(path / "clagent.db")
    try:
        return {
            "versions": [r[0] for r in con.execute("SELECT id FROM versions ORDER BY id")],
            "served": con.execute("SELECT value FROM state WHERE key = 'served_version'").fetchone()[0],
            "interactions": sorted(r[0] for r in con.execute("SELECT id FROM interactions")),
            "absorbed": con.execute("SELECT COUNT(*) FROM memories WHERE consolidated_version IS NOT NULL").fetchone()[0],
            "memories": con.execute("SELECT COUNT(*) FROM memories").fetchone()[0],
            "folders": sorted(p.name for p in (path / "models").iterdir()),
        }
    finally:
        con.close()


def test_consolidation_commits_and_forgets_raw_history(taught_home):
    before = snapshot(taught_home)
    p = run_cli("consolidate", "--home", str(taught_home), "--json", timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout)
    assert out["status"] == "committed" and (out["version"], out["parent"]) == (2, 1)
    after = snapshot(taught_home)
    assert after["versions"] == [1, 2] and after["served"] == "2" and after["folders"] == ["v1", "v2"]
    assert after["interactions"] == [] and before["interactions"] == ["chatcmpl-0", "chatcmpl-1", "chatcmpl-2"]
    assert after["absorbed"] == 2 and after["memories"] == 2  # superseded Rex is gone with the raw data
    info = out["info"]
    assert info["data"]["memories"] == 2 and info["data"]["corrections"] == 1 and info["data"]["interaction_examples"] == 2
    assert info["train"]["steps"] == 3 and len(info["train"]["losses"]) == 3 and info["train"]["device"] == "cpu"
    assert info["merge"]["method"] == "recall" and info["gate"]["passed"]
    models = json.loads(run_cli("models", "--home", str(taught_home), "--json").stdout)
    assert models[1]["parent"] == 1 and models[1]["method"] == "consolidation" and models[1]["served"]
    # the next run has nothing new to learn
    p = run_cli("consolidate", "--home", str(taught_home))
    assert p.returncode == 0 and "nothing to consolidate" in p.stdout


@pytest.mark.parametrize("stage", STAGES)
def test_killed_at_any_stage_leaves_home_consistent(taught_home, stage):
    before = snapshot(taught_home)
    proc = subprocess.Popen(clagent_cmd("consolidate", "--home", str(taught_home)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("consolidate: ") and stage in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)[-2000:]
    after = snapshot(taught_home)
    after_folders = [f for f in after["folders"] if not f.startswith(".staging")]
    if after["versions"] == [1]:  # exactly as before (a staging folder may be left for the next run)
        assert {**after, "folders": after_folders} == before
    else:  # exactly as after: only possible once the commit has begun
        assert stage == "committing"
        assert after["versions"] == [1, 2] and after["served"] == "2" and after["interactions"] == []
    p = run_cli("consolidate", "--home", str(taught_home), "--json", timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    final = snapshot(taught_home)
    assert final["served"] == final["versions"][-1].__str__() and final["interactions"] == []
    assert not any(f.startswith(".staging") for f in final["folders"])


def test_a_second_consolidation_is_refused_while_one_runs(taught_home):
    proc = subprocess.Popen(clagent_cmd("consolidate", "--home", str(taught_home)), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            if "training" in line:
                break
        p = run_cli("consolidate", "--home", str(taught_home))
        assert p.returncode == 1 and "already running" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    finally:
        proc.kill()
        proc.wait()


def test_failed_gate_keeps_the_old_version_and_says_why(taught_home):
    Settings(gate_min_acquisition=1.0, gate_max_drift=1e9, consolidate_max_steps=2, consolidate_epochs=0,
             consolidate_batch_size=2).write(taught_home)
    before = snapshot(taught_home)
    p = run_cli("consolidate", "--home", str(taught_home), timeout=600)
    assert p.returncode == 2 and "failed its checks, v1 keeps serving: acquisition" in p.stdout
    after = snapshot(taught_home)
    assert {**after, "folders": [f for f in after["folders"] if not f.startswith(".")]} == before
    con = sqlite3.connect(taught_home / "clagent.db")
    kind, detail = con.execute("SELECT kind, detail FROM events ORDER BY id DESC LIMIT 1").fetchone()
    con.close()
    assert kind == "gate_failed" and "acquisition" in json.loads(detail)["reasons"][0]


def test_nothing_to_consolidate(tiny_home):
    before = snapshot(tiny_home)
    p = run_cli("consolidate", "--home", str(tiny_home))
    assert p.returncode == 0 and "nothing to consolidate" in p.stdout and snapshot(tiny_home) == before


def test_dry_run_changes_nothing(taught_home):
    before = snapshot(taught_home)
    p = run_cli("consolidate", "--home", str(taught_home), "--dry-run")
    assert p.returncode == 0 and "would train on" in p.stdout and snapshot(taught_home) == before


def test_corrupt_master_and_bad_method(taught_home):
    p = run_cli("consolidate", "--home", str(taught_home), "--method", "magic")
    assert p.returncode == 1 and "unknown merge method 'magic'" in p.stderr
    before = snapshot(taught_home)
    settings = Settings.load(taught_home)
    Settings(**{**settings.to_dict(), "lora_targets": "attention, qkv_proj"}).write(taught_home)  # Phi-3's, not llama's
    p = run_cli("consolidate", "--home", str(taught_home))
    assert p.returncode == 1 and "Traceback" not in p.stderr and "replaying" not in p.stderr + p.stdout
    assert "setting 'lora_targets': unknown LoRA target 'qkv_proj' for llama models" in p.stderr
    assert snapshot(taught_home) == before
    settings.write(taught_home)
    master = taught_home / "models" / "v1" / "master.f16.gguf"
    master.write_bytes(master.read_bytes()[:50_000])
    before = snapshot(taught_home)
    p = run_cli("consolidate", "--home", str(taught_home))
    errors = [line for line in p.stderr.splitlines() if line.startswith("clagent: error:")]
    assert p.returncode == 1 and len(errors) == 1 and "not a valid GGUF" in errors[0] and "Traceback" not in p.stderr
    assert snapshot(taught_home) == before


def test_consolidation_through_the_daemon_hot_swaps(taught_home):
    import time

    import httpx

    from tests.conftest import start_daemon

    daemon = start_daemon(taught_home)
    try:
        r = httpx.post(f"{daemon.url}/v1/clagent/consolidate", json={"max_steps": 2}, timeout=30)
        assert r.status_code == 202 and r.json()["started"], r.text
        again = httpx.post(f"{daemon.url}/v1/clagent/consolidate", timeout=30)
        assert again.status_code == 409 and "already running" in again.json()["error"]["message"]
        # chat keeps being served while it trains
        ok = httpx.post(f"{daemon.base_url}/chat/completions", timeout=120,
                        json={"messages": [{"role": "user", "content": "still there?"}], "max_tokens": 2})
        assert ok.status_code == 200
        for _ in range(600):
            if httpx.get(f"{daemon.url}/health").json()["version"] == 2:
                break
            time.sleep(0.5)
        assert httpx.get(f"{daemon.url}/health").json()["version"] == 2, open(r.json()["log"]).read()[-2000:]
        st = httpx.get(f"{daemon.url}/v1/clagent/status").json()["consolidation"]
        assert st["last"]["outcome"] == "committed" and st["last"]["version"] == 2
        assert st["last"]["train"]["steps"] == 2
        bad = httpx.post(f"{daemon.url}/v1/clagent/consolidate", json={"max_steps": "many"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "max_steps"
        text = run_cli("status", "--home", str(taught_home)).stdout
        assert "v2 committed" in text and "merge recall" in text
    finally:
        daemon.stop()


def test_unwritable_models_folder_is_a_clear_error(taught_home):
    import os

    before = snapshot(taught_home)
    models = taught_home / "models"
    # a file where the staging folder's parent must be: mkdir fails like a full or read-only disk
    os.rename(models, taught_home / "models.real")
    models.write_text("not a folder")
    try:
        p = run_cli("consolidate", "--home", str(taught_home), timeout=600)
        assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
        assert "clagent: error:" in p.stderr
    finally:
        models.unlink()
        os.rename(taught_home / "models.real", models)
    assert snapshot(taught_home) == before


def test_recall_merge_in_the_pipeline_stores_per_layer_weights(taught_home):
    p = run_cli("consolidate", "--home", str(taught_home), "--method", "recall", "--json", timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    merge = json.loads(p.stdout)["info"]["merge"]
    assert merge["method"] == "recall" and merge["temperature"] == Settings().recall_temperature == 0.25
    tuned, base = np.array(merge["weights"]["tuned"]), np.array(merge["weights"]["base"])
    assert tuned.shape == (3,) and np.allclose(tuned + base, 1.0, atol=1e-3)  # 2 blocks + embeddings
    assert tuned[0] == pytest.approx(0.5, abs=1e-3) and np.all(tuned >= 0.5 - 1e-3)
    shown = run_cli("models", "--home", str(taught_home), "--show", "2")
    assert shown.returncode == 0 and "recall" in shown.stdout and "layer" in shown.stdout
    missing = run_cli("models", "--home", str(taught_home), "--show", "9")
    assert missing.returncode == 1 and "unknown version 9" in missing.stderr


def test_recall_merges_earlier_versions_as_extra_experts(taught_home, embedder):
    Settings(gate_min_acquisition=0.0, gate_max_drift=1e9, consolidate_max_steps=2, consolidate_epochs=0,
             consolidate_batch_size=2, merge_method="recall", recall_extra_versions=2).write(taught_home)
    first = run_cli("consolidate", "--home", str(taught_home), "--json", timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert set(json.loads(first.stdout)["info"]["merge"]["weights"]) == {"base", "tuned"}  # v1 has no ancestor
    home = Home.open(taught_home)
    mm = MemoryManager(home.db, home.settings, embedder)
    mm.load()
    mm.add("My cat is called Tom")
    home.close()
    second = run_cli("consolidate", "--home", str(taught_home), "--json", timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    merge = json.loads(second.stdout)["info"]["merge"]
    assert set(merge["weights"]) == {"base", "tuned", "v1"}  # v2 is the base now, v1 an extra expert
    total = sum(np.array(w) for w in merge["weights"].values())
    assert np.allclose(total, 1.0, atol=1e-3)
    assert all(np.all(np.array(merge["weights"]["tuned"]) >= np.array(merge["weights"][n]) - 1e-6)
               for n in ("base", "v1"))  # the new model is closest to itself


def test_verification_rehearsal_and_drift_from_the_base_across_two_runs(taught_home, embedder):
    first = run_cli("consolidate", "--home", str(taught_home), "--json", timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    info = json.loads(first.stdout)["info"]
    gate = info["gate"]
    assert gate["verified"] == 2 and gate["base_drift"] == gate["drift"] and gate["retention"] is None
    assert info["rehearsal"]["candidates"] == 0 and info["data"]["notes_examples"] >= 4
    assert (taught_home / "references" / "drift-v1.npz").is_file()
    con = sqlite3.connect(taught_home / "clagent.db")
    checks = con.execute("SELECT version, memory_id, ok FROM memory_checks").fetchall()
    con.close()
    assert len(checks) == 2 and {c[0] for c in checks} == {2}

    home = Home.open(taught_home)
    mm = MemoryManager(home.db, home.settings, embedder)
    mm.load()
    mm.add("My cat is called Tom")
    home.close()
    # Pretend v2's weights held both earlier memories: v3 must keep them (it will not, on random
    # weights), so a retention floor of 1.0 fails the gate, with the reason in the history.
    con = sqlite3.connect(taught_home / "clagent.db")
    con.execute("UPDATE memory_checks SET ok = 1")
    con.commit()
    con.close()
    Settings(gate_min_acquisition=0.0, gate_max_drift=1e9, gate_min_retention=1.0, consolidate_max_steps=2,
             consolidate_epochs=0, consolidate_batch_size=2).write(taught_home)
    before = snapshot(taught_home)
    failed = run_cli("consolidate", "--home", str(taught_home), timeout=600)
    assert failed.returncode == 2 and "retention 0.00 of 2 earlier memories is below 1.00" in failed.stdout, \
        failed.stdout[-3000:]
    after = snapshot(taught_home)
    assert {**after, "folders": [f for f in after["folders"] if not f.startswith(".")]} == before
    hist = run_cli("history", "--home", str(taught_home)).stdout
    assert "retention" in " ".join(hist.split())

    # Room to rehearse one earlier memory only: the other is left out, and the run says so.
    Settings(gate_min_acquisition=0.0, gate_max_drift=1e9, gate_max_base_drift=1e9, consolidate_max_steps=2,
             consolidate_epochs=0, consolidate_batch_size=2, rehearse_max_memories=1,
             gate_min_retention=0.0).write(taught_home)
    second = run_cli("consolidate", "--home", str(taught_home), "--json", timeout=600)
    assert second.returncode == 0 and json.loads(second.stdout)["status"] == "committed", second.stderr[-2000:]
    assert "left out this run" in second.stderr
    info = json.loads(second.stdout)["info"]
    reh, gate = info["rehearsal"], info["gate"]
    assert reh["candidates"] == 2 and reh["rehearsed"] == 1 and reh["left_out"] == 1 and reh["why_left_out"]
    assert reh["probed"] == 0  # v2's own verification said what it held: no probing needed
    assert info["data"]["rehearsed"] == 1 and info["data"]["memories"] == 1
    assert gate["verified"] == 3 and gate["retention_of"] == 2 and gate["base_drift"] is not None
    assert gate["base_drift"] != gate["drift"]  # v3 from v1 is not v3 from v2
    st = json.loads(run_cli("status", "--home", str(taught_home), "--json").stdout)["weights"]
    assert st["version"] == 3 and st["memories"] == 3 and st["verified"] == 3, st
    assert st["held"] + st["notes_only"] == 3 and st["base_drift"] == gate["base_drift"]
    text = " ".join(run_cli("status", "--home", str(taught_home)).stdout.split())
    assert f"v3 holds {st['held']} of 3 memories (verified 3)" in text and "rehearsed 1 of 2 earlier" in text
    shown = " ".join(run_cli("models", "--home", str(taught_home), "--show", "3").stdout.split())
    assert "verified: the weights answered" in shown and "rehearsal: 1 of 2 earlier memories" in shown


def test_thousands_of_memories_are_learned_over_several_runs(taught_home, embedder):
    """2,000 memories (one of them very long): the run learns the oldest that fit its steps and says
    how many wait for the next run (they stay in the store, and in the notes); the history says so."""
    from clagent.memory import store

    home = Home.open(taught_home)
    texts = [f"The user's locker number {i} is {1000 + i}." for i in range(2000)]
    texts[7] = "The user's garden shed is painted " + "very " * 3000 + "green."
    vectors = embedder.encode([t[:300] for t in texts])
    for t, v in zip(texts, vectors):
        store.insert(home.db, text=t, index_text=t, kind="fact", key=None, source="api", embedding=v)
    home.close()
    Settings(gate_min_acquisition=0.0, gate_max_drift=1e9, consolidate_max_steps=40,
             consolidate_batch_size=2).write(taught_home)
    p = run_cli("consolidate", "--home", str(taught_home), "--json", timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout)
    assert out["status"] == "committed", out["message"]
    info = out["info"]
    waiting = info["left_out"]["memories"]
    assert waiting > 1900 and "wait for the next" in p.stderr
    learned = info["data"]["memories"]
    assert learned + waiting == 2002  # the taught home's two, and the 2,000
    con = sqlite3.connect(taught_home / "clagent.db")
    absorbed = con.execute("SELECT COUNT(*) FROM memories WHERE consolidated_version = 2").fetchone()[0]
    still = con.execute("SELECT COUNT(*) FROM memories WHERE consolidated_version IS NULL AND status = 'active'"
                        ).fetchone()[0]
    con.close()
    assert absorbed == learned and still == waiting  # nothing lost: the rest waits, active
    hist = " ".join(run_cli("history", "--home", str(taught_home)).stdout.split())
    assert f"{waiting} new memories left for the next run" in hist
    # the next run takes the next ones
    p = run_cli("consolidate", "--home", str(taught_home), "--json", timeout=900)
    assert p.returncode == 0 and json.loads(p.stdout)["info"]["left_out"]["memories"] < waiting, p.stderr[-2000:]


def test_failed_gate_in_json_mode_exits_non_zero(taught_home):
    Settings(gate_min_acquisition=1.0, gate_max_drift=1e9, consolidate_max_steps=2, consolidate_epochs=0,
             consolidate_batch_size=2).write(taught_home)
    p = run_cli("consolidate", "--home", str(taught_home), "--json", timeout=600)
    assert p.returncode == 2, p.stderr[-2000:]
    out = json.loads(p.stdout)
    assert out["status"] == "gate_failed" and out["version"] is None and "acquisition" in out["message"]


def test_a_run_cut_by_its_time_budget_says_so(taught_home):
    Settings(gate_min_acquisition=0.0, gate_max_drift=1e9, consolidate_max_steps=100_000, consolidate_epochs=0,
             consolidate_batch_size=2, consolidate_max_seconds=1).write(taught_home)
    p = run_cli("consolidate", "--home", str(taught_home), timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "training stopped at" in p.stderr and "time budget" in p.stderr
    hist = " ".join(run_cli("history", "--home", str(taught_home)).stdout.split())
    assert "training cut by its time budget at" in hist and "/100000 steps" in hist
    shown = " ".join(run_cli("models", "--home", str(taught_home), "--show", "2").stdout.split())
    assert "cut: training stopped at" in shown
