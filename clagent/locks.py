"""Exclusive locks on files in the home (fcntl): one daemon per home, one consolidation at a time.
The kernel releases them when the process ends, however it ends."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from clagent.errors import ClagentError


@contextmanager
def exclusive(path: Path, busy_message: str, write_pid: bool = False):
    """Hold an exclusive lock on ``path``; if another process holds it, raise ClagentError with
    ``busy_message`` (``{pid}`` in it is replaced by the holder's pid when it wrote one)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise ClagentError(busy_message.format(pid=holder)) from None
        if write_pid:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


def is_held(path: Path) -> bool:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
