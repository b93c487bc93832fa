"""The hand-off to a running daemon: where it listens (``daemon.json`` in the home), whether it is
up, and a small JSON-over-HTTP client. Both the command line and the updater (which asks the daemon
to serve a new version) use it; it imports nothing else of clagent but errors, so no cycle can form
through it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from clagent.errors import ClagentError

DAEMON_FILE = "daemon.json"


def read_daemon_file(home_path: Path) -> dict | None:
    try:
        return json.loads((Path(home_path) / DAEMON_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def daemon_url(home_path: Path, url: str | None = None) -> str | None:
    if url:
        return url.rstrip("/")
    info = read_daemon_file(home_path)
    return info["url"] if info else None


def auth_headers(home_path: Path | None = None) -> dict:
    """What a request must carry to be accepted by the daemon. Hook for the daemon's API key: when
    ``clagent.auth`` provides one, it is sent as a bearer token."""
    try:
        from clagent import auth  # optional: the daemon's access control
    except ImportError:
        return {}
    key_for = getattr(auth, "client_api_key", None) or getattr(auth, "api_key", None)
    if key_for is None:
        return {}
    try:
        key = key_for(home_path) if home_path is not None else key_for()
    except TypeError:
        key = key_for()
    except Exception:  # noqa: BLE001 - no key readable: send none, the daemon says why
        return {}
    return {"Authorization": f"Bearer {key}"} if key else {}


def is_up(url: str | None) -> bool:
    if not url:
        return False
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class Client:
    """JSON requests to the daemon; a daemon error becomes a one-line ClagentError."""

    def __init__(self, url: str, timeout: float = 600, headers: dict | None = None):
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=timeout, headers=headers or {})

    def _check(self, r: httpx.Response) -> dict:
        if r.status_code >= 400:
            try:
                message = r.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = r.text[:200]
            raise ClagentError(f"daemon: {message}")
        return r.json()

    def request(self, method: str, path: str, **kw) -> dict:
        try:
            return self._check(self.http.request(method, path, **kw))
        except httpx.HTTPError as e:
            raise ClagentError(f"cannot reach the daemon at {self.url}: {e}") from None


def for_home(home_path: Path, timeout: float = 600) -> Client | None:
    """A client for the daemon running on this home, or None when none answers."""
    url = daemon_url(home_path)
    if not is_up(url):
        return None
    return Client(url, timeout=timeout, headers=auth_headers(home_path))


def serve_version(home_path: Path, version_id: int) -> bool:
    """Ask a running daemon to serve ``version_id`` now (hot swap). False when no daemon is up;
    a ClagentError when one is up and refuses."""
    client = for_home(home_path, timeout=120)
    if client is None:
        return False
    client.request("POST", "/v1/clagent/swap", json={"version": version_id})
    return True
