"""The guard's decisions on their own (no daemon): names, addresses, ports, origins, keys."""

import asyncio

import pytest

from clagent.config import Settings
from clagent.daemon.guard import Guard, Policy, is_loopback_host, parse_host


def ask(policy: Policy, method="GET", path="/v1/models", headers=None, host="127.0.0.1:8765"):
    """(status, headers) of one request through the guard; 200 when it reached the app."""
    sent = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def send(message):
        sent.append(message)

    raw = [(b"host", host.encode())] if host is not None else []
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {"type": "http", "method": method, "path": path, "headers": raw}
    asyncio.run(Guard(app, policy)(scope, None, send))
    start = sent[0]
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}


LOCAL = Policy(host="127.0.0.1", port=8765)


@pytest.mark.parametrize("host,status", [
    ("127.0.0.1:8765", 200), ("localhost:8765", 200), ("[::1]:8765", 200), ("127.0.0.2:8765", 200),
    ("app.localhost:8765", 200), ("LOCALHOST:8765", 200),
    ("127.0.0.1", 403), ("localhost:80", 403), ("127.0.0.1:8766", 403), ("evil.example:8765", 403),
    ("192.168.1.20:8765", 403), ("0x7f000001:8765", 403), ("localhost.evil.example:8765", 403),
    ("a b", 400), ("[::1", 400), ("x:99999", 400), ("user@localhost:8765", 400), ("", 400), (None, 400),
])
def test_host_on_loopback(host, status):
    assert ask(LOCAL, host=host)[0] == status


def test_listening_beyond_loopback():
    p = Policy(host="0.0.0.0", port=8765, api_key="k", allowed_hosts=["clagent.lan", "proxy.example:443", "[fd00::1]"])
    auth = {"Authorization": "Bearer k"}
    assert p.public and not LOCAL.public
    for host in ("192.168.1.20:8765", "10.0.0.5:8765", "[fe80::1]:8765", "clagent.lan", "clagent.lan:9",
                 "proxy.example:443", "[fd00::1]:1"):
        assert ask(p, host=host, headers=auth)[0] == 200, host
    for host in ("192.168.1.20:8766", "proxy.example", "evil.example:8765"):
        assert ask(p, host=host, headers=auth)[0] == 403, host
    assert ask(Policy(host="127.0.0.1", port=1, allowed_hosts=["*"]), host="anything:5")[0] == 200


def test_loopback_hosts():
    assert all(is_loopback_host(h) for h in ("127.0.0.1", "localhost", "::1", "[::1]", "127.9.9.9"))
    assert not any(is_loopback_host(h) for h in ("0.0.0.0", "::", "", "192.168.1.2", "no-such-host.invalid"))


def test_origins_and_cors():
    p = Policy(host="127.0.0.1", port=8765, allowed_origins=["http://localhost:*", "https://ui.example"])
    assert ask(p, headers={"Origin": "http://127.0.0.1:8765"})[0] == 200  # its own
    status, headers = ask(p, headers={"Origin": "http://localhost:3000"})
    assert status == 200 and headers["access-control-allow-origin"] == "http://localhost:3000"
    assert ask(p, headers={"Origin": "https://ui.example/"})[0] == 200
    assert ask(p, headers={"Origin": "https://ui.example.evil"})[0] == 403
    assert ask(p, headers={"Origin": "http://localhost.evil:3000"})[0] == 403
    status, headers = ask(p, "OPTIONS", headers={"Origin": "https://ui.example",
                                                 "Access-Control-Request-Method": "DELETE"})
    assert status == 204 and "DELETE" in headers["access-control-allow-methods"]
    assert ask(p, "OPTIONS", headers={"Origin": "https://x.example", "Access-Control-Request-Method": "POST"})[0] == 403
    assert ask(Policy(host="127.0.0.1", port=8765, allowed_origins=["*"]),
               headers={"Origin": "https://any.example", "Sec-Fetch-Site": "cross-site"})[0] == 200


def test_bodies_and_keys():
    p = Policy(host="127.0.0.1", port=8765, api_key="s3cret")
    json_post = {"Content-Type": "application/json; charset=utf-8", "Content-Length": "2"}
    assert ask(p, "POST", headers=json_post)[0] == 401
    assert ask(p, "POST", headers={**json_post, "Authorization": "Bearer s3cret"})[0] == 200
    assert ask(p, "POST", headers={**json_post, "Authorization": "bearer  s3cret "})[0] == 200
    assert ask(p, "POST", headers={**json_post, "Authorization": "Bearer s3cre"})[0] == 401
    assert ask(p, path="/health")[0] == 200
    ok = {"Authorization": "Bearer s3cret"}
    assert ask(p, "POST", headers={**ok, "Content-Type": "text/plain", "Content-Length": "2"})[0] == 415
    assert ask(p, "PUT", headers={**ok, "Transfer-Encoding": "chunked"})[0] == 415
    assert ask(p, "POST", headers={**ok, "Content-Length": "0"})[0] == 200  # no body, nothing to type
    assert ask(p, "POST", headers={**ok, "Content-Type": "application/vnd.api+json", "Content-Length": "2"})[0] == 200


def test_settings_lists():
    s = Settings(allowed_hosts=" a.example , b.example:80,", allowed_origins="")
    p = Policy.from_settings(s, 1234)
    assert p.allowed_hosts == ["a.example", "b.example:80"] and p.allowed_origins == [] and p.port == 1234


def test_list_settings_as_toml_arrays(tmp_path, monkeypatch):
    monkeypatch.delenv("CLAGENT_ALLOWED_ORIGINS", raising=False)
    (tmp_path / "config.toml").write_text('[clagent]\nallowed_origins = ["https://a.example", "http://localhost:*"]\n')
    s = Settings.load(tmp_path)
    assert Policy.from_settings(s, 1).allowed_origins == ["https://a.example", "http://localhost:*"]
