"""Choosing which memories go into a prompt, and how they are written there. Pure functions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from clagent.memory.words import STOPWORDS

# Chosen by bench/note_reading.py on SmolLM2-135M (64 questions, the right note among two others):
# a plain list of third-person notes put into the user's turn, just before the question, was answered
# from 64 % of the time; the same notes in the system prompt 47 %, the earlier quoted system-prompt
# form with a header and a footer 41 %, second person 41 %.
FACTS_HEADER = "Notes about the user:"
INSTRUCTIONS_HEADER = "The user's standing requests (follow them unless asked otherwise):"

_SPECIAL = re.compile(r"<\|[^|>]{0,40}\|>|<\/?s>|\[/?INST\]")


@dataclass
class Hit:
    id: int
    kind: str
    text: str
    similarity: float
    updated_at: str = ""
    use_count: int = 0


def second_person(text: str) -> str:
    """A note as said to the user: "The user's sister lives in Porto." -> "Your sister lives in Porto."."""
    t = re.sub(r"\bthe user's\b", "your", text, flags=re.I)
    t = re.sub(r"\bthe user and their (family|team|partner)\b", r"you and your \1", t, flags=re.I)
    t = re.sub(r"\bthe user (is|was|has|does)\b", lambda m: "you " + {"is": "are", "was": "were", "has": "have",
                                                                         "does": "do"}[m[1].lower()], t, flags=re.I)
    t = re.sub(r"\bthe user (\w+?)(?:ies)\b", r"you \1y", t, flags=re.I)
    t = re.sub(r"\bthe user (\w+?(?:sh|ch|x|ss|o))es\b", r"you \1", t, flags=re.I)
    t = re.sub(r"\bthe user (\w+?[^s])s\b", r"you \1", t, flags=re.I)
    t = re.sub(r"\bthe user\b", "you", t, flags=re.I)
    return t[:1].upper() + t[1:]


def first_person(text: str) -> str:
    """A note in the user's own voice: "The user's sister lives in Porto." -> "My sister lives in Porto."."""
    t = second_person(text)
    t = re.sub(r"\byour\b", "my", t, flags=re.I)
    t = re.sub(r"\byou are\b", "I am", t, flags=re.I)
    t = re.sub(r"\byou were\b", "I was", t, flags=re.I)
    t = re.sub(r"\byou\b", "I", t, flags=re.I)
    t = re.sub(r"\bI and my\b", "my", t)
    return t[:1].upper() + t[1:]


def quote(text: str, limit: int = 400) -> str:
    """A memory as inert data: one line, no chat-template tokens, no way to close its quotes."""
    text = _SPECIAL.sub(" ", text)
    text = re.sub(r"[\x00-\x1f\x7f]+", " ", text)
    text = re.sub(r"\s+", " ", text).strip().replace('"', "'")
    if len(text) > limit:
        text = text[: limit - 3].rstrip() + "..."
    return f'"{text}"'


_QUESTION_WORDS = set("""what whats who whose where when which how why do does did is are was were can could would
will should tell remind remember know recall say again please me my i mine we our us you your yours name called
kind type sort much many long old time day now""".split())
# "Give me a word that rhymes with cat" asks nothing about the user; "my", "I" and "we ... our" do.
_PERSONAL = re.compile(r"\b(?:i|my|mine|myself|i'm|i've|i'd|i'll|me)\b", re.I)
_ASKED_OF_ME = re.compile(r"\b(?:give|tell|show|help|let|teach|remind|send|find|make|write|get) me\b", re.I)
_PLURAL_PERSONAL = re.compile(r"\b(?:we|us|our|ours|we're|we've)\b", re.I)
_GENERIC_OUR = re.compile(r"\b(?:solar system|planet|earth|world|galaxy|universe|species|humans?|humanity|mankind|"
                          r"society|ancestors)\b|\bwe (?:call|say)\b", re.I)
_ASKS_NAME = re.compile(r"\b(?:name|called|who|which (?:city|town|country|company|school|team|band|language))\b", re.I)
_ASKS_NUMBER = re.compile(r"\b(?:how (?:old|many|much|long|far|often|tall|big)|when|what time|what year|which year|"
                          r"what date|number|code|combination|pin|how fast)\b", re.I)


def _stem(word: str) -> str:
    for suffix in ("ing", "ies", "es", "ed", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def terms(text: str) -> set[str]:
    """Content words, crudely stemmed, for matching a question against a memory."""
    words = re.findall(r"[a-z0-9]+", text.lower().replace("'s ", " "))
    return {_stem(w) for w in words if w not in STOPWORDS and w not in _QUESTION_WORDS and len(w) > 1}


# Relatives named as people are named ("when is Dad's seventieth?"): personal without "my". A kin word
# after an article or another owner ("a sister", "her mother") is not about the user.
_KIN_AS_NAME = re.compile(r"(?<!\ba )(?<!\bthe )(?<!\byour )(?<!\bhis )(?<!\bher )(?<!\btheir )(?<!\bits )"
                          r"\b(?:mum|mom|mam|dad|papa|mama|grandma|grandpa|granny|gran|nana|nan)\b(?!\s+(?:jokes?|bod|jeans))",
                          re.I)


def is_personal(query: str, names: set[str] | frozenset = frozenset()) -> bool:
    """The question is about the user's life: it says I, my or we, names a relative ("when is Dad's
    seventieth?"), or names someone or something the user has spoken of (``names``: "kevin")."""
    if _PERSONAL.search(_ASKED_OF_ME.sub("", query)):
        return True
    if _KIN_AS_NAME.search(query):
        return True
    if names and set(re.findall(r"[a-z][\w'-]+", query.lower().replace("'s ", " "))) & names:
        return True
    return bool(_PLURAL_PERSONAL.search(query)) and not _GENERIC_OUR.search(query)


def _answers_kind(query: str, memory: str) -> bool:
    """The memory holds the kind of thing asked for: a name for "what's ... called", a number or a
    date for "how old", "when"."""
    names = [t for i, t in enumerate(re.findall(r"[A-Za-z][\w'-]*", memory)) if i > 0 and t[0].isupper()
             and t.lower() not in query.lower() and t not in ("The", "I")]
    if _ASKS_NAME.search(query) and (names or re.search(r"\b(?:called|named)\b", memory)):
        return True
    number = re.search(r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
                       r"january|february|march|april|may|june|july|august|september|october|november|december)\b",
                       memory, re.I)
    return bool(_ASKS_NUMBER.search(query) and number)


def relevant(query: str, hits: list[Hit], texts: dict[int, str], personal_floor: float, general_floor: float,
             lexical_weight: float, aliases: dict[str, set[str]] | None = None,
             idf: Callable[[str], float] | None = None, names: set[str] | frozenset = frozenset()) -> list[Hit]:
    """The hits that bear on the query, their similarity raised by what they share with it.

    A question about the user ("where does my sister live?") takes notes scoring at least
    ``personal_floor``; shared words, names the user gave to what the question names (``aliases``:
    "my dog" -> "waffles") and holding the kind of thing asked for (a name, a number) raise a
    note's score. Any other question ("what is the capital of France?") takes a note only where it
    shares words with it and is about as close as a restatement (``general_floor``): notes put into
    unrelated questions are echoed by small models ("the sky is green")."""
    q_terms, personal = terms(query), is_personal(query, names)
    expanded = set(q_terms)
    for noun, known in (aliases or {}).items():
        if re.search(rf"\b(?:my|our)\s+(?:\w+\s+)?{re.escape(noun)}\b", query, re.I):
            expanded |= known
    out = []
    for h in hits:
        text = texts.get(h.id, h.text)
        m_terms = terms(text)
        shared = expanded & m_terms
        weight = idf or (lambda term: 1.0)
        score = h.similarity + lexical_weight * sum(map(weight, shared)) / max(1.0, sum(map(weight, q_terms)))
        if shared - q_terms:
            score += lexical_weight  # it names what the question asks about by the user's own name for it
        if personal:
            score += lexical_weight * _answers_kind(query, text)
            if len(terms(h.text)) <= 2:
                score -= lexical_weight  # "The user works.": too little in it to answer anything
            keep = score >= personal_floor
        else:
            keep = bool(shared) and score >= general_floor
        if keep:
            out.append(Hit(h.id, h.kind, h.text, score, h.updated_at, h.use_count))
    return out


_NAMING = re.compile(r"\b(?:my|our)\s+(?:[a-z-]+\s+){0,2}?(?P<noun>[a-z-]+)(?:,\s*|\s+(?:is called|is named|called|named|"
                     r"whose name is|is)\s+|\s+)(?P<name>[A-Z][\w-]+)", re.I)


_NAMED_AS = re.compile(r"\b(?P<name>[A-Z][\w-]+)(?:'s| is)\s+(?:my|our)\s+(?P<noun>[a-z-]+)\b|"
                       r"\b(?P<name2>[A-Z][\w-]+) \((?:my|our) (?:[a-z-]+ )?(?P<noun2>[a-z-]+)\)")


def naming(text: str) -> list[tuple[str, str]]:
    """(noun, name) pairs a memory gives: "our beagle Waffles", "my sister is called Marta",
    "Jonas is my partner", "Marta (my sister)"."""
    out = []
    for m in _NAMED_AS.finditer(text):
        name, noun = (m["name"], m["noun"]) if m["name"] else (m["name2"], m["noun2"])
        if name.lower() not in STOPWORDS:
            out.append((noun.lower(), name.lower()))
    for m in _NAMING.finditer(text):
        name = m["name"]
        if name[0].isupper() and name.lower() not in STOPWORDS and m["noun"].lower() not in STOPWORDS:
            out.append((m["noun"].lower(), name.lower()))
    return out


def rank(hits: list[Hit], floor: float, margin: float) -> list[Hit]:
    """Hits at least ``floor`` similar and within ``margin`` of the best one, best first.

    Similarity decides; recency, then use, break ties (similarities equal to two decimals)."""
    kept = [h for h in hits if h.similarity >= floor]
    if not kept:
        return []
    best = max(h.similarity for h in kept)
    kept = [h for h in kept if h.similarity >= best - margin]
    return sorted(kept, key=lambda h: (round(h.similarity, 2), h.updated_at, h.use_count), reverse=True)


def pack(facts: list[Hit], instructions: list[Hit], max_items: int, budget_tokens: int,
         count_tokens: Callable[[str], int]) -> tuple[list[Hit], list[Hit]]:
    """Take instructions (newest first), then facts (best first), while they fit the budget."""
    chosen_facts: list[Hit] = []
    chosen_instr: list[Hit] = []
    used = 0
    for group, chosen in ((instructions, chosen_instr), (facts, chosen_facts)):
        for h in group:
            if len(chosen_facts) + len(chosen_instr) >= max_items:
                break
            header = FACTS_HEADER if chosen is chosen_facts and not chosen_facts else ""
            if chosen is chosen_instr and not chosen_instr:
                header = INSTRUCTIONS_HEADER
            cost = count_tokens(f"- {quote(h.text)}\n{header}")
            if used + cost > budget_tokens:
                continue
            used += cost
            chosen.append(h)
    return chosen_facts, chosen_instr


class Block(str):
    """The memory text of one prompt: ``notes`` (facts, preferences, lessons) go into the user's
    turn, ``instructions`` into the system prompt. As a string: both, for counting tokens."""

    notes: str
    instructions: str

    def __new__(cls, notes: str = "", instructions: str = ""):
        block = super().__new__(cls, "\n\n".join(p for p in (notes, instructions) if p))
        block.notes, block.instructions = notes, instructions
        return block


def note_line(text: str) -> str:
    """A memory as one inert line: no chat-template tokens, no line breaks."""
    return quote(text)[1:-1]


def memory_block(facts: list[Hit], instructions: list[Hit]) -> Block:
    notes = "\n".join([FACTS_HEADER, *(f"- {note_line(h.text)}" for h in facts)]) if facts else ""
    standing = "\n".join([INSTRUCTIONS_HEADER, *(f"- {quote(h.text)}" for h in instructions)]) if instructions else ""
    return Block(notes, standing)


def with_memory(messages: list[dict], block: str, default_system: str) -> list[dict]:
    """Put the notes into the last user turn, just before what it asks, and standing instructions
    into the system prompt (after the request's own system message, or the default one)."""
    if not block:
        return messages
    notes, standing = (block.notes, block.instructions) if isinstance(block, Block) else ("", str(block))
    messages = list(messages)
    if notes and messages and messages[-1]["role"] == "user":
        messages[-1] = dict(messages[-1], content=f"{notes}\n\n{messages[-1]['content']}")
    elif notes:
        standing = "\n\n".join(p for p in (notes, standing) if p)
    if messages and messages[0]["role"] == "system":
        if standing:
            messages[0] = dict(messages[0], content=f"{messages[0]['content']}\n\n{standing}".strip())
        return messages
    system = " ".join(p for p in (default_system, standing) if p)
    return [{"role": "system", "content": system}, *messages] if system else messages
