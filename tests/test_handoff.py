"""The daemon hand-off has its own module: the updater and status never import the command line,
so no import cycle runs through them."""

import ast
import subprocess
import sys
from pathlib import Path

from clagent import handoff

ROOT = Path(__file__).resolve().parents[1] / "clagent"


def imported_modules(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def test_updater_status_and_handoff_do_not_import_the_cli():
    files = [*(ROOT / "updater").glob("*.py"), ROOT / "status.py", ROOT / "handoff.py"]
    for f in files:
        bad = {m for m in imported_modules(f) if m == "clagent.cli" or m.startswith("clagent.cli.")}
        assert not bad, f"{f.name} imports {bad}"
    assert {m for m in imported_modules(ROOT / "handoff.py") if m.startswith("clagent")} <= {"clagent", "clagent.errors"}


def test_importing_the_pipeline_loads_no_cli_module():
    code = "import sys, clagent.updater.pipeline, clagent.status; print(any(m.startswith('clagent.cli') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr[-1000:]


def test_no_daemon_means_no_handoff(tmp_path):
    assert handoff.read_daemon_file(tmp_path) is None and handoff.daemon_url(tmp_path) is None
    assert handoff.for_home(tmp_path) is None and handoff.serve_version(tmp_path, 2) is False
    (tmp_path / handoff.DAEMON_FILE).write_text('{"url": "http://127.0.0.1:9"}')
    assert handoff.daemon_url(tmp_path) == "http://127.0.0.1:9" and not handoff.is_up("http://127.0.0.1:9")
    assert isinstance(handoff.auth_headers(tmp_path), dict)
