"""The training set of a consolidation: logged interactions and memories as chat examples in the
model's own chat template, with the loss on assistant tokens only."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from importlib import resources

from clagent.updater.questions import answer_for, expected_words, questions_for


@dataclass
class Example:
    messages: list[dict]  # ends with the assistant message to learn
    source: str  # interaction | correction | memory | lesson | replay


@dataclass
class Probe:
    """A question the new version should now answer without memory (the gate's acquisition check)."""
    question: str
    expected: list[str]
    memory_id: int | None = None


@dataclass
class Dataset:
    examples: list[Example] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    interaction_ids: list[str] = field(default_factory=list)  # consumed: deleted once committed
    memory_ids: list[int] = field(default_factory=list)  # absorbed: marked consolidated once committed
    counts: dict = field(default_factory=dict)


def general_prompts() -> list[str]:
    """Fixed general prompts shipped with the package: drift is measured on them, never on user data."""
    return json.loads(resources.files("clagent").joinpath("data/general_prompts.json").read_text())


def replay_prompts() -> list[str]:
    """Other general prompts, whose parent answers are mixed into training; kept apart from the
    drift prompts so that training does not fit the very answers the gate compares."""
    return json.loads(resources.files("clagent").joinpath("data/replay_prompts.json").read_text())


def build(interactions: list[dict], memories: list[dict], system_prompt: str) -> Dataset:
    ds = Dataset()
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    n_inter = n_corr = n_skip = 0
    for it in interactions:
        ds.interaction_ids.append(it["id"])
        messages = [m for m in it["messages"] if m["role"] in ("system", "user", "assistant")]
        if not messages or messages[-1]["role"] != "user":
            n_skip += 1
            continue
        if not any(m["role"] == "system" for m in messages):
            messages = system + messages
        if it.get("correction"):
            ds.examples.append(Example([*messages, {"role": "assistant", "content": it["correction"]}], "correction"))
            n_corr += 1
        elif it.get("rating") == -1 or it.get("finish_reason") in ("cancelled", "length") or not it.get("response"):
            n_skip += 1  # a bad, cut-off or empty answer is not something to learn
        else:
            ds.examples.append(Example([*messages, {"role": "assistant", "content": it["response"]}], "interaction"))
            n_inter += 1
    n_mem = 0
    for m in memories:
        questions = questions_for(m["kind"], m.get("key"), m["text"], m.get("question"))
        if not questions:
            continue
        correction = m["text"].split(" is: ", 1)[1] if m["kind"] == "lesson" and " is: " in m["text"] else None
        answer = answer_for(m["kind"], m["text"], correction)
        for q in questions:
            ds.examples.append(Example([*system, {"role": "user", "content": q},
                                        {"role": "assistant", "content": answer}],
                                       "lesson" if m["kind"] == "lesson" else "memory"))
        ds.probes.append(Probe(questions[0], expected_words(questions[0], answer), m["id"]))
        ds.memory_ids.append(m["id"])
        n_mem += 1
    ds.counts = {"interactions": len(interactions), "interaction_examples": n_inter, "corrections": n_corr,
                 "skipped": n_skip, "memories": n_mem, "examples": len(ds.examples)}
    return ds


def add_replay(ds: Dataset, prompts_and_answers: list[tuple[str, str]], system_prompt: str) -> None:
    """The parent model's own answers to the general prompts, mixed in so that training on a handful
    of new facts does not pull the whole model towards them (no user data involved)."""
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    for prompt, answer in prompts_and_answers:
        ds.examples.append(Example([*system, {"role": "user", "content": prompt},
                                    {"role": "assistant", "content": answer}], "replay"))
    ds.counts["replay"] = len(prompts_and_answers)
    ds.counts["examples"] = len(ds.examples)


@dataclass
class Tokenized:
    input_ids: list[int]
    labels: list[int]  # -100 where no loss is taken
    source: str = ""
    prompt: str = ""  # the last user message


def tokenize(examples: list[Example], formatter, tokenize_fn, max_len: int) -> list[Tokenized]:
    """Prompt tokens get label -100; the assistant's answer and its end-of-turn token are learned."""
    out = []
    for ex in examples:
        prefix = formatter(messages=ex.messages[:-1]).prompt  # ends with the assistant header
        full_fmt = type(formatter)(template=formatter.template, eos_token=formatter.eos_token,
                                   bos_token=formatter.bos_token, add_generation_prompt=False)
        full = full_fmt(messages=ex.messages).prompt
        if not full.startswith(prefix):
            continue  # a template that rewrites earlier turns: skip rather than mislabel
        p_ids = tokenize_fn(prefix)
        ids = tokenize_fn(full)
        if ids[: len(p_ids)] != p_ids or len(ids) <= len(p_ids):
            continue
        ids = ids[:max_len]
        labels = [-100] * len(p_ids) + ids[len(p_ids):]
        prompt = next((m["content"] for m in reversed(ex.messages[:-1]) if m["role"] == "user"), "")
        out.append(Tokenized(ids, labels[: len(ids)], ex.source, prompt))
    return out


def shuffled(items: list, seed: int) -> list:
    items = list(items)
    random.Random(seed).shuffle(items)
    return items
