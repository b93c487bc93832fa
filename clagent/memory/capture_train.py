"""Train the capture model on labelled sentences and write clagent/data/capture_model.npz.

    python -m clagent.memory.capture_train [FILE ...] [--out PATH] [--folds 5]

Each FILE is JSON Lines in one of three shapes (tests/data/README.md):

  {"sentences": [{"text": ..., "label": "memory" | "none" | "instruction"}, ...]}   one message
  {"text": ..., "expect": "memory" | "none" | "instruction" | "correction", "values": [...]}
  {"text": ..., "values": [["v1", "v2"], ...]}                                      a long turn
  {"old": ..., "new": ..., "supersedes": ...}                    a supersede pair: two statements

Sentences go through the same examination as in the daemon (clagent/memory/extract.py), so the
model learns from exactly the cues it will see. Out-of-fold predictions are printed as the model's
figures; the threshold a sentence needs to be kept is chosen on the development data (--threshold).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from clagent.memory import linear
from clagent.memory.capture_model import LABELS, CaptureModel, feature_matrix
from clagent.memory.extract import Context, Proposal, examine, propose

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "capture"
PAIRS = DEFAULT_DATA.parent / "supersede"  # both sentences of every pair state something
# A kept false memory costs more than a missed statement: it is put into prompts and echoed.
FALSE_MEMORY_COST = 3.0


def _holds(p: Proposal, values: list[str]) -> bool:
    text = f"{p.text} {p.candidate.text}".lower()
    return any(v.lower() in text for v in values)


def examples(path: Path) -> list[tuple[Proposal, str]]:
    out: list[tuple[Proposal, str]] = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise SystemExit(f"{path}:{n}: not JSON ({e.msg})") from None
        if "sentences" in item:  # one message, labelled sentence by sentence
            ctx = Context()
            for s in item["sentences"]:
                p = examine(s["text"], ctx)
                if p is not None and s["label"] in LABELS:
                    out.append((p, s["label"]))
        elif "old" in item and "new" in item:  # a supersede pair: both sentences state something
            for text in (item["old"], item["new"]):
                out += [(p, "memory") for p in propose(text, None, Context())[:1] if p.take_back is None]
        elif "expect" in item:
            if item["expect"] == "correction":
                out += [(p, "memory") for p in propose(item["text"], None, Context())
                        if p.take_back is None and _holds(p, item["values"])]
                continue
            for p in propose(item["text"], None, Context()):
                if p.take_back is not None:
                    continue
                if item["expect"] == "none":
                    out.append((p, "none"))
                elif _holds(p, item["values"]):
                    out.append((p, item["expect"]))
        elif "values" in item:  # a long turn: sentences holding a fact are memories, the rest is chatter
            facts = [v for group in item["values"] for v in group]
            for p in propose(item["text"], None, Context()):
                if p.take_back is None:
                    out.append((p, "memory" if _holds(p, facts) else "none"))
    return out


def choose_threshold(p_memory: np.ndarray, is_memory: np.ndarray) -> tuple[float, float, float]:
    """The P(memory) threshold with the least cost: missed statements + FALSE_MEMORY_COST x false ones."""
    best = (1e9, 0.5, 0.0, 0.0)
    for t in np.arange(0.2, 0.91, 0.025):
        kept = p_memory >= t
        recall = (kept & is_memory).sum() / max(1, is_memory.sum())
        false = (kept & ~is_memory).sum() / max(1, (~is_memory).sum())
        cost = (1 - recall) + FALSE_MEMORY_COST * false
        if cost < best[0]:
            best = (cost, float(t), float(recall), float(false))
    return best[1:]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", help=f"labelled JSON Lines files (default: every *.jsonl in {DEFAULT_DATA})")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "data" / "capture_model.npz"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--l2", type=float, default=1e-4)
    ap.add_argument("--threshold", type=float, default=0.5,
                    help="P(memory) a sentence needs to be kept (default 0.5: chosen on tests/data/dev with "
                         "bench/memory_eval.py; 0 takes the out-of-fold choice)")
    args = ap.parse_args(argv)
    files = [Path(f) for f in args.files] or [*sorted(DEFAULT_DATA.glob("*.jsonl")), *sorted(PAIRS.glob("*.jsonl"))]
    if not files:
        raise SystemExit("no labelled files given")
    pairs: list[tuple[Proposal, str]] = []
    for f in files:
        found = examples(f)
        print(f"{f}: {len(found)} sentences", flush=True)
        pairs += found
    # A sentence decided by rule teaches nothing: the model never sees it.
    pairs = [(p, label) for p, label in pairs if not p.forced]
    from clagent.memory.embedder import Embedder
    print(f"embedding {len(pairs)} sentences ...", flush=True)
    vectors = Embedder().encode([p.text for p, _ in pairs])
    x = feature_matrix([p for p, _ in pairs], vectors)
    y = np.array([LABELS.index(label) for _, label in pairs])
    print("labels: " + ", ".join(f"{name} {int((y == i).sum())}" for i, name in enumerate(LABELS)), flush=True)
    print(f"{args.folds}-fold cross-validation ...", flush=True)
    probs = linear.out_of_fold(x, y, len(LABELS), args.folds, l2=args.l2)
    threshold, recall, false = choose_threshold(probs[:, 1], y == 1)
    rules = np.array([LABELS.index(p.rule) for p, _ in pairs])
    r_recall = ((rules == 1) & (y == 1)).sum() / max(1, (y == 1).sum())
    r_false = ((rules == 1) & (y != 1)).sum() / max(1, (y != 1).sum())
    ins = probs[:, 2] >= 0.5
    print(f"out of fold: memory threshold {threshold:.3f}: recall {recall:.1%}, false memories {false:.1%} "
          f"(the rules alone: recall {r_recall:.1%}, false {r_false:.1%}); instructions found "
          f"{(ins & (y == 2)).sum()}/{(y == 2).sum()}, wrongly {(ins & (y != 2)).sum()}")
    # The training sentences are the hard cases on purpose, so the out-of-fold choice is stricter than
    # what everyday messages need: the threshold is chosen on the development data instead.
    threshold = args.threshold or threshold
    print(f"fitting on everything, memory threshold {threshold:.3f} ...", flush=True)
    model = CaptureModel(*linear.fit(x, y, len(LABELS), l2=args.l2), memory_threshold=threshold)
    model.save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
