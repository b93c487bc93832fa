"""The checks a new version passes before it is served: it loads in llama.cpp, it answers what it
was taught without memory in the prompt (acquisition), and it has not drifted from its parent on
general prompts shipped with the package (mean KL divergence of next-token distributions over the
parent's own answers to them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from clagent.errors import ClagentError
from clagent.updater.dataset import Probe
from clagent.updater.questions import knows


@dataclass
class GateResult:
    passed: bool
    loads: bool = True
    acquisition: float | None = None
    drift: float | None = None
    probes: list[dict] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


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


def check(new_path: Path, parent_path: Path, probes: list[Probe], general: list[tuple[str, str]],
          system_prompt: str, min_acquisition: float, max_drift: float) -> GateResult:
    result = GateResult(passed=False)
    try:
        answers = greedy_answers(new_path, [p.question for p in probes], system_prompt)
    except ClagentError as e:
        result.loads = False
        result.reasons.append(str(e))
        return result
    ok = 0
    for probe, answer in zip(probes, answers):
        hit = knows(answer, probe.expected)
        ok += hit
        result.probes.append({"question": probe.question, "answer": answer, "expected": probe.expected, "ok": hit})
    result.acquisition = ok / len(probes) if probes else None
    result.drift = mean_kl(answer_logprobs(parent_path, general, system_prompt),
                           answer_logprobs(new_path, general, system_prompt))
    if result.acquisition is not None and result.acquisition < min_acquisition:
        result.reasons.append(f"acquisition {result.acquisition:.2f} is below {min_acquisition:.2f}")
    if result.drift > max_drift:
        result.reasons.append(f"general drift (mean KL) {result.drift:.3f} is above {max_drift:.3f}")
    result.passed = not result.reasons
    return result
