"""The fast memory measured on labelled data written by people who had not read the memory code
(tests/data/README.md), through the real memory manager (MiniLM embeddings, SQLite): rates over
hundreds of sentences, long turns, multi-session conversations and unrelated questions.

``heldout`` was never looked at beyond these rates and is measured whole; ``dev``, what the rules and
the capture model were developed on, is measured here on its sentences and long turns (its
conversations take minutes more: bench/memory_eval.py). The issue's targets are named in each test;
the floors asserted are a little under what was measured (the same figures as bench/memory_eval.py),
so a change that loses ground fails."""

from pathlib import Path

import pytest

from clagent.memory.evaluation import evaluate

DATA = Path(__file__).parent / "data"


PARTS = {"heldout": ("corpus", "long_turns", "conversation", "unrelated"), "dev": ("corpus", "long_turns")}


@pytest.fixture(scope="module")
def measured(embedder) -> dict:
    out = {name: evaluate(DATA / name, embedder=embedder, parts=parts) for name, parts in PARTS.items()}
    print(f"\n{out}")
    return out


@pytest.mark.parametrize("name", ["heldout", "dev"])
def test_statements_are_captured_and_the_rest_is_not(measured, name):
    """Target: recall >= 90 %, false memories <= 3 %. Each sentence is judged in a store of its own."""
    c = measured[name]["corpus"]
    assert c["statements"] >= 250 and c["negatives"] >= 120
    assert c["recall"] >= FLOORS[name]["recall"], c
    assert c["false_rate"] <= FLOORS[name]["false_rate"], c
    assert c["instructions_as_instruction"] >= FLOORS[name]["instructions"], c


@pytest.mark.parametrize("name", ["heldout", "dev"])
def test_corrections_in_natural_words_supersede_the_old_value(measured, name):
    """Target: the new value held, no superseded value left active (all corrections in one store)."""
    c = measured[name]["corpus"]
    assert c["corrections"] >= 30
    assert c["new_value_held"] >= FLOORS[name]["new_value_held"], c
    assert c["stale_active"] <= FLOORS[name]["stale_active"] * c["corrections"], c


@pytest.mark.parametrize("name", ["heldout", "dev"])
def test_long_chatty_turns(measured, name):
    """Facts inside long messages of feelings and encouragement; fact-free turns leave nothing."""
    lt = measured[name]["long_turns"]
    assert lt["facts"] >= 60
    assert lt["recall"] >= FLOORS[name]["long_recall"], lt
    assert lt["false"] <= FLOORS[name]["long_false"] * lt["fact_free"], lt


def test_multi_session_conversations(measured):
    """Targets: captured >= 80 %, the answer among the notes recalled for the question >= 70 %, and no
    superseded value among the notes instead of the current one."""
    name, f = "heldout", measured["heldout"]
    assert any(k.startswith("conversation") for k in f)
    for conv in [k for k in f if k.startswith("conversation")]:
        c = f[conv]
        assert c["captured"] >= FLOORS[name]["captured"], (conv, c)
        assert c["retrieved"] >= FLOORS[name]["retrieved"], (conv, c)
        assert c["stale_in_notes"] <= FLOORS[name]["stale_in_notes"], (conv, c)


def test_unrelated_questions_get_no_notes(measured):
    """Target: notes put into at most 1 general question in 10, with every personal store built above."""
    f = measured["heldout"]
    assert any(k.startswith("unrelated") for k in f)
    for key in [k for k in f if k.startswith("unrelated")]:
        assert f[key]["injected"] <= 0.10, (key, f[key])


# Measured (bench/memory_eval.py, 2026-11-30): heldout recall 94.7 %, false 8.5 %, instructions 79 %,
# new value held 98 %, stale 22/46, long turns 92 % with 3/14 fact-free turns storing something,
# conversations captured 85/83 %, retrieved 44/54 %, stale notes 2/1, unrelated 2.7 %;
# dev recall 86.0 %, false 3.4 %, instructions 88 %, new value held 86 %, stale 31/51, long 84 %, 2/17.
FLOORS = {
    "heldout": {"recall": 0.92, "false_rate": 0.11, "instructions": 0.70, "new_value_held": 0.92,
                "stale_active": 0.55, "long_recall": 0.88, "long_false": 0.30, "captured": 0.78,
                "retrieved": 0.40, "stale_in_notes": 3},
    "dev": {"recall": 0.83, "false_rate": 0.05, "instructions": 0.80, "new_value_held": 0.82,
            "stale_active": 0.66, "long_recall": 0.80, "long_false": 0.18},
}
