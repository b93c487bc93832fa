"""The daemon's API key, as its clients find it: ``$CLAGENT_API_KEY``, else the ``api_key`` setting
in the home's ``config.toml``. The command line (``clagent.cli.client``) and the updater's hand-off
to the daemon (``clagent.handoff``) both ask here, so they send what the daemon expects."""

from __future__ import annotations

import os
from pathlib import Path

ENV = "CLAGENT_API_KEY"


def client_api_key(home_path: str | os.PathLike | None = None) -> str | None:
    """The key to send to the daemon of ``home_path`` (default: the default home), or None."""
    env = os.environ.get(ENV, "").strip()
    if env:
        return env
    from clagent.config import Settings, resolve_home

    path = Path(home_path) if home_path is not None else resolve_home(None)
    if not path.is_dir():
        return None
    return Settings.load(path).api_key.strip() or None


api_key = client_api_key
