"""Shared fixtures: a tiny llama model the suite builds itself, homes initialised from it, and a
real daemon subprocess on a loopback port."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from clagent.config import Settings  # noqa: E402
from clagent.home import Home  # noqa: E402
from clagent.memory.interactions import Interaction, log_interaction, set_feedback  # noqa: E402
from clagent.memory.manager import MemoryManager  # noqa: E402
from clagent.models import embedded, gguf_io  # noqa: E402

TINY = dict(n_vocab=49152, n_embd=64, n_ff=128, n_layer=2, n_head=4, n_head_kv=2, n_ctx_train=2048,
            rope_theta=10000.0, rms_eps=1e-5, tied_embeddings=True)


def make_tiny_model(seed: int = 0):
    """A random llama model with SmolLM2's tokenizer: big enough to exercise every code path."""
    import torch
    from transformers import LlamaForCausalLM

    spec = gguf_io.LlamaSpec(**TINY)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(spec.hf_config()).eval()
    with torch.no_grad():  # larger weights than the default init, so outputs depend on them
        for name, p in model.named_parameters():
            if p.ndim == 2:
                p.normal_(0, 0.08)
    return spec, model


@functools.lru_cache(maxsize=1)
def smollm2_reader():
    """The embedded model's metadata (tokenizer, chat template), parsed once for the session."""
    return gguf_io.open_gguf(embedded.default_model_path())


def export_tiny(path: Path, seed: int = 0) -> Path:
    spec, model = make_tiny_model(seed)
    gguf_io.write_gguf(path, spec, model.state_dict(), template=smollm2_reader(),
                       name=f"clagent-tiny-{seed}")
    return path


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory) -> Path:
    return export_tiny(tmp_path_factory.mktemp("tiny") / "tiny-0.f16.gguf", seed=0)


@pytest.fixture(scope="session")
def tiny_gguf_b(tmp_path_factory) -> Path:
    return export_tiny(tmp_path_factory.mktemp("tiny") / "tiny-1.f16.gguf", seed=1)


def make_home(path: Path, model: Path | None = None) -> Path:
    """A home holding version 1 made from ``model`` (default: the embedded SmolLM2)."""
    home = Home.open(path)
    home.ensure_model(model, verbose=False)
    home.close()
    return path


def copy_home(template: Path, tmp_path: Path) -> Path:
    """Making a home takes seconds: tests get a copy of one made once per session."""
    path = tmp_path / "home"
    shutil.copytree(template, path)
    return path


@pytest.fixture(scope="session")
def _tiny_home_template(tmp_path_factory, tiny_gguf) -> Path:
    return make_home(tmp_path_factory.mktemp("home-template") / "home", tiny_gguf)


@pytest.fixture
def tiny_home(tmp_path, _tiny_home_template) -> Path:
    """A fresh home holding version 1 made from the tiny model."""
    return copy_home(_tiny_home_template, tmp_path)


@pytest.fixture(scope="session")
def _smollm2_home_template(tmp_path_factory) -> Path:
    return make_home(tmp_path_factory.mktemp("smollm2-template") / "home")


@pytest.fixture
def smollm2_home(tmp_path, _smollm2_home_template) -> Path:
    """A fresh home holding version 1 made from the embedded SmolLM2."""
    return copy_home(_smollm2_home_template, tmp_path)


@pytest.fixture(scope="session")
def embedder():
    from clagent.memory.embedder import Embedder

    e = Embedder()
    e.warm_up()
    return e


@pytest.fixture
def mm(tmp_path, embedder):
    """A memory manager with the real embedding model on a fresh SQLite file."""
    from clagent.config import Settings
    from clagent.memory import db as dbmod
    from clagent.memory.manager import MemoryManager

    db = dbmod.connect(tmp_path / "m.db")
    m = MemoryManager(db, Settings(), embedder)
    m.load()
    yield m
    db.conn.close()


# Tests marked ``slow`` run a real model larger than the embedded one end to end (Gemma 3 270M: about
# 5 minutes on 2 cores); ``manual`` ones are longer still (the 0.5B preset's consolidation). `make
# test` leaves both out to stay within its budget; with CI=true (set by .ci/run) it runs the slow
# ones too. Select them with `make test ARGS="-m slow"` / `-m manual`, or by naming their file.
def _left_out(config, item) -> bool:
    wanted = config.option.markexpr or ""
    if item.get_closest_marker("manual"):
        return "manual" not in wanted
    if item.get_closest_marker("slow"):
        return not os.environ.get("CI") and "slow" not in wanted
    return False


def pytest_collection_modifyitems(config, items):
    named = {str(Path(a.split("::")[0]).resolve()) for a in config.args if a.endswith(".py") or "::" in a}
    out = [i for i in items if _left_out(config, i) and str(Path(i.fspath).resolve()) not in named]
    if out:
        config.hook.pytest_deselected(items=out)
        left_out = set(map(id, out))
        items[:] = [i for i in items if id(i) not in left_out]
        config._clagent_slow_left_out = len(out)


def pytest_terminal_summary(terminalreporter, config):
    n = getattr(config, "_clagent_slow_left_out", 0)
    if n:
        terminalreporter.write_line(f"{n} slow or manual test(s) left out (real models end to end; "
                                    f"run them with: make test ARGS=\"-m slow\" or \"-m manual\")")


class Daemon:
    def __init__(self, home: Path, proc: subprocess.Popen, url: str, log: Path):
        self.home, self.proc, self.url, self.log = home, proc, url, log

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def openai(self, **kw):
        import openai

        return openai.OpenAI(base_url=self.base_url, api_key="not-needed", max_retries=0, **kw)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def clagent_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "clagent", *args]


def start_daemon(home: Path, *extra: str, timeout: float = 300) -> Daemon:
    log = home.parent / f"daemon-{time.monotonic_ns()}.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log, "w") as out:
        proc = subprocess.Popen(clagent_cmd("serve", "--home", str(home), "--port", "0", *extra),
                                stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + timeout
    daemon_file = home / "daemon.json"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {proc.returncode}:\n{log.read_text()}")
        if daemon_file.exists():
            url = json.loads(daemon_file.read_text())["url"]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    return Daemon(home, proc, url, log)
            except httpx.HTTPError:
                pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"daemon did not come up in {timeout}s:\n{log.read_text()}")


@pytest.fixture
def daemon(tiny_home):
    d = start_daemon(tiny_home)
    yield d
    d.stop()


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory, _tiny_home_template):
    """One daemon for a module's tests that only need it to answer (bad-input cases)."""
    d = start_daemon(copy_home(_tiny_home_template, tmp_path_factory.mktemp("shared")))
    yield d
    d.stop()


def run_cli(*args: str, input: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(clagent_cmd(*args), input=input, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))


@pytest.fixture
def taught_home(tiny_home, embedder):
    """The tiny home, set to always pass its gate, with interactions, a correction and memories."""
    Settings(gate_min_acquisition=0.0, gate_max_drift=1e9, consolidate_max_steps=3, consolidate_epochs=0,
             consolidate_batch_size=2).write(tiny_home)
    home = Home.open(tiny_home)
    for n in range(3):
        log_interaction(home.db, Interaction(id=f"chatcmpl-{n}", conversation_id="c", version=1, model="clagent-v1",
                                             messages=[{"role": "user", "content": f"question {n}"}],
                                             response=f"answer {n}", finish_reason="stop"))
    set_feedback(home.db, "chatcmpl-2", "down", "the right answer")
    mm = MemoryManager(home.db, home.settings, embedder)
    mm.load()
    mm.add("My dog is called Rex")
    mm.add("My dog is called Biscuit")  # supersedes Rex
    mm.add("I live in Lisbon")
    home.close()
    return tiny_home
