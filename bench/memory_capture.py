"""What capture costs per user message: the extractor alone, and the whole learning step (extract,
embed, supersede, store) that runs beside the generation.

    .venv/bin/python bench/memory_capture.py [--messages 400]

Messages are the labelled corpora of tests/data (short sentences and long chatty turns), cycled.
Target: extraction < 10 ms p50 per message.
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
from clagent.memory.extract import extract  # noqa: E402
from clagent.memory.manager import MemoryManager  # noqa: E402

DATA = ROOT / "tests" / "data"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=400)
    args = ap.parse_args()
    short = [json.loads(line)["text"] for line in (DATA / "memory_corpus.jsonl").read_text().splitlines() if line]
    long = [json.loads(line)["text"] for line in (DATA / "memory_long_turns.jsonl").read_text().splitlines() if line]
    embedder = Embedder()
    embedder.warm_up()
    with tempfile.TemporaryDirectory() as tmp:
        manager = MemoryManager(dbmod.connect(Path(tmp) / "m.db"), Settings(), embedder)
        manager.load()
        for name, texts in (("short messages", short), ("long chatty turns", long)):
            extract_ms, learn_ms = [], []
            for i in range(args.messages):
                text = texts[i % len(texts)]
                t0 = time.perf_counter()
                extract(text)
                extract_ms.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                manager.learn_from_message(text, f"bench-{i}", conversation="bench")
                learn_ms.append((time.perf_counter() - t0) * 1000)
                if (i + 1) % 100 == 0:
                    print(f"  {name}: {i + 1}/{args.messages}", flush=True)
            print(f"{name:<18} extract p50 {statistics.median(extract_ms):.2f} ms, p99 {pct(extract_ms, 99):.2f} ms; "
                  f"whole learning step (embed + store) p50 {statistics.median(learn_ms):.1f} ms, "
                  f"p99 {pct(learn_ms, 99):.1f} ms", flush=True)


if __name__ == "__main__":
    main()
