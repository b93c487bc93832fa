"""bench/continual.py: its facts-file errors name the line, and a whole run on the tiny model with
another facts file writes the table, results.json in the documented shape and the plot."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "continual.py"
GOOD = {"session": 1, "statement": "My dog is called Rex.", "question": "What is my dog called?", "answer": "Rex"}


def run_bench(*args, timeout=900):
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=timeout)


def write(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


@pytest.mark.parametrize("rows, says", [
    ([GOOD, "{broken"], "line 2: not valid JSON"),
    ([GOOD, {k: v for k, v in GOOD.items() if k != "answer"}], "line 2: missing field answer"),
    ([{**GOOD, "session": "one"}], "line 1: session must be a positive integer"),
    ([{**GOOD, "question": ""}], "line 1: question must be a non-empty string"),
    ([GOOD, {**GOOD, "session": 3}], "line 2: session 3 follows session 1"),
    ([{**GOOD, "session": 2}], "line 1: session 2 follows session 0"),
    ([GOOD, {**GOOD, "session": 2}, GOOD], "line 3: session 1 comes after session 2"),
    (["[1, 2]"], "line 1: expected a JSON object"),
    ([""], "no facts in the file"),
])
def test_a_bad_facts_file_is_a_clear_error_naming_the_line(tmp_path, rows, says):
    p = run_bench("--facts", str(write(tmp_path / "facts.jsonl", rows)), "--out", str(tmp_path / "out"), timeout=60)
    assert p.returncode == 2 and says in p.stderr and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    assert not (tmp_path / "out" / "results.json").exists()


def test_the_default_facts_file_and_corrections():
    sys.path.insert(0, str(BENCH.parent))
    import continual

    sessions = continual.load_facts(BENCH.parent / "continual_facts_48.jsonl")
    facts = [f for s in sessions.values() for f in s]
    assert len(facts) >= 48 and len(sessions) >= 6 and {f.kind for f in facts} == {"user", "work", "world"}
    corrections = [f for f in facts if f.stale]
    assert len(corrections) >= 4
    for c in corrections:  # each replaces an earlier fact, which then no longer counts
        old = [f for f in facts if f.answer == c.stale]
        assert old and old[0].session < c.session
        assert old[0] in continual.current(sessions, c.session - 1)
        assert old[0] not in continual.current(sessions, c.session) and c in continual.current(sessions, c.session)
    assert all(f.question.lower() != f.statement.lower() for f in facts)
    assert continual.stale_count(corrections[:1], [f"It is {corrections[0].stale}."]) == 1
    assert continual.stale_count(corrections[:1], [f"{corrections[0].answer}, not {corrections[0].stale}"]) == 0


def test_unknown_method_and_missing_file(tmp_path):
    p = run_bench("--methods", "recall,magic", "--out", str(tmp_path), timeout=60)
    assert p.returncode == 2 and "unknown method magic" in p.stderr
    p = run_bench("--facts", str(tmp_path / "none.jsonl"), "--out", str(tmp_path), timeout=60)
    assert p.returncode == 2 and "cannot read the facts file" in p.stderr


def test_a_run_on_the_tiny_model_writes_table_results_and_plot(tmp_path, tiny_gguf):
    facts = write(tmp_path / "facts.jsonl", [
        GOOD, {"session": 1, "statement": "I live in Lisbon.", "question": "Where do I live?", "answer": "Lisbon"},
        {"session": 2, "statement": "My cat is called Tom.", "question": "What is my cat called?", "answer": "Tom"},
    ])
    out = tmp_path / "out"
    p = run_bench("--facts", str(facts), "--methods", "none,recall", "--max-steps", "1", "--model", str(tiny_gguf),
                  "--out", str(out))
    assert p.returncode == 0, p.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert list(results["methods"]) == ["none", "recall"]
    for rows in results["methods"].values():
        assert [r["session"] for r in rows] == [1, 2]
        assert rows[0]["retention"] is None and 0 <= rows[1]["retention"] <= 1
        assert all(0 <= r["acquisition"] <= 1 and r["drift"] >= 0 and r["seconds"] > 0 for r in rows)
    assert all(r["drift"] == 0 for r in results["methods"]["none"])  # no update: the original model
    assert results["methods"]["recall"][1]["drift"] > 0
    assert (out / "continual.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = p.stdout.splitlines()
    assert table[0].split() == ["method", "session", "acquisition", "retention", "served", "lean", "stale", "drift",
                                "notes", "lean", "seconds"]
    assert sum(line.split()[:1] == ["recall"] and line.split()[1].isdigit() for line in table if line.strip()) == 2
    for rows in results["methods"].values():  # as served (memory on), stale answers, notes tokens
        assert all(0 <= r["served"] <= 1 and r["stale_served"] >= 0 and r["notes_tokens"] >= 0 for r in rows)
    assert results["methods"]["recall"][1]["rehearsal"]["candidates"] >= 1  # session 1's memories
    assert "recall (the default) after session 2" in p.stdout
    for r in results["methods"]["recall"]:  # both ways: every note, and those the weights hold left out
        assert 0 <= r["served_lean"] <= 1 and 0 <= r["notes_tokens_lean"] <= r["notes_tokens"] + 1e-9
        assert r["gate"]["verified"] >= 1 and r["held_memories"] == r["gate"]["held"]

    # methods run apart (at once, in other folders) combine into one table and plot
    single = tmp_path / "single"
    single.mkdir()
    only_recall = {**results, "methods": {"recall": results["methods"]["recall"]}}
    (single / "results.json").write_text(json.dumps(only_recall))
    only_none = tmp_path / "none"
    only_none.mkdir()
    (only_none / "results.json").write_text(json.dumps({**results, "methods": {"none": results["methods"]["none"]}}))
    both = tmp_path / "both"
    c = run_bench("--combine", str(single), str(only_none), "--out", str(both), timeout=120)
    assert c.returncode == 0, c.stderr
    assert list(json.loads((both / "results.json").read_text())["methods"]) == ["none", "recall"]
    assert (both / "continual.png").exists() and "recall (the default) after session 2" in c.stdout
    (only_none / "results.json").write_text(json.dumps({**results, "facts": "other.jsonl"}))
    bad = run_bench("--combine", str(single), str(only_none), "--out", str(both), timeout=120)
    assert bad.returncode == 2 and "another facts file" in bad.stderr
