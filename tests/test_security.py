"""No web page can drive the daemon, and what is forgotten is gone from the disk.

The daemon is driven over real HTTP on loopback, the attacks as a browser (or curl playing one)
would send them; the home is compared before and after. One daemon serves all the attack cases."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import httpx
import openai
import pytest

from clagent.config import Settings
from tests.conftest import Daemon, clagent_cmd, copy_home, run_cli, start_daemon

EVIL = "http://evil.example"


def db_dump(home: Path) -> list[str]:
    """Everything the database holds (read-only; the daemon may be running)."""
    con = sqlite3.connect(f"file:{home / 'clagent.db'}?mode=ro", uri=True)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def home_state(home: Path) -> dict:
    return {"db": db_dump(home),
            "files": sorted(str(p.relative_to(home)) for p in home.rglob("*")
                            if not p.name.startswith("clagent.db"))}


def hits(home: Path, needles: list[str], skip_weights: bool = False) -> dict[str, list[str]]:
    """Which files of the home contain any of ``needles`` (as bytes, any case)."""
    found = {}
    wanted = [n.encode() for n in needles] + [n.lower().encode() for n in needles]
    for p in sorted(home.rglob("*")):
        if not p.is_file() or (skip_weights and p.suffix == ".gguf"):
            continue
        data = p.read_bytes()
        low = data.lower()
        names = [n.decode() for n in wanted if n in data or n.lower() in low]
        if names:
            found[str(p.relative_to(home))] = sorted(set(names))
    return found


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- the attacks -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def guarded(tmp_path_factory, _tiny_home_template):
    """A daemon without an API key holding one memory and one logged interaction."""
    d = start_daemon(copy_home(_tiny_home_template, tmp_path_factory.mktemp("guarded")))
    r = httpx.post(f"{d.url}/v1/clagent/memories", json={"text": "My cat is called Tom"}, timeout=60)
    assert r.status_code == 201, r.text
    chat = d.openai().chat.completions.create(model="clagent", messages=[{"role": "user", "content": "hi"}],
                                              max_tokens=3)
    d.memory_id, d.interaction_id = r.json()["memory"]["id"], chat.id
    yield d
    d.stop()


def writing_endpoints(d) -> list[tuple[str, str, dict]]:
    return [
        ("POST", "/v1/clagent/memories", {"text": "My password is hunter2"}),
        ("POST", "/v1/clagent/memories/forget", {"match": "Tom"}),
        ("DELETE", f"/v1/clagent/memories/{d.memory_id}", {}),
        ("POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "My dog is called Evil"}]}),
        ("POST", "/v1/clagent/feedback", {"interaction_id": d.interaction_id, "rating": "down", "correction": "x"}),
        ("POST", "/v1/clagent/rollback", {"version": 1}),
        ("POST", "/v1/clagent/consolidate", {"max_steps": 1}),
        ("PUT", "/v1/clagent/schedule", {"cron": "* * * * *"}),
        ("POST", "/v1/clagent/schedule", {"enabled": False}),
        ("POST", "/v1/clagent/swap", {"version": 1}),
        ("POST", "/v1/clagent/prune", {"keep": 1}),
        ("POST", "/v1/clagent/interactions/delete", {"all": True}),
        ("DELETE", f"/v1/clagent/interactions/{d.interaction_id}", {}),
    ]


def test_cross_site_requests_are_refused_and_change_nothing(guarded):
    d = guarded
    before = home_state(d.home)
    refused = []
    with httpx.Client(base_url=d.url, timeout=30) as http:
        for method, path, body in writing_endpoints(d):
            text = json.dumps(body)
            form = "&".join(f"{k}={v}" for k, v in body.items() if isinstance(v, (str, int))) or "confirm=1"
            attempts = [
                # what a page's fetch(..., {mode: "no-cors"}) or <form> sends: no preflight
                ({"Origin": EVIL, "Content-Type": "text/plain;charset=UTF-8"}, text, 403),
                ({"Origin": EVIL, "Content-Type": "application/x-www-form-urlencoded"}, form, 403),
                ({"Origin": EVIL, "Content-Type": "multipart/form-data; boundary=x"}, "--x--", 403),
                ({"Origin": "null", "Content-Type": "text/plain"}, text, 403),  # sandboxed page, file://
                # the same bodies from anything without an Origin (JSON only)
                ({"Content-Type": "text/plain"}, text, 415),
                ({"Content-Type": "application/x-www-form-urlencoded"}, form, 415),
                ({}, text, 415),
                # a DNS-rebinding page: its own name in Host, and its origin
                ({"Host": "evil.example", "Content-Type": "application/json"}, text, 403),
                ({"Host": f"evil.example:{d.url.rsplit(':', 1)[1]}", "Origin": f"{EVIL}:{d.url.rsplit(':', 1)[1]}",
                  "Content-Type": "text/plain"}, text, 403),
                # a page's JSON request from a foreign origin (would need a preflight: refused too)
                ({"Origin": EVIL, "Content-Type": "application/json"}, text, 403),
            ]
            for headers, content, status in attempts:
                r = http.request(method, path, headers=headers, content=content)
                if r.status_code != status or "access-control-allow-origin" in r.headers:
                    refused.append((method, path, headers, r.status_code, r.text[:200]))
                else:
                    err = r.json()["error"]
                    assert err["message"] and err["type"] and err["code"], r.text
    assert not refused, refused
    assert home_state(d.home) == before  # nothing learned, forgotten, trained, rescheduled or swapped


def test_foreign_host_origin_and_preflight_on_reads(guarded):
    d = guarded
    port = d.url.rsplit(":", 1)[1]
    with httpx.Client(base_url=d.url, timeout=30) as http:
        for path in ("/v1/clagent/memories", "/v1/clagent/interactions", "/v1/clagent/status", "/metrics",
                     "/v1/models", "/health"):
            for headers in ({"Host": "evil.example"}, {"Host": f"evil.example:{port}"},
                            {"Host": f"127.0.0.1.nip.io:{port}"}, {"Host": "localhost:1"},
                            {"Origin": EVIL}, {"Origin": f"http://localhost:{int(port) + 1}"},
                            {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}):
                r = http.get(path, headers=headers)
                assert r.status_code == 403, (path, headers, r.status_code)
                assert "Tom" not in r.text and "access-control-allow-origin" not in r.headers
        # the preflight a page's JSON POST needs: no CORS headers, so the browser never sends it
        r = http.options("/v1/clagent/memories", headers={
            "Origin": EVIL, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
        assert r.status_code == 403 and not any(k.startswith("access-control-") for k in r.headers)
        # malformed Host and Origin: a clear 400; a huge header: a clear 4xx; the daemon lives on
        for headers in ({"Host": "a b"}, {"Host": "[::1"}, {"Host": "x:99999"}, {"Origin": "not a url"},
                        {"Origin": "http://x/path"}):
            r = http.get("/v1/models", headers=headers)
            assert r.status_code == 400, (headers, r.status_code, r.text)
        r = http.get("/v1/models", headers={"X-Big": "a" * 10_000})
        assert r.status_code == 431 and "too large" in r.json()["error"]["message"]
    r = httpx.get(f"{d.url}/v1/models", headers={"X-Huge": "a" * 200_000}, timeout=30)
    assert r.status_code == 431 and "too large" in r.json()["error"]["message"]
    try:  # beyond what the server reads at all: refused (possibly by closing the connection)
        assert httpx.get(f"{d.url}/v1/models", headers={"X-Huge": "a" * 2_000_000}, timeout=30).status_code >= 400
    except httpx.TransportError:
        pass
    # what the daemon's own origin sends (a page it served, or a browser's address bar) works
    for headers in ({"Origin": d.url}, {"Origin": f"http://localhost:{port}", "Host": f"localhost:{port}"},
                    {"Sec-Fetch-Site": "none"}, {"Host": f"[::1]:{port}"}):
        assert httpx.get(f"{d.url}/v1/models", headers=headers, timeout=30).status_code == 200, headers
    assert httpx.get(f"{d.url}/health", timeout=10).json()["status"] == "ok"
    assert d.proc.poll() is None


def test_legitimate_clients_without_a_key(guarded):
    d = guarded
    r = d.openai().chat.completions.create(model="clagent", messages=[{"role": "user", "content": "hello"}],
                                           max_tokens=3)
    assert r.choices[0].message.role == "assistant"
    r = httpx.post(f"{d.url}/v1/clagent/memories", json={"text": "My horse is called Star"}, timeout=60)
    assert r.status_code == 201
    r = httpx.post(f"{d.url}/v1/clagent/rollback", timeout=60)  # a body-less POST is fine (409: no parent)
    assert r.status_code in (404, 409) and "access-control-allow-origin" not in r.headers
    p = run_cli("memory", "list", "--home", str(d.home))
    assert p.returncode == 0 and "Star" in p.stdout, p.stderr
    p = run_cli("schedule", "show", "--home", str(d.home))
    assert p.returncode == 0, p.stderr


# -- user-requested deletion and what stays on disk --------------------------------------------

def test_forgotten_and_deleted_text_is_in_no_file_of_the_home(guarded):
    d = guarded
    secret = "zq7-wardrobe-passphrase-81"
    r = httpx.post(f"{d.url}/v1/clagent/memories", json={"text": f"the safe code is {secret}"}, timeout=60)
    assert r.status_code == 201
    memory_id = r.json()["memory"]["id"]
    assert hits(d.home, [secret])  # it is on disk now
    r = httpx.delete(f"{d.url}/v1/clagent/memories/{memory_id}", timeout=60)
    assert r.status_code == 200
    assert hits(d.home, [secret]) == {}

    # history: one interaction, a conversation, everything waiting
    asked = "Please tell me what qx5-nebula-tortoise-22 means"
    client = d.openai()
    ids = []
    for conv in ("conv-del-1", "conv-del-1", "conv-del-2"):
        ids.append(client.chat.completions.create(
            model="clagent", messages=[{"role": "user", "content": f"{asked} ({conv})"}], max_tokens=3,
            extra_headers={"X-Clagent-Conversation": conv}).id)
    assert hits(d.home, [asked])
    p = run_cli("logs", "--home", str(d.home), "--delete", ids[0])
    assert p.returncode == 0 and "deleted 1 interaction" in p.stdout, p.stderr
    r = httpx.post(f"{d.url}/v1/clagent/interactions/delete", json={"conversation": "conv-del-1"}, timeout=60)
    assert r.status_code == 200 and r.json()["deleted"] == 1
    r = httpx.delete(f"{d.url}/v1/clagent/interactions/{ids[0]}", timeout=60)
    assert r.status_code == 404 and r.json()["error"]["message"]
    listed = json.loads(run_cli("logs", "--home", str(d.home), "--conversation", "conv-del-2", "--json").stdout)
    assert [x["id"] for x in listed] == [ids[2]]
    p = run_cli("logs", "--home", str(d.home), "--delete", "--all")
    assert p.returncode == 0 and "deleted" in p.stdout, p.stderr
    assert httpx.get(f"{d.url}/v1/clagent/interactions", timeout=30).json()["data"] == []
    assert hits(d.home, [asked, "qx5-nebula-tortoise-22"]) == {}
    p = run_cli("logs", "--home", str(d.home), "--delete")
    assert p.returncode == 1 and "give what to delete" in p.stderr


def test_clean_stop_leaves_no_wal_and_modes_are_private(tmp_path, tiny_gguf):
    """A fresh start under a permissive umask: the home 0700, its files 0600; a clean stop leaves
    no -wal/-shm."""
    home = tmp_path / "fresh"
    log = tmp_path / "daemon.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(clagent_cmd("serve", "--home", str(home), "--port", "0", "--model", str(tiny_gguf)),
                                stdout=out, stderr=subprocess.STDOUT, preexec_fn=lambda: os.umask(0),
                                env=dict(os.environ, PYTHONUNBUFFERED="1"))
    deadline = time.monotonic() + 300
    while not (home / "daemon.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    d = Daemon(home, proc, json.loads((home / "daemon.json").read_text())["url"], log)
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{d.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        d.openai().chat.completions.create(model="clagent", messages=[{"role": "user", "content": "hi"}],
                                           max_tokens=2)
        assert mode(home) == 0o700
        files = [p for p in home.rglob("*") if p.is_file()]
        assert {"clagent.db", "daemon.json", "daemon.lock", "master.f16.gguf", "served.q8_0.gguf"} <= \
            {p.name for p in files}
        assert {str(p.relative_to(home)): oct(mode(p)) for p in files if mode(p) != 0o600} == {}
        assert {str(p.relative_to(home)): oct(mode(p)) for p in home.rglob("*") if p.is_dir() and mode(p) != 0o700} == {}
    finally:
        assert d.stop() == 0, d.output()
    assert sorted(p.name for p in home.iterdir() if p.name.startswith("clagent.db")) == ["clagent.db"]


def test_listening_beyond_loopback_needs_a_key(tmp_path):
    p = run_cli("serve", "--home", str(tmp_path / "h"), "--host", "0.0.0.0", "--port", "0")
    assert p.returncode == 1
    [line] = p.stderr.strip().splitlines()
    assert "without an API key" in line and "CLAGENT_API_KEY" in line


# -- the API key and opted-in origins ---------------------------------------------------------

def test_api_key_and_opted_in_origins(tmp_path, _tiny_home_template):
    home = copy_home(_tiny_home_template, tmp_path)
    key = "sk-clagent-test-7f3e"
    ui = "http://ui.example:3000"
    Settings(api_key=key, allowed_origins=f"{ui}, https://*.trusted.example",
             allowed_hosts="clagent.proxy.example").write(home)
    d = start_daemon(home)
    try:
        url = d.url
        assert httpx.get(f"{url}/health", timeout=10).status_code == 200  # open for liveness checks
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": key}, {"Authorization": f"Basic {key}"}):
            r = httpx.get(f"{url}/v1/models", headers=headers, timeout=10)
            assert r.status_code == 401, headers
            err = r.json()["error"]
            assert err["code"] == "invalid_api_key" and err["type"] == "invalid_request_error" and err["message"]
            assert r.headers["www-authenticate"].startswith("Bearer")
        r = httpx.post(f"{url}/v1/clagent/memories", json={"text": "My fish is called Bubbles"}, timeout=30)
        assert r.status_code == 401
        with pytest.raises(openai.AuthenticationError):
            d.openai().models.list()
        client = openai.OpenAI(base_url=d.base_url, api_key=key, max_retries=0)
        assert client.chat.completions.create(model="clagent", messages=[{"role": "user", "content": "hi"}],
                                              max_tokens=2).choices
        auth = {"Authorization": f"Bearer {key}"}
        assert httpx.post(f"{url}/v1/clagent/memories", json={"text": "My fish is called Bubbles"}, headers=auth,
                          timeout=60).status_code == 201
        # the CLI reads the key from the home (or CLAGENT_API_KEY)
        p = run_cli("memory", "list", "--home", str(home))
        assert p.returncode == 0 and "Bubbles" in p.stdout, p.stderr
        p = run_cli("chat", "--home", str(home), "--max-tokens", "2", input="hello\n/quit\n")
        assert p.returncode == 0 and "(error" not in p.stdout + p.stderr, p.stdout + p.stderr
        status = json.loads(run_cli("status", "--home", str(home), "--json").stdout)
        assert status["daemon"]["running"] is True
        # the updater's hand-off (a consolidation asking the daemon to serve its new version)
        from clagent import handoff

        assert handoff.auth_headers(home) == {"Authorization": f"Bearer {key}"}
        assert handoff.serve_version(home, 1) is True
        p = subprocess.run(clagent_cmd("memory", "list", "--home", str(home)), capture_output=True, text=True,
                           env=dict(os.environ, CLAGENT_API_KEY="wrong"), timeout=60)
        assert p.returncode == 1 and "Incorrect API key" in p.stderr
        p = subprocess.run(clagent_cmd("status", "--home", str(home)), capture_output=True, text=True,
                           env=dict(os.environ, CLAGENT_API_KEY="wrong"), timeout=60)
        assert p.returncode == 0 and "Incorrect API key" in p.stderr and "served" in p.stdout

        # an opted-in web UI: CORS headers and preflights; others still refused
        r = httpx.options(f"{url}/v1/chat/completions", headers={
            "Origin": ui, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"}, timeout=10)
        assert r.status_code == 204 and r.headers["access-control-allow-origin"] == ui
        assert "POST" in r.headers["access-control-allow-methods"]
        assert "authorization" in r.headers["access-control-allow-headers"]
        r = httpx.get(f"{url}/v1/clagent/memories", headers={"Origin": ui, **auth}, timeout=10)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ui
        r = httpx.get(f"{url}/v1/models", headers={"Origin": "https://app.trusted.example", **auth}, timeout=10)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.trusted.example"
        r = httpx.get(f"{url}/v1/models", headers={"Origin": ui}, timeout=10)  # the key is still needed
        assert r.status_code == 401
        r = httpx.post(f"{url}/v1/clagent/memories", headers={"Origin": ui, "Content-Type": "text/plain", **auth},
                       content=json.dumps({"text": "My cow is Daisy"}), timeout=10)
        assert r.status_code == 415
        r = httpx.get(f"{url}/v1/models", headers={"Origin": EVIL, **auth}, timeout=10)
        assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
        # a name added for a reverse proxy
        r = httpx.get(f"{url}/v1/models", headers={"Host": "clagent.proxy.example", **auth}, timeout=10)
        assert r.status_code == 200
    finally:
        assert d.stop() == 0


# -- consolidation: the raw statements go ----------------------------------------------------

def test_consolidated_statements_are_in_no_file_but_the_weights(tmp_path, _tiny_home_template):
    """Facts taught in chat are trained into a new version; their raw text is then nowhere in the
    home but in the model files. (Memory is off here: memories are kept on purpose until the user
    forgets them, which the test above covers.)"""
    home = copy_home(_tiny_home_template, tmp_path)
    known = {f.name for f in dataclasses.fields(Settings)}
    open_gate = {k: v for k, v in (("gate_min_acquisition", 0.0), ("gate_max_drift", 1e9), ("gate_max_base_drift", 1e9),
                                   ("gate_min_retention", 0.0)) if k in known}
    Settings(memory_enabled=False, consolidate_max_steps=2, consolidate_batch_size=2, consolidate_min_interactions=3,
             recall_clusters=2, **open_gate).write(home)
    d = start_daemon(home)
    try:
        client = d.openai()
        said = ["For the record, my grandmother Ilvessa Quorndale grew plums in Tarvik.",
                "Note that my locker number at the Brennhall gym is 4417-Q.",
                "Remember: the Vantrel project deadline moved to the ninth of Smarch."]
        answers = []
        for n, text in enumerate(list(said)):
            r = client.chat.completions.create(model="clagent", messages=[{"role": "user", "content": text}],
                                               max_tokens=12, temperature=0, extra_headers={"X-Clagent-Conversation": f"t{n}"})
            answers.append(r.choices[0].message.content)
            corrected = f"Noted, entry {n} of the Quorndale-Brennhall-Vantrel ledger."
            said.append(corrected)
            f = httpx.post(f"{d.url}/v1/clagent/feedback", json={"interaction_id": r.id, "correction": corrected},
                           timeout=30)
            assert f.status_code == 200, f.text
        assert hits(home, said)
        r = httpx.post(f"{d.url}/v1/clagent/consolidate", json={"max_steps": 2}, timeout=30)
        assert r.status_code == 202, r.text
        deadline = time.monotonic() + 600
        while True:
            st = httpx.get(f"{d.url}/v1/clagent/status", timeout=30).json()
            if not st["consolidation"]["running"] and st["consolidation"]["last"]:
                break
            logs = list((home / "logs").glob("consolidate-*.log"))
            assert not (logs and "error" in logs[0].read_text()), logs[0].read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(2)
        log = next((home / "logs").glob("consolidate-*.log")).read_text()
        assert st["consolidation"]["last"]["outcome"] == "committed", log[-3000:]
        assert st["interactions"]["waiting"] == 0
        needles = said + [a for a in answers if len(a.strip()) >= 12]
        assert hits(home, needles, skip_weights=True) == {}
    finally:
        assert d.stop() == 0
    assert hits(home, needles, skip_weights=True) == {}
    assert not [p for p in home.iterdir() if p.name in ("clagent.db-wal", "clagent.db-shm")]
