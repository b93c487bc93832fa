"""The command line's HTTP client for the running daemon (the CLI never touches the model
directly); built on :mod:`clagent.handoff`, which the updater uses too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import httpx

from clagent import handoff
from clagent.errors import ClagentError
from clagent.handoff import daemon_url, is_up  # noqa: F401 - the CLI's names for them


class Client(handoff.Client):
    """The daemon client of the command line: JSON requests, and streamed chat."""

    def __init__(self, url: str, timeout: float = 600, home_path: Path | None = None):
        super().__init__(url, timeout, handoff.auth_headers(home_path))

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
