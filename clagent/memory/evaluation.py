"""The fast memory measured on a folder of labelled data, without the chat model: what
bench/memory_eval.py prints and the memory tests assert. Formats: tests/data/README.md.

Everything goes through the real memory manager (MiniLM embeddings, SQLite):

  capture recall     statements whose values are held by what they stored
  false memories     sentences that must not become memories, and stored something
  corrections        new value held, and no active memory still stating the old one
  long turns         facts captured inside long messages; fact-free turns that stored anything
  conversation       asked facts captured; answer among the notes recalled for the question;
                     old (superseded) values among the notes
  unrelated          general questions that got any note (against every personal store built)
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from datetime import date
from pathlib import Path

from clagent.config import Settings
from clagent.memory import db as dbmod
from clagent.memory import store
from clagent.memory.embedder import Embedder
from clagent.memory.manager import MemoryManager

SAID_ON = date(2026, 11, 18)
# An old value may stay inside a memory that says it no longer holds ("moved from Porto to Lisbon").
TAKEN_BACK = re.compile(r"\b(?:not|n't|no longer|any ?more|any longer|sold|traded|used to|instead|rather than|left|"
                        r"quit|moved|from .+ to|ditched|dropped|gave up|got rid of|switched|changed|replaced|before|"
                        r"migrated|stopped|renamed?|formerly|previously|old|was)\b", re.I)


def tokens(text: str) -> int:
    return len(text) // 4 + 1


def holds(texts: list[str], value: str) -> bool:
    return any(value.lower() in t.lower() for t in texts)


def any_answer(texts: list[str], answers: list[str]) -> bool:
    return any(re.search(rf"(?<!\w){re.escape(a)}(?!\w)", t, re.I) for t in texts for a in answers)


def active_texts(m: MemoryManager) -> list[str]:
    return [r["text"] for r in store.listing(m.db, "active", None, 1_000_000)]


class Run:
    def __init__(self, folder: Path, embedder: Embedder, show: bool):
        self.tmp = folder
        self.embedder = embedder
        self.show = show
        self.n = 0
        self.stores: list[MemoryManager] = []  # every store built, closed at the end
        self.personal: list[MemoryManager] = []  # one person's stores, asked the general questions

    def manager(self, personal: bool = False) -> MemoryManager:
        self.n += 1
        m = MemoryManager(dbmod.connect(self.tmp / f"m{self.n}.db"), Settings(), self.embedder)
        m.load()
        self.stores.append(m)
        if personal:
            self.personal.append(m)
        return m

    def miss(self, *what) -> None:
        if self.show:
            print("   ", *what)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def corpus(run: Run, items: list[dict]) -> dict:
    """Each sentence in a store of its own: capture is judged on the sentence, not on what others did."""
    m = run.manager()
    pos = neg = missed = false = instr_ok = instr_n = 0
    by_category: dict[str, list[int]] = {}
    for item in items:
        if item["expect"] == "correction":
            continue
        said = date.fromisoformat(item["said_at"]) if item.get("said_at") else SAID_ON
        added = m.learn_from_message(item["text"], item["id"], said, conversation=item["id"])
        texts = [a.memory["text"] for a in added]
        cat = by_category.setdefault(item["category"], [0, 0])
        cat[1] += 1
        if item["expect"] == "none":
            neg += 1
            if added:
                false += 1
                cat[0] += 1
                run.miss("FALSE", repr(item["text"]), "->", texts)
            continue
        pos += 1
        ok = bool(added) and all(holds(texts, v) for v in item["values"])
        if item["expect"] == "instruction":
            instr_n += 1
            is_instr = any(a.memory["kind"] == "instruction" for a in added)
            instr_ok += ok and is_instr
        if ok:
            cat[0] += 1
        else:
            missed += 1
            run.miss("MISSED", repr(item["text"]), item["values"], "->", texts)
    out = {"statements": pos, "recall": 1 - missed / max(1, pos), "negatives": neg, "false_rate": false / max(1, neg),
           "instructions": instr_n, "instructions_as_instruction": instr_ok / max(1, instr_n),
           "by_category": {k: f"{v[0]}/{v[1]}" for k, v in sorted(by_category.items())}}
    corrections = [i for i in items if i["expect"] == "correction"]
    if corrections:
        m = run.manager()
        wrong = stale = 0
        for item in corrections:
            conv = item["id"]
            m.learn_from_message(item["setup"], item["id"] + "-setup", SAID_ON, conversation=conv)
            m.learn_from_message(item["text"], item["id"], SAID_ON, conversation=conv)
            texts = active_texts(m)
            new_ok = all(holds(texts, v) for v in item["values"])
            still = [t for t in texts for v in item["stale"]
                     if re.search(rf"(?<!\w){re.escape(v)}(?!\w)", t, re.I) and not TAKEN_BACK.search(t)]
            wrong += not new_ok
            stale += bool(still)
            if not new_ok or still:
                run.miss("CORRECTION", repr(item["setup"]), "->", repr(item["text"]),
                         "new held" if new_ok else "NEW NOT HELD", "stale:", still)
        out.update(corrections=len(corrections), new_value_held=1 - wrong / len(corrections), stale_active=stale)
    return out


def long_turns(run: Run, items: list[dict]) -> dict:
    m = run.manager()
    facts = found = empty = false = 0
    for item in items:
        added = m.learn_from_message(item["text"], item["id"], SAID_ON, conversation=item["id"])
        texts = [a.memory["text"] for a in added]
        if not item["values"]:
            empty += 1
            if added:
                false += 1
                run.miss("FALSE", item["id"], "->", texts)
            continue
        for values in item["values"]:
            facts += 1
            if all(holds(texts, v) for v in values):
                found += 1
            else:
                run.miss("MISSED", values, "in", repr(item["text"][:160]), "->", texts)
    return {"facts": facts, "recall": found / max(1, facts), "fact_free": empty, "false": false}


def conversation(run: Run, data: dict, name: str) -> tuple[dict, MemoryManager]:
    m = run.manager(personal=True)
    for n, session in enumerate(data["sessions"]):
        said = date.fromisoformat(session["date"])
        for k, turn in enumerate(session["turns"]):
            if turn["role"] == "user":  # as a chat client sends it: the session so far before the message
                m.learn_from_message(turn["content"], f"{name}-s{n}-{k}", said, conversation=f"{name}-{n}",
                                     previous=session["turns"][max(0, k - 6):k])
    active = active_texts(m)
    captured = retrieved = stale_noted = 0
    notes_count = 0
    for q in data["questions"]:
        c = any_answer(active, q["answers"])
        notes = [h.text for h in m.recall(q["question"], tokens).used if h.kind != "instruction"]
        notes_count += len(notes)
        r = any_answer(notes, q["answers"])
        s = bool(q.get("stale")) and any_answer(notes, q["stale"]) and not r
        captured += c
        retrieved += r
        stale_noted += s
        if not r:
            run.miss("NOT RETRIEVED" if c else "NOT CAPTURED", repr(q["question"]), q["answers"], "notes:", notes)
    n = len(data["questions"])
    return {"user_turns": sum(t["role"] == "user" for s in data["sessions"] for t in s["turns"]), "memories": len(active),
            "questions": n, "captured": captured / n, "retrieved": retrieved / n, "stale_in_notes": stale_noted,
            "notes_per_question": notes_count / n}, m


def unrelated(run: Run, data: dict) -> dict:
    m = run.manager(personal=True)
    for k, text in enumerate(data["memories"]):
        m.learn_from_message(text, f"u{k}", SAID_ON)
    injected = 0
    for q in data["questions"]:
        # standing instructions go into every prompt by design: only notes count here
        given = [h.text for s in run.personal for h in s.recall(q["question"], tokens).used if h.kind != "instruction"]
        if given:
            injected += 1
            run.miss("INJECTED", repr(q["question"]), "->", given)
    return {"memories_in_stores": sum(len(active_texts(s)) for s in run.personal), "questions": len(data["questions"]),
            "injected": injected / len(data["questions"])}


PARTS = ("corpus", "long_turns", "conversation", "unrelated")


def evaluate(folder: Path, show: bool = False, embedder: Embedder | None = None, parts=PARTS) -> dict:
    """The figures of every file of ``folder`` of the kinds in ``parts``."""
    embedder = embedder or Embedder()
    embedder.warm_up()
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(Path(tmp), embedder, show)
        t0 = time.perf_counter()
        if "corpus" in parts and (folder / "corpus.jsonl").exists():
            results["corpus"] = corpus(run, read_jsonl(folder / "corpus.jsonl"))
        if "long_turns" in parts and (folder / "long_turns.jsonl").exists():
            results["long_turns"] = long_turns(run, read_jsonl(folder / "long_turns.jsonl"))
        for path in sorted(folder.glob("conversation*.json")) if "conversation" in parts else ():
            results[path.stem], _ = conversation(run, json.loads(path.read_text()), path.stem)
        for path in sorted(folder.glob("unrelated*.json")) if "unrelated" in parts else ():
            results[path.stem] = unrelated(run, json.loads(path.read_text()))
        results["seconds"] = round(time.perf_counter() - t0, 1)
        for s in run.stores:
            s.db.conn.close()
    return results


