"""The fast memory measured on a folder of labelled data, without the chat model.

    .venv/bin/python bench/memory_eval.py [--data tests/data/heldout] [--show-misses] [--json FILE]

The folder may hold any of (formats in tests/data/README.md):

  corpus.jsonl       sentences that must / must not become memories, corrections, instructions
  long_turns.jsonl   long chatty messages with zero, one or two facts
  conversation*.json multi-session conversations and first-person questions about them
  unrelated.json     everyday memories and general questions that have nothing to do with them

Everything goes through the real memory manager; what each figure means is in
clagent/memory/evaluation.py.

``--show-misses`` prints every failure: use it on development data only, never on the held-out
folder, or the held-out figures stop meaning anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clagent.memory.evaluation import evaluate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT / "tests" / "data" / "dev"), help="folder of labelled data")
    ap.add_argument("--show-misses", action="store_true", help="print every failure (development data only)")
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args()
    folder = Path(args.data)
    print(f"fast memory on {folder} ...", flush=True)
    results = evaluate(folder, args.show_misses)
    for name, figures in results.items():
        if isinstance(figures, dict):
            shown = {k: (f"{v:.1%}" if isinstance(v, float) else v) for k, v in figures.items() if k != "by_category"}
            print(f"{name:>14}: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
            if "by_category" in figures:
                print(" " * 16 + "by category: " + ", ".join(f"{k} {v}" for k, v in figures["by_category"].items()))
    print(f"{'':>14}  ({results['seconds']} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
