"""Operating the daemon: rollback (through the API while requests are in flight, and without a
daemon), the retention policy, history, a status readable on 80 columns, Prometheus metrics, the
systemd unit and a clean stop on SIGTERM."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from clagent.cli.service import systemd_running
from clagent.home import Home
from tests.conftest import run_cli, start_daemon

ASK = {"model": "clagent", "temperature": 0, "max_tokens": 12, "memory": False,
       "messages": [{"role": "user", "content": "Tell me about my dog."}]}


def served(home_path) -> int:
    con = sqlite3.connect(home_path / "clagent.db")
    try:
        return int(con.execute("SELECT value FROM state WHERE key = 'served_version'").fetchone()[0])
    finally:
        con.close()


def answer(url: str) -> tuple[str, str]:
    r = httpx.post(f"{url}/v1/chat/completions", json=ASK, timeout=120)
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["message"]["content"], f"clagent-v{r.json()['clagent_version']}"


def test_rollback_through_the_api_while_requests_are_in_flight(taught_home):
    daemon = start_daemon(taught_home)
    try:
        v1_answer = answer(daemon.url)
        assert v1_answer[1] == "clagent-v1"
        r = httpx.post(f"{daemon.url}/v1/clagent/consolidate", json={"max_steps": 3}, timeout=30)
        assert r.status_code == 202
        for _ in range(600):
            if httpx.get(f"{daemon.url}/health").json()["version"] == 2:
                break
            time.sleep(0.5)
        v2_answer = answer(daemon.url)
        assert v2_answer[1] == "clagent-v2", open(r.json()["log"]).read()[-2000:]

        results, errors = [], []

        def chat(i):
            try:
                body = {**ASK, "max_tokens": 24, "stream": i % 2 == 0}
                with httpx.stream("POST", f"{daemon.url}/v1/chat/completions", json=body, timeout=120) as resp:
                    text = resp.read().decode()
                results.append((resp.status_code, text))
            except Exception as e:  # noqa: BLE001 - reported by the assertion below
                errors.append(repr(e))

        threads = [threading.Thread(target=chat, args=(i,)) for i in range(8)]
        for t in threads[:4]:
            t.start()
        rb = httpx.post(f"{daemon.url}/v1/clagent/rollback", json={"reason": "answers got worse"}, timeout=120)
        for t in threads[4:]:
            t.start()
        for t in threads:
            t.join(120)
        assert rb.status_code == 200, rb.text
        assert rb.json() == {**rb.json(), "from": 2, "to": 1, "served_version": 1}
        assert rb.json()["memories_pending_again"] == 2  # Biscuit and Lisbon, absorbed by v2 only
        assert not errors and len(results) == 8 and all(code == 200 for code, _ in results), (errors, results)
        assert all("[DONE]" in text or '"chat.completion"' in text for _, text in results)

        # the served model is v1 again: same answer as before the consolidation, byte for byte
        assert answer(daemon.url) == v1_answer
        assert httpx.get(f"{daemon.url}/v1/models").json()["data"][0]["clagent_version"] == 1
        assert served(taught_home) == 1

        # bad rollbacks: clear errors, nothing changes
        for body, status, says in [({"version": 99}, 404, "no version 99"), ({"version": 1}, 409, "already served"),
                                   ({}, 409, "base version"), ({"version": "two"}, 400, "version number")]:
            bad = httpx.post(f"{daemon.url}/v1/clagent/rollback", json=body, timeout=30)
            assert bad.status_code == status and says in bad.json()["error"]["message"], (body, bad.text)
        cli = run_cli("rollback", "99", "--home", str(taught_home))
        assert cli.returncode == 1 and cli.stderr.count("\n") == 1 and "no version 99" in cli.stderr
        assert served(taught_home) == 1 and httpx.get(f"{daemon.url}/health").json()["version"] == 1

        # the rolled-back version stays inspectable
        shown = run_cli("models", "--home", str(taught_home), "--show", "2")
        assert shown.returncode == 0 and "v2" in shown.stdout and "training:" in shown.stdout

        # the next consolidation builds on the version now served, and relearns the released memories
        dry = json.loads(run_cli("consolidate", "--home", str(taught_home), "--dry-run", "--json").stdout)
        assert dry["parent"] == 1 and dry["info"]["data"]["memories"] == 2
        r = httpx.post(f"{daemon.url}/v1/clagent/consolidate", json={"max_steps": 2}, timeout=30)
        for _ in range(600):
            if httpx.get(f"{daemon.url}/health").json()["version"] == 3:
                break
            time.sleep(0.5)
        assert httpx.get(f"{daemon.url}/health").json()["version"] == 3, open(r.json()["log"]).read()[-2000:]
        v3 = json.loads(run_cli("models", "--home", str(taught_home), "--show", "3", "--json").stdout)
        assert v3["parent"] == 1 and v3["lineage"] == [3, 1]

        st = json.loads(run_cli("status", "--home", str(taught_home), "--json").stdout)
        assert st["rollbacks"]["count"] == 1 and st["rollbacks"]["last"]["reason"] == "answers got worse"
        hist = run_cli("history", "--home", str(taught_home))
        flat = " ".join(hist.stdout.split())  # entries wrap at 80 columns
        assert hist.returncode == 0 and "v3 committed from v1" in hist.stdout.splitlines()[0]
        assert all(len(line) <= 80 for line in hist.stdout.splitlines())
        assert flat.index("v3 committed from v1") < flat.index("rolled back from v2 to v1: answers got worse") \
            < flat.index("v2 committed from v1")
    finally:
        daemon.stop()


def test_rollback_without_a_daemon_and_the_retention_policy(taught_home, tiny_gguf):
    out = run_cli("consolidate", "--home", str(taught_home), "--max-steps", "2", "--method", "recall", timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    home = Home.open(taught_home)
    home.import_model(tiny_gguf, parent=2, verbose=False)  # v3, served
    home.close()
    assert served(taught_home) == 3

    text = run_cli("status", "--home", str(taught_home)).stdout
    assert all(len(line) <= 80 for line in text.splitlines()), text
    for needed in ("daemon     down", "served     v3", "lineage v3 <- v2 <- v1 (base)", "schedule   \"0 3 * * *\"",
                   "v2 committed from v1", "merge recall: new model's weight per layer", "disk       models"):
        assert needed in text, (needed, text)

    dry = run_cli("models", "prune", "--keep", "1", "--dry-run", "--home", str(taught_home))
    assert dry.returncode == 0 and "would delete the files of v1, v2" in dry.stdout
    assert sorted(p.name for p in (taught_home / "models").iterdir()) == ["v1", "v2", "v3"]

    rb = run_cli("rollback", "--home", str(taught_home), "--json")
    assert rb.returncode == 0, rb.stderr
    assert json.loads(rb.stdout) == {**json.loads(rb.stdout), "from": 3, "to": 2}
    assert served(taught_home) == 2

    pruned = run_cli("models", "prune", "--keep", "1", "--home", str(taught_home))
    assert pruned.returncode == 0 and "deleted the files of v1" in pruned.stdout  # v3 newest, v2 served
    assert sorted(p.name for p in (taught_home / "models").iterdir()) == ["v2", "v3"]
    listing = run_cli("models", "--home", str(taught_home)).stdout
    assert "pruned" in listing.splitlines()[1] and "* v2" in listing
    bad = run_cli("rollback", "1", "--home", str(taught_home))
    assert bad.returncode == 1 and "pruned" in bad.stderr and bad.stderr.count("\n") == 1
    assert served(taught_home) == 2
    again = run_cli("models", "prune", "--keep", "1", "--home", str(taught_home))
    assert "nothing to prune" in again.stdout
    assert run_cli("models", "prune", "--keep", "0", "--home", str(taught_home)).returncode == 1
    hist = run_cli("history", "--home", str(taught_home), "--json")
    kinds = [e["kind"] for e in json.loads(hist.stdout)]
    assert kinds[:2] == ["pruned", "rollback"] and "consolidation" in kinds


def test_metrics_in_the_prometheus_format(daemon):
    client = daemon.openai()
    client.chat.completions.create(model="clagent", messages=[{"role": "user", "content": "hi"}], max_tokens=5)
    list(client.chat.completions.create(model="clagent", messages=[{"role": "user", "content": "hi"}],
                                        max_tokens=5, stream=True))
    httpx.post(f"{daemon.base_url}/chat/completions", content=b"{broken", headers={"content-type": "application/json"})
    httpx.post(f"{daemon.base_url}/chat/completions", json={"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]})
    httpx.post(f"{daemon.url}/v1/clagent/memories", json={"text": "My cat is called Tom"})
    r = httpx.get(f"{daemon.url}/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value

    def value(name, **labels):
        return samples.get((name, tuple(sorted(labels.items()))), 0)

    chat = "/v1/chat/completions"
    assert value("clagent_http_requests_total", endpoint=chat, method="POST", status="200") == 2
    assert value("clagent_http_requests_total", endpoint=chat, method="POST", status="400") == 1
    assert value("clagent_http_errors_total", endpoint=chat, status="404") == 1
    assert value("clagent_http_request_duration_seconds_count", endpoint=chat) == 4
    assert value("clagent_completion_tokens_total") >= 2 and value("clagent_prompt_tokens_total") > 0
    assert value("clagent_time_to_first_token_seconds_count") == 2
    assert value("clagent_generation_tokens_per_second_count") >= 1
    assert value("clagent_served_version") == 1
    assert value("clagent_memories", kind="fact", status="active") == 1
    assert value("clagent_interactions_waiting") == 2
    assert value("clagent_consolidations_total", outcome="committed") == 0
    assert value("clagent_rollbacks_total") == 0
    assert "clagent_consolidation_duration_seconds_count" in r.text


def test_the_systemd_unit(tmp_path):
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"))
    home = tmp_path / "my home"
    p = subprocess.run([*_cmd("service", "install", "--print", "--home", str(home))], capture_output=True,
                       text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    header, unit = p.stdout.split("\n", 1)
    assert header == f"# {tmp_path / 'config' / 'systemd' / 'user' / 'clagent.service'}"
    import sys

    assert f'ExecStart={sys.executable} -m clagent serve --home "{home}"' in unit
    for line in ("Restart=on-failure", "NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectSystem=strict",
                 f'ReadWritePaths="{home}"', "KillSignal=SIGTERM", "WantedBy=default.target"):
        assert line in unit.splitlines(), line
    assert "@PYTHON@" not in unit and "@HOME_DIR@" not in unit
    if shutil.which("systemd-analyze"):  # .ci/run installs it from Debian's packages
        f = tmp_path / "clagent.service"
        f.write_text(unit)
        v = subprocess.run(["systemd-analyze", "verify", str(f)], capture_output=True, text=True, timeout=60)
        assert v.returncode == 0 and "clagent.service" not in v.stderr, v.stderr
    else:
        pytest.fail("systemd-analyze is not installed (apt-get install systemd); the unit cannot be verified")


def test_service_install_without_systemd_is_a_clear_error(tmp_path):
    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "config"))
    home = tmp_path / "home"
    unit = tmp_path / "config" / "systemd" / "user" / "clagent.service"
    p = subprocess.run(_cmd("service", "install", "--home", str(home), "--no-start"), capture_output=True,
                       text=True, env=env, timeout=120)
    if systemd_running():
        assert p.returncode == 0 and unit.exists(), p.stderr
        u = subprocess.run(_cmd("service", "uninstall"), capture_output=True, text=True, env=env, timeout=120)
        assert u.returncode == 0 and not unit.exists()
        return
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "systemd is not running" in p.stderr
    assert not unit.exists() and not (tmp_path / "config").exists()
    s = subprocess.run(_cmd("service", "status"), capture_output=True, text=True, env=env, timeout=60)
    assert s.returncode == 0 and "not installed" in s.stdout and "systemd:   not running" in s.stdout
    u = subprocess.run(_cmd("service", "uninstall"), capture_output=True, text=True, env=env, timeout=60)
    assert u.returncode == 1 and "not installed" in u.stderr


def _cmd(*args):
    from tests.conftest import clagent_cmd

    return clagent_cmd(*args)


def test_sigterm_lets_a_request_in_flight_finish(tiny_home):
    daemon = start_daemon(tiny_home)
    body = {"model": "clagent", "messages": [{"role": "user", "content": "count"}], "max_tokens": 150,
            "temperature": 1.0, "stream": True}
    chunks_after = 0
    done = False
    try:
        with httpx.stream("POST", f"{daemon.base_url}/chat/completions", json=body, timeout=120) as r:
            lines = r.iter_lines()
            for line in lines:
                if line.startswith("data: {"):
                    break
            daemon.proc.send_signal(signal.SIGTERM)
            for line in lines:
                if line == "data: [DONE]":
                    done = True
                elif line.startswith("data: {"):
                    chunks_after += 1
        assert done and chunks_after > 0  # it kept streaming after SIGTERM, to the end
        assert daemon.proc.wait(60) == 0
    finally:
        daemon.stop()
    assert not (tiny_home / "daemon.json").exists()
    assert "clagent: stopped" in daemon.output()
    con = sqlite3.connect(tiny_home / "clagent.db")
    assert con.execute("SELECT COUNT(*) FROM interactions").fetchone()[0] == 1  # and it was logged
    con.close()
