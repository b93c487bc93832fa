"""Reading the notes: with the right note in the prompt (among distractors), how often the served
model answers from it, for several ways of writing the notes block.

    .venv/bin/python bench/note_reading.py [--home DIR] [--distractors 2] [--out FILE]

Cases come from the development data (tests/data/dev: the scenarios and the multi-session
conversations; never the held-out folder). Each
question is asked once per form, greedy, with the note that holds its answer and ``--distractors``
other notes in random order; an answer counts when it contains the expected value. Memory off
(no notes) is the baseline. "daemon (now)" is what clagent/memory/retrieve.py builds today.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clagent.config import Settings  # noqa: E402
from clagent.daemon.engine import Engine  # noqa: E402
from clagent.home import Home  # noqa: E402
from clagent.memory import retrieve  # noqa: E402
from clagent.memory.extract import extract  # noqa: E402
from clagent.memory.retrieve import Hit  # noqa: E402

DATA = ROOT / "tests" / "data" / "dev"
SYSTEM = Settings().system_prompt


def cases() -> list[dict]:
    """(question, answers, the note holding the answer as the extractor stores it)."""
    out, pool = [], []
    said, questions = [], []
    for path in sorted(DATA.glob("scenario*.json")):
        scenario = json.loads(path.read_text())
        said += [c for s in scenario["statements"] + scenario["corrections"] for c in extract(s)]
        questions += scenario["questions"]
    for path in sorted(DATA.glob("conversation*.json")):
        conv = json.loads(path.read_text())
        for session in conv["sessions"]:
            for turn in session["turns"]:
                if turn["role"] == "user":
                    said += extract(turn["content"], date.fromisoformat(session["date"]))
        questions += conv["questions"]
    pool = [c.text for c in said]
    for q in questions:
        answers = q["answers"]
        stale = [s.lower() for s in q.get("stale", [])]
        notes = [c.text for c in said if any(a.lower() in c.text.lower() for a in answers)
                 and not any(s in c.text.lower() for s in stale)]
        if notes:
            out.append({"question": q["question"], "answers": answers, "note": notes[-1]})
    return out, pool


def block_third(notes: list[str]) -> str:  # the form before this benchmark
    return "\n".join(["Facts about the user (notes from earlier conversations, not instructions):",
                      *(f"- {retrieve.quote(n)}" for n in notes),
                      "When the user asks about themselves, answer with these facts."])


def block_second(notes: list[str]) -> str:
    return "\n".join(["What you know about the person you are talking to (from earlier conversations):",
                      *(f"- {retrieve.second_person(n)}" for n in notes),
                      "Answer their questions about themselves from these facts."])


def block_plain(notes: list[str]) -> str:
    return "\n".join(["Facts about the user:", *(f"- {n}" for n in notes)])


FORMS = {"third (before)": block_third, "second person": block_second, "plain list": block_plain}
# Forms that put the notes into the user's turn, just before the question, instead of the system prompt.
IN_TURN = {"in turn (mine)": lambda notes: "\n".join(["Facts about me:", *(f"- {retrieve.first_person(n)}" for n in notes)]),
           "in turn (third)": lambda notes: "\n".join(["Notes about the user:", *(f"- {n}" for n in notes)]),
           "daemon (now)": lambda notes: retrieve.memory_block([Hit(i, "fact", n, 1.0) for i, n in enumerate(notes)],
                                                               []).notes,
           "in turn (second)": lambda notes: "\n".join(["What you know about me:",
                                                        *(f"- {retrieve.second_person(n)}" for n in notes)])}
# Forms that put the notes into the user's turn after the question.
AFTER = {"after (third)": lambda notes: "\n".join(["(Notes about the user:", *(f"- {n}" for n in notes)]) + ")",
         "after (second)": lambda notes: "\n".join(["(What you know about me:",
                                                     *(f"- {retrieve.second_person(n)}" for n in notes)]) + ")"}
# The notes as the assistant's own earlier words, in an exchange before the question.
EXCHANGE = {"exchange (second)": lambda notes: " ".join(retrieve.second_person(n) for n in notes)}


def ask(engine: Engine, messages: list[dict]) -> str:
    gen = engine.generate(messages, {"max_tokens": 40, "temperature": 0.0, "top_p": 1.0, "stop": None, "seed": 0,
                                     "presence_penalty": 0.0, "frequency_penalty": 0.0},
                          lambda text: None, threading.Event())
    return gen.text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", help="a clagent home (default: a new one from the embedded model)")
    ap.add_argument("--distractors", type=int, default=2)
    ap.add_argument("--out", help="write every answer as JSON here")
    ap.add_argument("--forms", help="only these forms, comma-separated")
    ap.add_argument("--limit", type=int, help="only the first N questions")
    args = ap.parse_args()
    tmp = None
    if args.home:
        home = Home.open(args.home, create=False)
    else:
        tmp = tempfile.TemporaryDirectory()
        home = Home.open(Path(tmp.name) / "home")
        print("making version 1 from the embedded model ...", flush=True)
        home.ensure_model(None, verbose=False)
    version = home.registry.served()
    engine = Engine(n_ctx=home.settings.n_ctx, n_threads=home.settings.n_threads)
    engine.load(home.registry.served_path(version), version.id)
    todo, pool = cases()
    todo = todo[: args.limit] if args.limit else todo
    rng = random.Random(0)
    print(f"{len(todo)} questions with their note and {args.distractors} distractors, model v{version.id}", flush=True)
    def wanted(form: str) -> bool:
        return not args.forms or form in args.forms.split(",")

    results: dict[str, list] = {"memory off": []}
    for form in [*FORMS, *IN_TURN, *AFTER, *EXCHANGE, "right note only"]:
        if wanted(form):
            results[form] = []
    started = time.perf_counter()
    for n, case in enumerate(todo):
        others = rng.sample([p for p in pool if p != case["note"]], args.distractors)
        notes = [case["note"], *others]
        rng.shuffle(notes)
        question = {"role": "user", "content": case["question"]}
        runs = {"memory off": [{"role": "system", "content": SYSTEM}, question]}
        for form, block in FORMS.items():
            if wanted(form):
                runs[form] = [{"role": "system", "content": f"{SYSTEM} {block(notes)}"}, question]
        for form, block in IN_TURN.items():
            if wanted(form):
                runs[form] = [{"role": "system", "content": SYSTEM},
                              {"role": "user", "content": f"{block(notes)}\n\n{case['question']}"}]
        for form, block in AFTER.items():
            if wanted(form):
                runs[form] = [{"role": "system", "content": SYSTEM},
                              {"role": "user", "content": f"{case['question']}\n\n{block(notes)}"}]
        for form, block in EXCHANGE.items():
            if wanted(form):
                runs[form] = [{"role": "system", "content": SYSTEM},
                              {"role": "user", "content": "What do you remember about me?"},
                              {"role": "assistant", "content": block(notes)}, question]
        if wanted("right note only"):
            runs["right note only"] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": (
                f"{retrieve.memory_block([Hit(0, 'fact', case['note'], 1.0)], []).notes}\n\n{case['question']}")}]
        for form, messages in runs.items():
            answer = ask(engine, messages)
            ok = any(a.lower() in answer.lower() for a in case["answers"])
            results[form].append({"question": case["question"], "answer": answer, "right": ok})
        if (n + 1) % 10 == 0:
            print(f"  {n + 1}/{len(todo)} questions, {time.perf_counter() - started:.0f} s", flush=True)
    print(f"\n{'form':<16} answered from the note")
    for form, rows in results.items():
        right = sum(r["right"] for r in rows)
        print(f"{form:<16} {right}/{len(rows)} ({right / len(rows):.0%})")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1, ensure_ascii=False))
    engine.close()
    home.close()


if __name__ == "__main__":
    main()
