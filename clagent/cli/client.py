"""A small HTTP client for the running daemon (the CLI never touches the model directly)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import httpx

from clagent.errors import ClagentError
from clagent.status import read_daemon_file


def daemon_url(home_path: Path, url: str | None = None) -> str | None:
    if url:
        return url.rstrip("/")
    info = read_daemon_file(home_path)
    return info["url"] if info else None


def is_up(url: str | None) -> bool:
    if not url:
        return False
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class Client:
    def __init__(self, url: str, timeout: float = 600):
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=timeout)

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

    def stream_chat(self, messages: list[dict], conversation: str | None, **params) -> Iterator[dict]:
        """Yield the streamed chunks of a chat completion (OpenAI chunk dicts)."""
        body = {"model": "clagent", "messages": messages, "stream": True, **params}
        headers = {"x-clagent-conversation": conversation} if conversation else {}
        try:
            with self.http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
                if r.status_code >= 400:
                    r.read()
                    self._check(r)
                for line in r.iter_lines():
                    if not line.startswith("data: "):
                        continue
                    data = line[len("data: "):]
                    if data == "[DONE]":
                        return
                    chunk = json.loads(data)
                    if "error" in chunk:
                        raise ClagentError(f"daemon: {chunk['error']['message']}")
                    chunk["_conversation"] = r.headers.get("x-clagent-conversation")
                    yield chunk
        except httpx.HTTPError as e:
            raise ClagentError(f"cannot reach the daemon at {self.url}: {e}") from None
