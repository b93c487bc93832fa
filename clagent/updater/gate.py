"""The checks a new version passes before it is served: it loads in llama.cpp, it answers what it
was taught without memory in the prompt (acquisition), it still answers the earlier memories its
parent held (retention, asked in phrasings never trained: the verification of every memory), and it
has not drifted on general prompts shipped with the package (mean KL divergence of next-token
distributions over the reference model's own answers to them), neither from its parent nor, in
total, from the base version."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from clagent.errors import ClagentError
from clagent.updater.dataset import Check, Probe
from clagent.updater.questions import knows


@dataclass
class GateResult:
    passed: bool
    loads: bool = True
    acquisition: float | None = None
    drift: float | None = None
    base_drift: float | None = None  # cumulative: from the base version of the lineage
    retention: float | None = None  # earlier memories the parent held that this version still answers
    retention_of: int = 0  # how many earlier memories that share is over
    held: int | None = None  # memories verified in the weights (phrasing never trained)
    verified: int | None = None  # memories verified
    probes: list[dict] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("checks")  # stored per memory in the database, not in the version's record
        return d


def _open(path: Path, logits_all: bool = False):
    import llama_cpp

    from clagent.daemon.engine import chat_formatter

    try:
        llm = llama_cpp.Llama(model_path=str(path), n_ctx=1024, logits_all=logits_all, verbose=False)
    except Exception as e:  # noqa: BLE001 - llama.cpp's load failures are plain ValueErrors
        raise ClagentError(f"llama.cpp cannot load {path}: {e}") from None
    return llm, chat_formatter(llm, path)


def chat_tokens(llm, fmt, prompt: str, system_prompt: str) -> list[int]:
    messages = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + \
               [{"role": "user", "content": prompt}]
    return llm.tokenize(fmt(messages=messages).prompt.encode(), add_bos=False, special=True)


def greedy_answers(path: Path, prompts: list[str], system_prompt: str, max_tokens: int = 48) -> list[str]:
    llm, fmt = _open(path)
    try:
        out = []
        for p in prompts:
            r = llm.create_completion(prompt=chat_tokens(llm, fmt, p, system_prompt), max_tokens=max_tokens,
                                      temperature=0.0)
            out.append(r["choices"][0]["text"].strip())
        return out
    finally:
        llm.close()


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def answer_logprobs(path: Path, general: list[tuple[str, str]], system_prompt: str) -> list[np.ndarray]:
    """For each (prompt, reference answer): the model's next-token log-probabilities at the
    positions that predict the answer's tokens, the answer fed in (teacher forcing). The reference
    answers are the parent's own greedy answers, so this measures how far behaviour moved."""
    llm, fmt = _open(path, logits_all=True)
    try:
        out = []
        for prompt, answer in general:
            tokens = chat_tokens(llm, fmt, prompt, system_prompt)
            answer_tokens = llm.tokenize(answer.encode(), add_bos=False, special=False)[:48]
            llm.reset()
            llm.eval(tokens + answer_tokens)
            scores = np.array(llm.scores[len(tokens) - 1: len(tokens) + len(answer_tokens)], dtype=np.float64)
            out.append(_log_softmax(scores))
        return out
    finally:
        llm.close()


def mean_kl(parent: list[np.ndarray], new: list[np.ndarray]) -> float:
    """Mean over prompts and positions of KL(parent || new)."""
    kls = []
    for p, q in zip(parent, new):
        kls.append(float((np.exp(p) * (p - q)).sum(axis=-1).mean()))
    return float(np.mean(kls))


def topk_reference(logprobs: list[np.ndarray], k: int = 32) -> dict:
    """A compact reference for drift: the top-k next-token log-probabilities at every position
    (kept so that the drift from the base can be measured after the base's files are pruned)."""
    idx = [np.argsort(-lp, axis=-1)[:, :k] for lp in logprobs]
    return {"idx": idx, "logp": [np.take_along_axis(lp, i, axis=-1) for lp, i in zip(logprobs, idx)]}


def kl_from_reference(ref: dict, new: list[np.ndarray]) -> float:
    """Mean KL(reference || new) over the reference's top-k tokens (the rest of its mass, a few
    percent, is left out: a slight underestimate)."""
    kls = []
    for idx, logp, q in zip(ref["idx"], ref["logp"], new):
        n = min(len(idx), len(q))
        qk = np.take_along_axis(q[:n], idx[:n], axis=-1)
        kls.append(float((np.exp(logp[:n]) * (logp[:n] - qk)).sum(axis=-1).mean()))
    return float(np.mean(kls)) if kls else 0.0


def save_reference(path: Path, general: list[tuple[str, str]], ref: dict) -> None:
    import json

    arrays = {f"idx{i}": a for i, a in enumerate(ref["idx"])}
    arrays.update({f"logp{i}": a.astype(np.float32) for i, a in enumerate(ref["logp"])})
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, general=np.array(json.dumps(general)), **arrays)
    tmp.replace(path)


def load_reference(path: Path) -> tuple[list[tuple[str, str]], dict] | None:
    import json

    try:
        with np.load(path) as z:
            general = [tuple(x) for x in json.loads(str(z["general"]))]
            n = len(general)
            return general, {"idx": [z[f"idx{i}"] for i in range(n)],
                             "logp": [z[f"logp{i}"].astype(np.float64) for i in range(n)]}
    except (OSError, KeyError, ValueError):
        return None


def retention(checks: list[dict], parent_held: set[int]) -> tuple[float | None, int]:
    """Of the earlier memories the parent held, the share these checks answer (None: none held)."""
    earlier = [c for c in checks if c.get("earlier") and c["memory_id"] in parent_held]
    if not earlier:
        return None, 0
    return sum(c["ok"] for c in earlier) / len(earlier), len(earlier)


def check(new_path: Path, parent_path: Path, probes: list[Probe], general: list[tuple[str, str]],
          system_prompt: str, min_acquisition: float, max_drift: float, *, checks: list[Check] = (),
          parent_held: set[int] = frozenset(), min_retention: float = 0.0,
          base: tuple[list[tuple[str, str]], dict] | None = None, max_base_drift: float = float("inf"),
          base_is_parent: bool = False) -> GateResult:
    result = GateResult(passed=False)
    try:
        answers = greedy_answers(new_path, [p.question for p in probes] + [c.question for c in checks],
                                 system_prompt, max_tokens=40)
    except ClagentError as e:
        result.loads = False
        result.reasons.append(str(e))
        return result
    ok = 0
    for probe, answer in zip(probes, answers):
        hit = knows(answer, probe.expected)
        ok += hit
        result.probes.append({"question": probe.question, "answer": answer, "expected": probe.expected, "ok": hit})
    for c, answer in zip(checks, answers[len(probes):]):
        result.checks.append({"memory_id": c.memory_id, "question": c.question, "answer": answer,
                              "ok": knows(answer, c.expected), "earlier": c.earlier})
    if checks:
        result.verified = len(result.checks)
        result.held = sum(c["ok"] for c in result.checks)
    result.retention, result.retention_of = retention(result.checks, set(parent_held))
    result.acquisition = ok / len(probes) if probes else None
    new_on_parent = answer_logprobs(new_path, general, system_prompt)
    result.drift = mean_kl(answer_logprobs(parent_path, general, system_prompt), new_on_parent)
    if base_is_parent:
        result.base_drift = result.drift
    elif base is not None:
        base_general, ref = base
        new_on_base = new_on_parent if base_general == general else answer_logprobs(new_path, base_general,
                                                                                    system_prompt)
        result.base_drift = kl_from_reference(ref, new_on_base)
    if result.acquisition is not None and result.acquisition < min_acquisition:
        result.reasons.append(f"acquisition {result.acquisition:.2f} is below {min_acquisition:.2f}")
    if result.retention is not None and result.retention < min_retention:
        result.reasons.append(f"retention {result.retention:.2f} of {result.retention_of} earlier memories "
                              f"is below {min_retention:.2f}")
    if result.drift > max_drift:
        result.reasons.append(f"general drift (mean KL) {result.drift:.3f} is above {max_drift:.3f}")
    if result.base_drift is not None and result.base_drift > max_base_drift:
        result.reasons.append(f"drift from the base version (mean KL) {result.base_drift:.3f} is above "
                              f"{max_base_drift:.3f}")
    result.passed = not result.reasons
    return result
