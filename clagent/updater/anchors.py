"""The anchors of a consolidation's training: general prompts (``replay_prompts.json``, never the
gate's drift prompts) with the base version's own answers and its next-token distributions over
them, kept in the home's ``references/anchor-v<base>.npz`` from the first consolidation on. Every
later consolidation is held to the base's distributions, not to its parent's, so that the nights do
not add up to a walk away from the base; when the base's anchors are missing (pruned before any
were kept, or the shipped prompts changed) the model before training is the reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from clagent.updater import dataset
from clagent.updater.train import Anchor


def path_for(home_path: Path, base_id: int) -> Path:
    return home_path / "references" / f"anchor-v{base_id}.npz"


def build(prompts_and_answers: list[tuple[str, str]], system_prompt: str, formatter, tokenize_fn,
          max_len: int) -> list[Anchor]:
    """Anchors without reference distributions (the trainer fills them in from the model)."""
    ds = dataset.Dataset()
    dataset.add_replay(ds, prompts_and_answers, system_prompt)
    out = []
    for t in dataset.tokenize(ds.examples, formatter, tokenize_fn, max_len):
        answer_at = next(i for i, label in enumerate(t.labels) if label != -100)
        out.append(Anchor(list(t.input_ids), answer_at - 1))
    return out


def save(path: Path, prompts: list[str], system_prompt: str, anchors: list[Anchor]) -> None:
    """Write then rename: a killed run leaves the old file or none."""
    arrays = {}
    for i, a in enumerate(anchors):
        arrays[f"ids{i}"] = np.asarray(a.input_ids, dtype=np.int32)
        arrays[f"idx{i}"] = np.asarray(a.idx, dtype=np.int32)
        arrays[f"logp{i}"] = np.asarray(a.logp, dtype=np.float32)
    meta = {"prompts": prompts, "system_prompt": system_prompt, "starts": [a.start for a in anchors]}
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, meta=np.array(json.dumps(meta)), **arrays)
    tmp.replace(path)


def load(path: Path, prompts: list[str], system_prompt: str) -> list[Anchor] | None:
    """The stored anchors, or None when there are none for these prompts and system prompt."""
    try:
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("prompts") != prompts or meta.get("system_prompt") != system_prompt:
                return None
            return [Anchor([int(x) for x in z[f"ids{i}"]], int(start), z[f"idx{i}"], z[f"logp{i}"])
                    for i, start in enumerate(meta["starts"])]
    except (OSError, KeyError, ValueError):
        return None
