"""Progress reporting for long work (export, quantization, training): one line per stage on
stderr, redrawn in place on a terminal."""

from __future__ import annotations

import sys
import time


class Progress:
    """Callable ``(done, total, what)``; prints a bar on a TTY, a line per 10% otherwise."""

    def __init__(self, stage: str, stream=None, width: int = 30):
        self.stage = stage
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.started = time.monotonic()
        self._last_decile = -1

    def __call__(self, done: int, total: int, what: str = "") -> None:
        total = max(total, 1)
        frac = min(done / total, 1.0)
        elapsed = time.monotonic() - self.started
        if self.tty:
            filled = int(frac * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            end = "\n" if done >= total else ""
            self.stream.write(f"\r{self.stage}: [{bar}] {done}/{total} {what} {elapsed:.1f}s{end}")
            self.stream.flush()
        else:
            decile = int(frac * 10)
            if decile != self._last_decile:
                self._last_decile = decile
                self.stream.write(f"{self.stage}: {int(frac * 100)}% ({done}/{total} {what}) {elapsed:.1f}s\n")
                self.stream.flush()


def say(message: str, stream=None) -> None:
    stream = stream or sys.stderr
    stream.write(message + "\n")
    stream.flush()
