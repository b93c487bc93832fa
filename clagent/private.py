"""Owner-only files: the home is 0700 and what clagent writes into it 0600, whatever the umask."""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private(path: str | os.PathLike) -> None:
    """A folder 0700, a file 0600; another user's file (or a link) is left as it is."""
    path = Path(path)
    try:
        if path.is_symlink():
            return
        os.chmod(path, DIR_MODE if path.is_dir() else FILE_MODE)
    except (PermissionError, FileNotFoundError):
        pass


def make_private_tree(path: str | os.PathLike) -> None:
    make_private(path)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            make_private(Path(root) / name)


def private_umask() -> None:
    """New files of this process start owner-only (0600/0700): what llama.cpp, torch and caches
    write into the home too."""
    os.umask(0o077)
