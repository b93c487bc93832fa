"""The capture model: which examined sentences become memories.

A softmax regression over three classes (none, memory, instruction), reading a sentence's
embedding (the MiniLM model the memory already uses), the cues clagent/memory/extract.py collected
and the hand-written rules' verdict. It is trained by ``python -m clagent.memory.capture_train`` on
labelled sentences and shipped as ``clagent/data/capture_model.npz``; using it is a matrix product.
"""

from __future__ import annotations

import re
import threading
import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from clagent.memory.extract import Decider, Proposal
from clagent.memory import linear
from clagent.memory.linear import softmax

LABELS = ("none", "memory", "instruction")
CUES = ("explicit", "told", "question", "ends_question_mark", "instruction_pattern", "answer_words",
        "instruction_rule", "request", "hypothetical", "listener", "chitchat", "unresolved", "echo", "personal",
        "starts_personal", "bad_subject", "short_verbless", "thanks", "deictic_start", "content", "next_move",
        "feeling", "opinion", "platitude", "generic_opening", "specific", "specific_strict", "advice", "sarcasm",
        "fiction", "wish", "kin", "preference", "self_here", "negated", "routine", "placed", "mood_now", "you", "digit", "proper_noun", "verbless", "verb_start", "lowercase", "exclaim",
        "len_1_3", "len_4_8", "len_9_20", "len_21")
RULES = ("rule_none", "rule_memory", "rule_instruction")
HASHED = 4096  # buckets of the words and word pairs a sentence holds
FILE = "capture_model.npz"


def cue_matrix(proposals: Sequence[Proposal]) -> np.ndarray:
    """(n, cues + rules): each proposal's cues and the rules' verdict, one-hot."""
    out = np.zeros((len(proposals), len(CUES) + len(RULES)), dtype=np.float32)
    for i, p in enumerate(proposals):
        for j, name in enumerate(CUES):
            out[i, j] = p.cues.get(name, 0.0)
        out[i, len(CUES) + LABELS.index(p.rule)] = 1.0
    return out


def word_matrix(texts: Sequence[str]) -> np.ndarray:
    """(n, HASHED): the words, word pairs and first word of each text, hashed (crc32: the same in
    every process)."""
    out = np.zeros((len(texts), HASHED), dtype=np.float32)
    for i, text in enumerate(texts):
        ws = re.findall(r"[a-z0-9']+|[?!>=+:]", text.lower())
        for f in [*ws, *(f"{a} {b}" for a, b in zip(ws, ws[1:])), *(["^" + ws[0]] if ws else [])]:
            out[i, zlib.crc32(f.encode()) % HASHED] = 1.0
    return out


def feature_matrix(proposals: Sequence[Proposal], vectors: np.ndarray) -> np.ndarray:
    return np.hstack([np.asarray(vectors, dtype=np.float32), cue_matrix(proposals),
                      word_matrix([p.text for p in proposals])])


@dataclass
class CaptureModel:
    weights: np.ndarray  # (features, labels)
    bias: np.ndarray  # (labels,)
    memory_threshold: float = 0.5  # P(memory) a sentence needs to be kept
    instruction_threshold: float = 0.5

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return softmax(features @ self.weights + self.bias)

    def verdicts(self, proposals: Sequence[Proposal], vectors: np.ndarray) -> list[str]:
        probs = self.probabilities(feature_matrix(proposals, vectors))
        out = []
        for p, (_, p_mem, p_ins) in zip(proposals, probs):
            if p.forced:
                out.append(p.forced)
            elif p_ins >= self.instruction_threshold and p_ins > p_mem and _about_answering(p):
                out.append("instruction")
            elif p_mem >= self.memory_threshold or p.candidate.explicit and p.rule == "memory":
                out.append("memory")
            else:
                out.append("none")
        return out

    def save(self, path) -> None:
        np.savez(path, weights=self.weights, bias=self.bias, cues=np.array(CUES), labels=np.array(LABELS),
                 thresholds=np.array([self.memory_threshold, self.instruction_threshold]))

    @classmethod
    def load(cls, path=None) -> "CaptureModel":
        a = linear.load(FILE, path, cues=CUES, labels=LABELS)
        t = a["thresholds"]
        return cls(a["weights"].astype(np.float32), a["bias"].astype(np.float32), float(t[0]), float(t[1]))


def _about_answering(p: Proposal) -> bool:
    """An instruction is about how to answer: it names answers, the assistant, or the user as "me"."""
    return bool(p.cues.get("answer_words") or p.cues.get("you") or p.cues.get("instruction_pattern")
                or re.search(r"\bme\b", p.text, re.I))


def decider(model: CaptureModel, encode) -> Decider:
    """A verdict per proposal; ``encode`` embeds a list of texts (the memory's embedding model)."""
    def decide(proposals: Sequence[Proposal]) -> list[str]:
        need = [i for i, p in enumerate(proposals) if not p.forced]
        vectors = np.zeros((len(proposals), model.weights.shape[0] - len(CUES) - len(RULES) - HASHED),
                           dtype=np.float32)
        if need:
            vectors[need] = encode([proposals[i].text for i in need])
        return model.verdicts(proposals, vectors)
    return decide


_shared: dict = {}
_lock = threading.Lock()


def default_decider() -> Decider:
    """The packaged model with a process-wide embedding model (for callers without a memory manager)."""
    with _lock:
        if "decide" not in _shared:
            from clagent.memory.embedder import Embedder
            _shared["decide"] = decider(CaptureModel.load(), Embedder().encode)
        return _shared["decide"]
