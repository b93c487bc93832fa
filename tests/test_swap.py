"""Hot swap of the served version while requests are in flight."""

import sqlite3
import threading

import httpx

from clagent.home import Home
from tests.conftest import start_daemon


def _ask(url, n, results, errors):
    try:
        r = httpx.post(f"{url}/v1/chat/completions", timeout=120, json={
            "model": "clagent", "messages": [{"role": "user", "content": f"request {n}"}],
            "max_tokens": 16, "temperature": 0, "stream": n % 2 == 0})
        if r.status_code != 200:
            errors.append((n, r.status_code, r.text))
        else:
            results.append(n)
    except Exception as e:  # noqa: BLE001 - any failure is what this test looks for
        errors.append((n, repr(e)))


def test_swap_under_concurrent_load_fails_nothing_and_logs_everything(tiny_home, tiny_gguf_b):
    home = Home.open(tiny_home)
    v2 = home.import_model(tiny_gguf_b, parent=1, verbose=False, serve=False)
    home.close()
    daemon = start_daemon(tiny_home)
    try:
        results, errors = [], []
        threads = [threading.Thread(target=_ask, args=(daemon.url, n, results, errors)) for n in range(12)]
        for t in threads[:6]:
            t.start()
        swap = httpx.post(f"{daemon.url}/v1/clagent/swap", json={"version": v2.id}, timeout=120)
        for t in threads[6:]:
            t.start()
        for t in threads:
            t.join()
        assert swap.status_code == 200, swap.text
        assert errors == []
        assert sorted(results) == list(range(12))
        assert httpx.get(f"{daemon.url}/health").json()["version"] == 2
        after = daemon.openai().chat.completions.create(model="clagent", max_tokens=2,
                                                        messages=[{"role": "user", "content": "hi"}])
        assert after.model == "clagent" and after.clagent_version == 2

        con = sqlite3.connect(tiny_home / "clagent.db")
        logged = con.execute("SELECT version, COUNT(*) FROM interactions GROUP BY version").fetchall()
        served = con.execute("SELECT value FROM state WHERE key = 'served_version'").fetchone()[0]
        con.close()
        assert sum(n for _, n in logged) == 13
        assert {v for v, _ in logged} <= {1, 2} and 2 in dict(logged)
        assert served == "2"
    finally:
        daemon.stop()


def test_swap_to_a_corrupt_version_keeps_the_old_one(tiny_home, tiny_gguf_b):
    home = Home.open(tiny_home)
    v2 = home.import_model(tiny_gguf_b, parent=1, verbose=False, serve=False)
    served_file = home.registry.served_path(v2)
    served_file.write_bytes(served_file.read_bytes()[: 200_000])  # truncated on disk
    home.close()
    daemon = start_daemon(tiny_home)
    try:
        r = httpx.post(f"{daemon.url}/v1/clagent/swap", json={"version": 2}, timeout=60)
        assert r.status_code == 409 and "cannot be served" in r.json()["error"]["message"]
        assert httpx.get(f"{daemon.url}/health").json()["version"] == 1
        ok = httpx.post(f"{daemon.url}/v1/chat/completions", timeout=60,
                        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        assert ok.status_code == 200 and ok.json()["clagent_version"] == 1
    finally:
        daemon.stop()
