"""Turn memories into question/answer pairs, in several phrasings, so that knowledge learned into
the weights does not hang on one wording. Pure functions."""

from __future__ import annotations

import re

STOPWORDS = set("""a an the is are was were be been am i me my mine you your yours he she it they we our
their his her its of to in on at for with by from and or but not no do does did what who whom whose
where when why how which that this these those called named name s there here as so if then than
about into over after before up down out very can could would should will just also""".split())


def second_person(text: str) -> str:
    """'The user's dog is called Biscuit.' -> 'Your dog is called Biscuit.'"""
    t = re.sub(r"\bthe user's\b", "your", text, flags=re.I)
    t = re.sub(r"\bthe user (is|was)\b", lambda m: "you " + ("are" if m.group(1) == "is" else "were"), t, flags=re.I)
    t = re.sub(r"\bthe user has\b", "you have", t, flags=re.I)
    t = re.sub(r"\bthe user does\b", "you do", t, flags=re.I)
    t = re.sub(r"\bthe user (\w+?)s\b", r"you \1", t, flags=re.I)  # "the user lives" -> "you live"
    t = re.sub(r"\bthe user\b", "you", t, flags=re.I)
    return t[0].upper() + t[1:] if t else t


def _subject(key: str) -> str:
    return key.split("|")[0].strip()


def questions_for(kind: str, key: str | None, text: str, question: str | None = None) -> list[str]:
    """Questions a user might ask whose answer is this memory."""
    if kind == "lesson" and question:
        q = question.strip()
        return [q, f"Quick question: {q}", f"{q} Please answer in one sentence."]
    if kind == "instruction":
        return []
    k = (key or "").lower()
    if k == "name":
        return ["What is my name?", "Do you know my name?", "What am I called?"]
    if k == "home location":
        return ["Where do I live?", "Which city do I live in?", "Do you remember where I live?"]
    if k == "origin":
        return ["Where am I from?", "Which country do I come from?"]
    if k == "job":
        return ["What is my job?", "What do I do for a living?", "What is my profession?"]
    if k == "employer":
        return ["Where do I work?", "Who do I work for?"]
    if k == "age":
        return ["How old am I?", "What is my age?"]
    if k == "car":
        return ["What car do I drive?", "What kind of car do I have?"]
    if k.endswith("|name"):
        s = _subject(k)
        return [f"What is my {s} called?", f"What's my {s}'s name?", f"Do you remember my {s}'s name?"]
    if k.endswith("|is"):
        s = _subject(k)
        return [f"What is my {s}?", f"Do you know my {s}?", f"Tell me my {s}."]
    if k.startswith("opinion on "):
        s = k[len("opinion on "):]
        return [f"Do I like {s}?", f"How do I feel about {s}?"]
    if k.startswith("allergic to"):
        return ["What am I allergic to?", "Do I have any allergies?"]
    if k.startswith("number of "):
        s = k[len("number of "):]
        return [f"How many {s} do I have?"]
    return ["What do you know about me?", "Tell me something you remember about me."]


def answer_for(kind: str, text: str, correction: str | None = None) -> str:
    if kind == "lesson" and correction:
        return correction
    return second_person(text)


def expected_words(question: str, answer: str) -> list[str]:
    """The content words an answer must contain to count as knowing it: the answer's words that
    are not in the question and are not function words."""
    q = set(re.findall(r"[a-z0-9]+", question.lower()))
    out = []
    for w in re.findall(r"[a-z0-9]+", answer.lower()):
        if w not in q and w not in STOPWORDS and w not in out and len(w) > 1:
            out.append(w)
    return out


def knows(answer: str, expected: list[str]) -> bool:
    if not expected:
        return True
    found = sum(1 for w in expected if re.search(rf"\b{re.escape(w)}", answer.lower()))
    return found * 2 >= len(expected)
