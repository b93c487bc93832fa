"""What capture costs per user message, in three parts: examining the sentences (splitting, cues,
rewriting: no model), the capture model's decision (embedding the sentences with MiniLM, one matrix
product), and the whole learning step (both, then embedding what is kept, superseding, storing)
that runs beside the generation and never delays the answer.

    .venv/bin/python bench/memory_capture.py [--messages 400]

Messages are the development corpora of tests/data/dev (short sentences and long chatty turns),
cycled. Target: capture < 10 ms p50 per message.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clagent.config import Settings  # noqa: E402
from clagent.memory import db as dbmod  # noqa: E402
from clagent.memory.embedder import Embedder  # noqa: E402
from clagent.memory.capture_model import CaptureModel, decider  # noqa: E402
from clagent.memory.extract import propose  # noqa: E402
from clagent.memory.manager import MemoryManager  # noqa: E402

DATA = ROOT / "tests" / "data" / "dev"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=400)
    args = ap.parse_args()
    short = [json.loads(line)["text"] for line in (DATA / "corpus.jsonl").read_text().splitlines() if line]
    long = [json.loads(line)["text"] for line in (DATA / "long_turns.jsonl").read_text().splitlines() if line]
    embedder = Embedder()
    embedder.warm_up()
    decide = decider(CaptureModel.load(), embedder.encode)
    with tempfile.TemporaryDirectory() as tmp:
        manager = MemoryManager(dbmod.connect(Path(tmp) / "m.db"), Settings(), embedder)
        manager.load()
        for name, texts in (("short messages", short), ("long chatty turns", long)):
            extract_ms, decide_ms, learn_ms = [], [], []
            for i in range(args.messages):
                text = texts[i % len(texts)]
                t0 = time.perf_counter()
                proposals = propose(text)
                extract_ms.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                decide(proposals)
                decide_ms.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                manager.learn_from_message(text, f"bench-{i}", conversation="bench")
                learn_ms.append((time.perf_counter() - t0) * 1000)
                if (i + 1) % 100 == 0:
                    print(f"  {name}: {i + 1}/{args.messages}", flush=True)
            capture = [a + b for a, b in zip(extract_ms, decide_ms)]
            print(f"{name:<18} examine p50 {statistics.median(extract_ms):.2f} ms; model decision p50 "
                  f"{statistics.median(decide_ms):.2f} ms; capture p50 {statistics.median(capture):.1f} ms, "
                  f"p99 {pct(capture, 99):.1f} ms; whole learning step (capture, embed, supersede, store) p50 "
                  f"{statistics.median(learn_ms):.1f} ms, p99 {pct(learn_ms, 99):.1f} ms", flush=True)


if __name__ == "__main__":
    main()
