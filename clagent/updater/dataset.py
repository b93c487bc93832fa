"""The training set of a consolidation: logged interactions and memories as chat examples in the
model's own chat template, with the loss on assistant tokens only.

What goes in:
- the assistant's replies to logged interactions (not thumbs-down ones; their corrections instead);
- what the user *stated* in those interactions, even when no memory was captured and the reply
  did not repeat it: each statement (about the user, their work, others or the world) becomes
  "statement -> acknowledgement that restates it" and questions about it (questions and requests
  are never trained as statements);
- every new memory, as several question phrasings answered with it (one more phrasing is held out
  for verification); a memory that superseded another is answered with "..., not OLD any more";
- rehearsal: memories absorbed by earlier versions, a few phrasings each;
- notes reading: questions answered from a notes block as the daemon writes it (before the
  question in the user's turn), with distractor notes and notes about invented facts that were
  never trained;
- replay: the parent's own answers to general prompts (added by the pipeline).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from importlib import resources

from clagent.updater.questions import (acknowledgement, answer_for, expected_words, questions_for,
                                       questions_from_sentence, second_person, split_for_training, value_of)


@dataclass
class Example:
    messages: list[dict]  # ends with the assistant message to learn
    source: str  # interaction | correction | statement | memory | lesson | rehearsal | notes | replay


@dataclass
class Probe:
    """A question the new version should now answer without memory (the gate's acquisition check)."""
    question: str
    expected: list[str]
    memory_id: int | None = None


@dataclass
class Check:
    """A memory asked in a phrasing never trained (verification after a consolidation)."""
    memory_id: int
    question: str
    expected: list[str]
    earlier: bool = False  # absorbed by an earlier version (retention), not by this one


@dataclass
class Dataset:
    examples: list[Example] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)
    interaction_ids: list[str] = field(default_factory=list)  # consumed: deleted once committed
    memory_ids: list[int] = field(default_factory=list)  # absorbed: marked consolidated once committed
    rehearsed_ids: list[int] = field(default_factory=list)  # earlier memories trained again
    counts: dict = field(default_factory=dict)


def general_prompts() -> list[str]:
    """Fixed general prompts shipped with the package: drift is measured on them, never on user data."""
    return json.loads(resources.files("clagent").joinpath("data/general_prompts.json").read_text())


def replay_prompts() -> list[str]:
    """Other general prompts, whose parent answers are mixed into training; kept apart from the
    drift prompts so that training does not fit the very answers the gate compares."""
    return json.loads(resources.files("clagent").joinpath("data/replay_prompts.json").read_text())


def user_statements(text: str) -> list[str]:
    """What a user message states, as third-person sentences: about the user ('I live in Lisbon.'
    -> 'The user lives in Lisbon.'), their work ('Our staging server is atlas-7.'), the people
    around them or the world ('The river Oskel flows through Brennhall.'). The fast memory's own
    classifier decides what is a statement, so that the weights and the notes agree on it:
    questions, requests, hypotheticals, instructions, passing moods and platitudes are not."""
    from clagent.memory.extract import extract

    out = []
    for c in extract(text[:4000]):
        if c.kind in ("fact", "preference") and len(c.text) <= 300 and c.text not in out \
                and len(c.text.split()) >= 3:
            out.append(c.text)
    return out


def _system(system_prompt: str) -> list[dict]:
    return [{"role": "system", "content": system_prompt}] if system_prompt else []


def _qa(system: list[dict], question: str, answer: str, source: str) -> Example:
    return Example([*system, {"role": "user", "content": question}, {"role": "assistant", "content": answer}], source)


def memory_questions(m: dict) -> tuple[list[str], str | None]:
    """(trained questions, held-out question) of a memory row."""
    return split_for_training(questions_for(m["kind"], m.get("key"), m["text"], m.get("question")))


def memory_cost(m: dict) -> int:
    """How many training examples a new memory makes (see :func:`build`)."""
    trained, _ = memory_questions(m)
    if m["kind"] == "lesson":
        return 2 * len(trained)
    return len(trained) + (1 if m.get("index_text") else 0)


def memory_answer(m: dict, old_text: str | None = None) -> str:
    correction = m["text"].split(" is: ", 1)[1] if m["kind"] == "lesson" and " is: " in m["text"] else None
    return answer_for(m["kind"], m["text"], correction, old_text)


def memory_expected(m: dict, question: str) -> list[str]:
    """The words an answer to ``question`` must contain: those of the memory's value."""
    answer = memory_answer(m)
    value = answer if m["kind"] == "lesson" else second_person(value_of(m["kind"], m["text"]))
    return expected_words(question, value) or expected_words(question, answer)


def build(interactions: list[dict], memories: list[dict], system_prompt: str, *,
          rehearse: list[dict] = (), notes: bool = True, seed: int = 0) -> Dataset:
    """``memories`` are the new ones (with ``old_text``: the text of the memory each superseded,
    if any); ``rehearse`` the earlier absorbed ones to train again."""
    ds = Dataset()
    system = _system(system_prompt)
    n_inter = n_corr = n_skip = n_stmt = 0
    captured = {m.get("source_interaction") for m in memories if m.get("source_interaction")}
    lessons = {m.get("source_interaction") for m in memories if m["kind"] == "lesson"}
    for it in interactions:
        ds.interaction_ids.append(it["id"])  # consumed (deleted at commit) even when not learned from
        # Its client went away (nobody read it), or a raw completion (text to continue, not a chat turn).
        if it.get("finish_reason") == "cancelled" or it.get("kind", "chat") != "chat":
            n_skip += 1
            continue
        messages = [m for m in it["messages"] if m["role"] in ("system", "user", "assistant")]
        if not messages or messages[-1]["role"] != "user":
            n_skip += 1
            continue
        if not any(m["role"] == "system" for m in messages):
            messages = system + messages
        said = user_statements(messages[-1]["content"])
        stated = [] if it["id"] in captured else said  # a captured one is learned as its memory
        if it.get("correction"):
            ds.examples.append(Example([*messages, {"role": "assistant", "content": it["correction"]}], "correction"))
            n_corr += 1
            if it["id"] not in lessons:  # no lesson memory made of it: its phrasings here, as a lesson's
                q = messages[-1]["content"]
                trained, _ = split_for_training(questions_for("lesson", None, "", q))
                for p in trained[1:] * 2:
                    ds.examples.append(_qa(system, p, it["correction"], "correction"))
        elif said:
            # A statement: learn what the user said, not whatever the model replied to it.
            ack = " ".join(acknowledgement(t) for t in said)
            ds.examples.append(Example([*messages, {"role": "assistant", "content": ack}], "statement"))
        elif it.get("rating") == -1 or it.get("finish_reason") in ("cancelled", "length") or not it.get("response"):
            n_skip += 1  # a bad, cut-off or empty answer is not something to learn
        else:
            ds.examples.append(Example([*messages, {"role": "assistant", "content": it["response"]}], "interaction"))
            n_inter += 1
        for t in stated:
            trained, held = split_for_training(questions_from_sentence(t))
            answer = second_person(t)
            for q in trained[:4]:
                ds.examples.append(_qa(system, q, answer, "statement"))
            if trained:
                ask = held or trained[0]
                ds.probes.append(Probe(ask, expected_words(ask, second_person(value_of("fact", t)))))
            n_stmt += 1
    n_mem = 0
    for m in memories:
        trained, held = memory_questions(m)
        if not trained:
            continue
        answer = memory_answer(m, m.get("old_text"))
        source = "lesson" if m["kind"] == "lesson" else "memory"
        # A lesson corrects one precise answer the model got wrong, which the seeds found is
        # overwritten within a few updates: its phrasings go in twice.
        for q in trained * (2 if m["kind"] == "lesson" else 1):
            ds.examples.append(_qa(system, q, answer, source))
        if m.get("index_text") and m["kind"] != "lesson":  # the user's own words, acknowledged
            ds.examples.append(_qa(system, m["index_text"], acknowledgement(m["text"]), source))
        ds.probes.append(Probe(trained[0], memory_expected(m, trained[0]), m["id"]))
        ds.memory_ids.append(m["id"])
        n_mem += 1
    rng = random.Random(seed)
    n_reh = 0
    for m in rehearse:
        trained, _ = memory_questions(m)
        if not trained:
            continue
        answer = memory_answer(m)
        for q in rng.sample(trained, min(2, len(trained))):  # a couple of phrasings, varied per run
            ds.examples.append(_qa(system, q, answer, "rehearsal"))
        ds.rehearsed_ids.append(m["id"])
        n_reh += 1
    n_notes = 0
    if notes:
        n_notes = add_notes_reading(ds, [m for m in [*memories, *rehearse] if m["kind"] != "lesson"],
                                    system_prompt, rng)
    ds.counts = {"interactions": len(interactions), "interaction_examples": n_inter, "corrections": n_corr,
                 "statements": n_stmt, "skipped": n_skip, "memories": n_mem, "rehearsed": n_reh,
                 "notes_examples": n_notes, "examples": len(ds.examples)}
    return ds


# Invented facts for the notes-reading examples: never trained as facts, only read from notes.
_INVENTED_SUBJECTS = ["neighbour", "cousin", "landlord", "dentist", "piano teacher", "team lead", "goldfish",
                      "grandmother", "flatmate", "godson", "bike", "boat"]
_INVENTED_NAMES = ["Oriel", "Baptiste", "Kestrel", "Marguerite", "Tobiasz", "Ifeoma", "Rosalind", "Quenby",
                   "Anwen", "Leopold", "Saoirse", "Thaddeus", "Zofia", "Emeric", "Philippa", "Caspian"]
_INVENTED_PLACES = ["Ravenglass", "Port Isaac", "Tarrow", "Villeneuve", "Kirkwall", "Ostend", "Marlow", "Bexhill"]


def _invented_fact(rng: random.Random) -> str:
    subject = rng.choice(_INVENTED_SUBJECTS)
    if rng.random() < 0.5:
        return f"The user's {subject} is called {rng.choice(_INVENTED_NAMES)}."
    verb = "lives" if subject not in ("bike", "boat") else "is kept"
    return f"The user's {subject} {verb} in {rng.choice(_INVENTED_PLACES)}."


def notes_messages(question: str, notes: list[str], system_prompt: str) -> list[dict]:
    """The messages the daemon would build: the notes before the question in the user's turn (the
    daemon's own functions, so that training sees exactly what serving shows)."""
    from clagent.memory.retrieve import Hit, memory_block, with_memory

    hits = [Hit(i, "fact", text, 1.0) for i, text in enumerate(notes)]
    block = memory_block(hits, [])
    return with_memory([{"role": "user", "content": question}], block, system_prompt)


def add_notes_reading(ds: Dataset, memories: list[dict], system_prompt: str, rng: random.Random,
                      per_memory: float = 0.5, invented: int = 4) -> int:
    """Answering from the notes block (the fast memory as served): for some of the memories, the
    note among one or two distractor notes; and a few invented facts never trained, so that the
    skill is reading, not recalling."""
    texts = [m["text"] for m in memories]
    picked = rng.sample(memories, int(round(len(memories) * per_memory))) if memories else []
    # Memories are asked in their trained phrasings only: the held-out one stays unseen.
    facts = [(m["text"], memory_answer(m), memory_questions(m)[0]) for m in picked]
    for _ in range(invented):
        t = _invented_fact(rng)
        facts.append((t, second_person(t), questions_from_sentence(t)))
    n = 0
    for text, answer, questions in facts:
        if not questions:
            continue
        others = [t for t in texts if t != text] or [_invented_fact(rng) for _ in range(2)]
        distractors = rng.sample(others, min(len(others), rng.randint(1, 2)))
        notes = distractors + [text]
        rng.shuffle(notes)
        q = rng.choice(questions[:2])
        ds.examples.append(Example([*notes_messages(q, notes, system_prompt),
                                    {"role": "assistant", "content": answer}], "notes"))
        n += 1
    return n


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
