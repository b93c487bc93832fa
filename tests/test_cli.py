"""The clagent command: one-line errors, status up and down, models, logs, and chat."""

import json
import socket

import pytest

from tests.conftest import run_cli, start_daemon


def one_line_error(p, match):
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    assert match in lines[0], lines[0]


def test_status_models_logs_with_daemon_stopped(tiny_home):
    p = run_cli("status", "--home", str(tiny_home))
    assert p.returncode == 0, p.stderr
    assert "daemon     down" in p.stdout and "served     v1 (Q8_0, made" in p.stdout
    assert "lineage v1 (base)" in p.stdout and "last run   never consolidated" in p.stdout
    assert all(len(line) <= 80 for line in p.stdout.splitlines())
    data = json.loads(run_cli("status", "--home", str(tiny_home), "--json").stdout)
    assert data["daemon"] == {"running": False} and data["served_version"]["id"] == 1
    assert data["interactions"]["waiting"] == 0

    p = run_cli("models", "--home", str(tiny_home))
    assert p.returncode == 0 and "* v1" in p.stdout and "import" in p.stdout
    [v1] = json.loads(run_cli("models", "--home", str(tiny_home), "--json").stdout)
    assert v1["served"] and v1["parent"] is None and v1["master_file"].endswith("master.f16.gguf")
    assert v1["disk_bytes"] > 0 and v1["info"]["spec"]["n_layer"] == 2
    assert "no interactions" in run_cli("logs", "--home", str(tiny_home)).stdout


def test_chat_status_and_logs_against_a_running_daemon(daemon):
    home = str(daemon.home)
    p = run_cli("chat", "--home", home, "--max-tokens", "6", "--temperature", "0",
                input="Hello!\n/up\nAnd again?\n/correct The right answer.\n/bogus\n/quit\n")
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("clagent> ") == 2 and p.stdout.count("(feedback recorded)") == 2
    assert "unknown command /bogus" in p.stdout

    rows = json.loads(run_cli("logs", "--home", home, "-n", "5", "--json").stdout)
    assert len(rows) == 2
    newest, oldest = rows
    assert oldest["messages"] == [{"role": "user", "content": "Hello!"}] and oldest["rating"] == 1
    assert newest["messages"][-1] == {"role": "user", "content": "And again?"}
    assert newest["messages"][1]["role"] == "assistant"  # the chat keeps its history
    assert newest["rating"] == -1 and newest["correction"] == "The right answer."
    assert newest["conversation_id"] == oldest["conversation_id"]
    text = run_cli("logs", "--home", home).stdout
    assert "you: And again?" in text and "correction: The right answer." in text

    p = run_cli("status", "--home", home)
    flat = " ".join(p.stdout.split())  # lines wrap at 80 columns
    assert "daemon up since" in flat and daemon.url in flat
    assert "waiting 2 interactions in 1 conversation (2 logged in all)" in flat
    assert "feedback 1 up, 1 down, 1 corrected" in flat


def test_chat_without_daemon(tiny_home):
    one_line_error(run_cli("chat", "--home", str(tiny_home), input="hi\n"), "daemon is not running")


def test_second_daemon_on_the_same_home_is_refused(daemon):
    one_line_error(run_cli("serve", "--home", str(daemon.home), "--port", "0"), "already serving")


def test_port_in_use(tiny_home):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        one_line_error(run_cli("serve", "--home", str(tiny_home), "--port", str(port)), "already in use")


@pytest.mark.parametrize("content,match", [
    (None, "model file not found"),
    (b"definitely not a model", "not a valid GGUF"),
    (b"GGUF\x03\x00\x00\x00" + b"\xff" * 64, "not a valid GGUF"),
])
def test_missing_or_corrupt_model(tmp_path, content, match):
    model = tmp_path / "model.gguf"
    if content is not None:
        model.write_bytes(content)
    one_line_error(run_cli("serve", "--home", str(tmp_path / "h"), "--port", "0", "--model", str(model)), match)
    # the model is checked before the home is made: nothing half-made is left behind
    assert not (tmp_path / "h").exists()


def test_home_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line_error(run_cli("serve", "--home", str(blocker / "home"), "--port", "0"), "cannot create home")
    one_line_error(run_cli("status", "--home", str(tmp_path / "nowhere")), "no clagent home")


def test_other_model_on_an_existing_home_is_refused(tiny_home, tiny_gguf_b):
    one_line_error(run_cli("serve", "--home", str(tiny_home), "--port", "0", "--model", str(tiny_gguf_b)),
                   "already serves version 1")


def test_home_from_model_flag(tmp_path, tiny_gguf):
    home = tmp_path / "h"
    d = start_daemon(home, "--model", str(tiny_gguf))
    try:
        st = json.loads(run_cli("status", "--home", str(home), "--json").stdout)
        assert st["daemon"]["running"] and st["served_version"]["info"]["source"] == str(tiny_gguf)
    finally:
        d.stop()
    # restarting with the same --model keeps the home as it is
    d = start_daemon(home, "--model", str(tiny_gguf))
    d.stop()
    assert not (home / "daemon.json").exists()
