"""Starting the daemon: one per home (a lock file), the port bound before the model loads, a
``daemon.json`` that tells the CLI where to find it, and a clean stop on SIGTERM/SIGINT."""

from __future__ import annotations

import errno
import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path

from clagent.config import atomic_write_text
from clagent.errors import ClagentError
from clagent.locks import exclusive
from clagent.home import Home
from clagent.memory.db import utcnow
from clagent.private import private_umask
from clagent.progress import say
from clagent.status import DAEMON_FILE

LOCK_FILE = "daemon.lock"


def home_lock(home: Path):
    """Held for the daemon's lifetime: one daemon per home."""
    return exclusive(home / LOCK_FILE, f"another clagent daemon (pid {{pid}}) is already serving {home}",
                     write_pid=True)


def bind_socket(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    except socket.gaierror as e:
        raise ClagentError(f"cannot resolve host {host!r}: {e.strerror}") from None
    family, socktype, proto, _, addr = infos[0]
    # proto must be IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted connections only then, and
    # without it every response on a kept-alive connection waits ~40 ms (Nagle + delayed ACK).
    sock = socket.socket(family, socktype, proto or socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise ClagentError(f"port {port} on {host} is already in use (another program or clagent daemon)") from None
        raise ClagentError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _quiet_server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn re-raises SIGTERM/SIGINT once it has shut down, which would end the process
        before our cleanup (daemon.json, the model) runs; we exit normally instead."""

        @contextmanager
        def capture_signals(self):
            with super().capture_signals():
                try:
                    yield
                finally:
                    self._captured_signals.clear()

    return Server


def serve(home: Home, model_path: str | None = None) -> None:
    import uvicorn

    from clagent.daemon.app import DaemonInfo, create_app
    from clagent.daemon.engine import Engine

    from clagent.daemon.guard import Policy, is_loopback_host

    settings = home.settings
    if not settings.api_key and not is_loopback_host(settings.host):
        raise ClagentError(
            f"refusing to listen on {settings.host} without an API key: anyone who can reach it could read and "
            f"change what clagent learned; set api_key in {home.path / 'config.toml'} or CLAGENT_API_KEY "
            f"(or listen on 127.0.0.1 behind a reverse proxy)")
    private_umask()
    with home_lock(home.path):
        sock = bind_socket(settings.host, settings.port)
        try:
            version = home.ensure_model(model_path)
            engine = Engine(settings.n_ctx, settings.n_threads)
            engine.load(home.registry.served_path(version), version.id)
            port = sock.getsockname()[1]
            host = settings.host if ":" not in settings.host else f"[{settings.host}]"
            info = DaemonInfo(pid=os.getpid(), url=f"http://{host}:{port}", started_at=utcnow())
            memory = None
            if settings.memory_enabled:
                from clagent.memory.manager import MemoryManager

                memory = MemoryManager(home.db, settings)
                memory.load_in_background()  # the embedding model takes seconds to import
            from clagent.daemon.scheduler import Scheduler

            scheduler = Scheduler(home)
            app = create_app(home, engine, info, memory, scheduler, Policy.from_settings(settings, port))
            daemon_file = home.path / DAEMON_FILE
            atomic_write_text(daemon_file, json.dumps(
                {"pid": info.pid, "url": info.url, "started_at": info.started_at}))
            say(f"clagent: serving version {version.id} at {info.url} (home {home.path})")
            say(_context_line(engine.context()))
            _start_scheduler(scheduler)
            # Request heads up to 256 KiB are read whole, so that an oversized header gets the guard's
            # clear 431 rather than a connection reset.
            config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=30,
                                    h11_max_incomplete_event_size=256 * 1024)
            try:
                _quiet_server_class()(config).run(sockets=[sock])
            finally:
                scheduler.shutdown()
                daemon_file.unlink(missing_ok=True)
                engine.close()
                home.close()  # checkpointed and closed: no -wal/-shm left behind
                say("clagent: stopped")
        finally:
            sock.close()


def _context_line(ctx: dict) -> str:
    """The context in force, said once (llama.cpp's own context lines are silenced)."""
    line = f"clagent: context {ctx['n_ctx']} tokens per request (prompt and answer together)"
    trained = ctx.get("n_ctx_train")
    if trained:
        line += f"; the model was trained on {trained}"
        if ctx["n_ctx"] > trained:
            line += " (beyond it, answers may degrade)"
    return line


def _start_scheduler(scheduler) -> None:
    """Start the consolidation schedule; a broken stored schedule is reported, chat still served."""
    try:
        scheduler.start()
    except ClagentError as e:
        say(f"clagent: the consolidation schedule is not running: {e}")
        return
    s = scheduler.schedule
    if s.enabled:
        say(f"clagent: consolidation scheduled \"{s.cron}\", next run {scheduler.next_run()}")
    else:
        say("clagent: consolidation schedule is off (clagent schedule on)")
