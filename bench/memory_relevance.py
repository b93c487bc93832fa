"""Which notes go into a prompt: the relevance rule chosen by measurement.

    .venv/bin/python bench/memory_relevance.py [--out bench/results/memory_relevance.json]

Two stores are built through the real memory manager (MiniLM, SQLite): the multi-session
conversation of tests/data/dev/conversation3.json (every user turn learned, as the daemon does),
and the everyday memories of tests/data/dev/unrelated2.json. For every combination of the
settings swept it reports

  retrieved  share of questions about the user whose answer is among the notes injected
  injected   share of general questions (nothing to do with the user) that got any note

and then the figures of the current defaults. Target: injected <= 10 %, retrieved >= 70 %.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clagent.config import Settings  # noqa: E402
from clagent.memory import db as dbmod  # noqa: E402
from clagent.memory import store  # noqa: E402
from clagent.memory.embedder import Embedder  # noqa: E402
from clagent.memory.manager import MemoryManager  # noqa: E402

DATA = ROOT / "tests" / "data"


def tokens(text: str) -> int:
    return len(text) // 4 + 1


def conversation_store(folder: Path, embedder: Embedder) -> MemoryManager:
    conv = json.loads((DATA / "dev" / "conversation3.json").read_text())
    m = MemoryManager(dbmod.connect(folder / "conv.db"), Settings(), embedder)
    m.load()
    for n, session in enumerate(conv["sessions"]):
        said_on = date.fromisoformat(session["date"])
        for turn in session["turns"]:
            if turn["role"] == "user":
                m.learn_from_message(turn["content"], f"s{n}", said_on, conversation=f"session-{n}")
    return m


def unrelated_store(folder: Path, embedder: Embedder) -> MemoryManager:
    data = json.loads((DATA / "dev" / "unrelated2.json").read_text())
    m = MemoryManager(dbmod.connect(folder / "unrelated.db"), Settings(), embedder)
    m.load()
    for text in data["memories"]:
        m.learn_from_message(text, "u")
    return m


def has_answer(texts: list[str], answers: list[str]) -> bool:
    return any(a.lower() in t.lower() for t in texts for a in answers)


def measure(conv: MemoryManager, unrel: MemoryManager, conv_q, gen_q, settings: Settings) -> dict:
    retrieved = sum(has_answer([h.text for h in conv.recall(q, tokens, v, settings).used], answers)
                    for q, answers, v in conv_q)
    # general questions against both stores: a note about the user must not follow them around
    injected = sum(bool(unrel.recall(q, tokens, v, settings).used) or bool(conv.recall(q, tokens, v, settings).used)
                   for q, v in gen_q)
    return {"retrieved": retrieved / len(conv_q), "injected": injected / len(gen_q)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="write the sweep as JSON here")
    args = ap.parse_args()
    embedder = Embedder()
    embedder.warm_up()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        print("building the conversation store (every user turn of 8 sessions) ...", flush=True)
        conv = conversation_store(Path(tmp), embedder)
        unrel = unrelated_store(Path(tmp), embedder)
        print(f"  {store.counts(conv.db)['total_active']} + {store.counts(unrel.db)['total_active']} memories "
              f"in {time.perf_counter() - t0:.1f} s", flush=True)
        conv_data = json.loads((DATA / "dev" / "conversation3.json").read_text())
        gen_data = json.loads((DATA / "dev" / "unrelated2.json").read_text())
        conv_q = [(q["question"], q["answers"], embedder.encode_one(q["question"])) for q in conv_data["questions"]]
        gen_q = [(q["question"], embedder.encode_one(q["question"])) for q in gen_data["questions"]]
        active = [r["text"] for r in store.listing(conv.db, "active", None, 100000)]
        captured = sum(has_answer(active, q["answers"]) for q in conv_data["questions"]) / len(conv_q)
        print(f"captured: {captured:.0%} of the {len(conv_q)} asked facts are in an active memory")
        grid = {"memory_min_similarity": [0.25, 0.3, 0.35, 0.4, 0.45],
                "memory_general_similarity": [0.65, 0.75, 0.85],
                "memory_lexical_weight": [0.0, 0.1, 0.2, 0.3],
                "memory_margin": [0.15, 0.25, 0.35]}
        rows = []
        print(f"{'min':>5} {'general':>7} {'lexical':>7} {'margin':>6} {'retrieved':>9} {'injected':>8}")
        for values in itertools.product(*grid.values()):
            s = dataclasses.replace(Settings(), **dict(zip(grid, values)))
            r = {**dict(zip(grid, values)), **measure(conv, unrel, conv_q, gen_q, s)}
            rows.append(r)
        rows.sort(key=lambda r: (r["injected"] <= 0.1, r["retrieved"], -r["injected"]), reverse=True)
        for r in rows[:15]:
            print(f"{r['memory_min_similarity']:>5} {r['memory_general_similarity']:>7} "
                  f"{r['memory_lexical_weight']:>7} {r['memory_margin']:>6} {r['retrieved']:>9.0%} {r['injected']:>8.0%}")
        default = measure(conv, unrel, conv_q, gen_q, Settings())
        print(f"\ndefaults: captured {captured:.0%}, retrieved {default['retrieved']:.0%} (target >= 70 %), "
              f"general questions with notes {default['injected']:.0%} (target <= 10 %)")
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps({"captured": captured, "defaults": default, "sweep": rows}, indent=1))


if __name__ == "__main__":
    main()
