"""End to end on the embedded SmolLM2: a fresh home, the daemon, the openai client."""

import json
import sqlite3

import pytest

from tests.conftest import run_cli, start_daemon

pytestmark = pytest.mark.smollm2


def test_fresh_home_serves_the_embedded_model(tmp_path):
    home = tmp_path / "home"
    daemon = start_daemon(home, timeout=600)
    try:
        client = daemon.openai()
        r = client.chat.completions.create(
            model="clagent", temperature=0, max_tokens=24,
            messages=[{"role": "user", "content": "What is the capital of France?"}])
        assert "Paris" in r.choices[0].message.content
        chunks = client.chat.completions.create(
            model="clagent", temperature=0, max_tokens=24, stream=True,
            messages=[{"role": "user", "content": "What is the capital of France?"}])
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == r.choices[0].message.content
        st = json.loads(run_cli("status", "--home", str(home), "--json").stdout)
        v = st["served_version"]
        assert v["id"] == 1 and v["quant"] == "Q8_0" and v["info"]["spec"]["n_layer"] == 30
        assert v["info"]["source"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
        assert st["interactions"]["logged_total"] == 2
    finally:
        daemon.stop()
    con = sqlite3.connect(home / "clagent.db")
    assert con.execute("SELECT COUNT(*) FROM interactions WHERE response LIKE '%Paris%'").fetchone()[0] == 2
    con.close()
    assert (home / "models" / "v1" / "master.f16.gguf").stat().st_size > 200_000_000
