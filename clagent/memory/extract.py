"""Find what a user says about themselves and their world, without asking the model.

Rule-based on purpose: a 135M model cannot be trusted to judge what is worth remembering, and
rules are predictable, fast and testable. Each statement becomes a :class:`Candidate`: the text put
into prompts (third person), the text that is embedded (first person, as the user would ask about
it), its kind, and a key naming what it is about, so that a newer statement with the same key
supersedes the older one ("my dog is Rex" ... "my dog is called Biscuit").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KINDS = ("fact", "preference", "lesson", "instruction")


@dataclass(frozen=True)
class Candidate:
    text: str
    index_text: str
    kind: str
    key: str | None
    explicit: bool = False


_LEADING = re.compile(
    r"^(?:(?:oh|ok|okay|well|so|also|and|but|btw|by the way|actually|sorry|no|nope|correction|hmm+|um+|uh+|ah|oops|wait|right|yes|yeah|"
    r"update|just so you know|fyi|for the record|for your information|hey|hi|hello|in fact|"
    r"to be clear|just to be clear|quick correction)\b[\s,:;!-]*)+",
    re.I,
)
_QUESTION_START = re.compile(
    r"^(?:what|who|whom|whose|where|when|why|how|which|do|does|did|is|are|was|were|can|could|"
    r"would|will|should|shall|may|might|have|has|am|tell me|guess|say|write|give|show|explain|"
    r"list|translate|summari[sz]e|describe)\b",
    re.I,
)
_HYPOTHETICAL = re.compile(r"^(?:if|suppose|imagine|pretend|let's say|lets say|assume|what if)\b|\b(?:were|would be|wish)\b", re.I)
_TRAILING = re.compile(
    r"(?:\s*,?\s*(?:not|rather than|instead of)\s+[^,]+$)|(?:\s*,?\s*\b(?:now|anymore|these days|"
    r"by the way|btw|actually|as well|too|though|recently|lately|(?:last|this|next) (?:year|month|week)|"
    r"(?:a (?:few |couple of )?|\d+ |two |three )?(?:years?|months?|weeks?|days?) ago)\s*$)",
    re.I,
)
# Where a second clause starts: "my daughter is Ana and she is 7" keeps "Ana".
_CLAUSE = re.compile(r"\s+(?:and|but|because|since|which|who|so|although)\s+(?:she|he|it|they|i|we|you|that|is|was)\b.*$|"
                     r"\s*[,;(].*$", re.I)
_DATE_WORD = re.compile(r"^(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|mon|tue|wed|thu|fri|sat|sun)", re.I)
_BAD_SUBJECTS = {
    "question", "point", "guess", "problem", "answer", "idea", "concern", "request", "issue",
    "bad", "fault", "pleasure", "turn", "mistake", "apologies", "opinion", "thought", "thoughts",
    "suggestion", "goal here", "message", "prompt", "task", "homework",
}
_BAD_VALUES = re.compile(r"^(?:it|that|this|so|not|there|here|the same|same|wrong|right|correct|fine|ok|okay|unknown)\b", re.I)
_NAME_WORD = r"[A-Z][\w'-]*(?:\s+[A-Z][\w'-]*){0,2}"

_EXPLICIT = re.compile(
    r"^(?:please\s+)?(?:remember|note|keep in mind|don't forget|do not forget|memori[sz]e)"
    r"(?:\s+that)?\s*[:,-]?\s+(.+)$",
    re.I,
)
_INSTRUCTION = re.compile(
    r"^(?:please\s+)?(?:from now on|going forward|in (?:the )?future|always|never|whenever|"
    r"every time|each time)\b",
    re.I,
)


def _clean(s: str) -> str:
    s = re.sub(r"\s+", " ", s).strip()
    return s.strip(" \"'`")


def _third_person(s: str) -> str:
    """Pronouns of the speaker in a fragment -> 'the user'."""
    s = re.sub(r"\bmy\b", "the user's", s, flags=re.I)
    s = re.sub(r"\bmine\b", "the user's", s, flags=re.I)
    s = re.sub(r"\bmyself\b", "the user", s, flags=re.I)
    s = re.sub(r"\bme\b", "the user", s, flags=re.I)
    s = re.sub(r"\bI'm\b|\bI am\b", "the user is", s)
    s = re.sub(r"\bI've\b|\bI have\b", "the user has", s)
    s = re.sub(r"\bI\b", "the user", s)
    return s


def _value(v: str) -> str | None:
    v = _CLAUSE.sub("", _clean(v))
    prev = None
    while prev != v:
        prev = v
        v = _TRAILING.sub("", v).strip(" ,.;:!")
    if not v or len(v) > 100 or _BAD_VALUES.match(v):
        return None
    return v


def _key(*parts: str) -> str:
    """'favourite colour', '|is' -> 'favorite color|is'."""
    k = " ".join(p for p in parts if not p.startswith("|")).lower()
    suffix = "".join(p for p in parts if p.startswith("|"))
    k = k.replace("favourite", "favorite").replace("colour", "color")
    k = re.sub(r"\b(?:the|a|an)\b", " ", k)
    return re.sub(r"\s+", " ", k).strip() + suffix


def _sentence(s: str) -> str:
    s = s[0].upper() + s[1:]
    return s if s.endswith((".", "!")) else s + "."


def _fact(text: str, index: str, key: str | None, kind: str = "fact") -> Candidate:
    return Candidate(_sentence(text), _sentence(index), kind, key)


# (pattern on the cleaned statement, builder) — the first that matches wins.
def _rules():
    def name(m):
        v = _value(m["v"])
        return v and _fact(f"The user's name is {v}", f"my name is {v}", "name")

    def possession(m):
        np_ = _clean(m["np"]).lower()
        attr = m["attr"]
        v = _value(m["v"])
        if not v or np_ in _BAD_SUBJECTS or len(np_.split()) > 4:
            return None
        named = bool(attr) or np_.endswith("'s name") or np_.endswith(" name")
        np_ = re.sub(r"(?:'s)? name$", "", np_).strip()
        if not np_:
            return None
        if not named and re.match(r"^[A-Z]", v) and not re.match(r"^(?:A|An|The)\b", v) and not _DATE_WORD.match(v):
            named = True  # "my dog is Biscuit": a proper name
        if named:
            return _fact(f"The user's {np_} is called {_third_person(v)}", f"my {np_} is called {v}",
                         _key(np_, "|name"))
        verb = m["verb"].lower()
        kind = "preference" if np_.startswith(("favorite", "favourite")) else "fact"
        return _fact(f"The user's {np_} {verb} {_third_person(v)}", f"my {np_} {verb} {v}", _key(np_, "|is"), kind)

    def has_named(m):
        v, noun = _value(m["v"]), _clean(m["noun"]).lower()
        return v and _fact(f"The user has a {noun} called {v}", f"I have a {noun} called {v}", _key(noun, "|name"))

    def has_count(m):
        noun = _clean(m["noun"]).lower()
        return _fact(f"The user has {m['n']} {noun}", f"I have {m['n']} {noun}", _key("number of", noun))

    def lives(m):
        v = _value(m["v"])
        return v and _fact(f"The user lives in {v}", f"I live in {v}", "home location")

    def origin(m):
        v = _value(m["v"])
        return v and _fact(f"The user is from {v}", f"I am from {v}", "origin")

    def born(m):
        v = _value(m["v"])
        return v and _fact(f"The user was born {m['prep'].lower()} {v}", f"I was born {m['prep'].lower()} {v}",
                           _key("born", m["prep"]))

    def works_as(m):
        v = _value(m["v"])
        return v and _fact(f"The user works as {m['art'] or ''}{v}".replace("  ", " "),
                           f"I work as {m['art'] or ''}{v}", "job")

    def works_at(m):
        v = _value(m["v"])
        return v and _fact(f"The user works {m['prep'].lower()} {v}", f"I work {m['prep'].lower()} {v}", "employer")

    def age(m):
        return _fact(f"The user is {m['n']} years old", f"I am {m['n']} years old", "age")

    def allergic(m):
        v = _value(m["v"])
        return v and _fact(f"The user is allergic to {v}", f"I am allergic to {v}", _key("allergic to", v))

    def likes(m):
        v = _value(m["v"])
        if not v:
            return None
        verb = m["verb"].lower()
        return _fact(f"The user {verb}s {_third_person(v)}".replace("preferss", "prefers"),
                     f"I {verb} {v}", _key("opinion on", v), "preference")

    def dislikes(m):
        v = _value(m["v"])
        return v and _fact(f"The user does not like {_third_person(v)}", f"I don't like {v}",
                           _key("opinion on", v), "preference")

    def activity(m):
        v = _value(m["v"])
        if not v:
            return None
        verb = m["verb"].lower()
        key = {"drive": "car", "speak": None, "study": "studies", "play": None}.get(verb, None)
        third = {"study": "studies"}.get(verb, verb + "s")
        return _fact(f"The user {third} {_third_person(v)}", f"I {verb} {v}", key or _key(verb, v))

    def is_a(m):
        v = _value(m["v"])
        if not v or len(v.split()) > 4 or re.match(r"^(?:bit|little|lot|big fan|fan|huge|bit of)\b", v, re.I):
            return None
        return _fact(f"The user is {m['art'].lower()} {v}", f"I am {m['art'].lower()} {v}", _key("is", v))

    return [
        (r"^(?:my name is|my name's|call me|i am called|i'm called|people call me)\s+(?P<v>" + _NAME_WORD + r")", name),
        (r"^my (?P<np>[\w' -]{1,40}?) (?P<verb>is|are|was) (?:actually |really |now |still |in fact )?(?P<attr>called |named )?(?P<v>.+)$", possession),
        (r"^i (?:have|'ve got|have got|own) an? (?P<noun>[\w -]{1,30}?) (?:called|named) (?P<v>.+)$", has_named),
        (r"^i (?:have|'ve got|have got) (?P<n>\d+|two|three|four|five|six|seven|eight|nine|ten) (?P<noun>[\w -]{1,30})$", has_count),
        (r"^i(?:'ve| have)? (?:just |recently )?(?:live|am living|'m living|reside|moved|relocated) (?:in|to) (?P<v>.+)$", lives),
        (r"^i(?:'m| am) (?:living|based) in (?P<v>.+)$", lives),
        (r"^i (?:am|'m|come) from (?P<v>.+)$", origin),
        (r"^i was born (?P<prep>in|on) (?P<v>.+)$", born),
        (r"^i (?:work|am working|'m working) as (?P<art>an? )?(?P<v>.+)$", works_as),
        (r"^i (?:work|am working|'m working) (?P<prep>at|for) (?P<v>.+)$", works_at),
        (r"^i(?:'m| am) (?P<n>\d{1,3})(?: years old| years of age| yo)?$", age),
        (r"^i(?:'m| am) allergic to (?P<v>.+)$", allergic),
        (r"^i (?:really |absolutely |totally )?(?P<verb>like|love|enjoy|adore|prefer) (?P<v>.+)$", likes),
        (r"^i (?:really )?(?:don't|do not|dont) (?:like|enjoy|care for) (?P<v>.+)$", dislikes),
        (r"^i (?:hate|dislike|can't stand|cannot stand) (?P<v>.+)$", dislikes),
        (r"^i (?P<verb>drive|speak|study|play) (?P<v>.+)$", activity),
        (r"^i(?:'m| am) (?P<art>an?) (?P<v>.+)$", is_a),
    ]


_RULES = [(re.compile(p, re.I), f) for p, f in _rules()]
# Only for explicit memories: "remember that the wifi password is X" (in plain chat, "the weather is
# nice" is no memory).
_GENERIC = re.compile(r"^(?P<det>the|our) (?P<np>[\w' -]{1,40}?) (?P<verb>is|are|was) (?P<v>.+)$", re.I)


def split_sentences(text: str) -> list[str]:
    """Sentences, and clauses that start a new statement about the speaker ("... and I live in X")."""
    parts = re.split(r"(?<=[.!?;])\s+|\n+|,?\s+(?:and|but|also|plus)\s+(?=(?:i|my|i'm|i've)\b)", text, flags=re.I)
    return [p.strip() for p in parts if p and p.strip()]


def _statement(s: str) -> Candidate | None:
    s = _LEADING.sub("", s).strip()
    if not s or s.endswith("?") or _QUESTION_START.match(s) or _HYPOTHETICAL.search(s):
        return None
    s = s.rstrip(".!; ")
    s = re.sub(r"\bI['’]m\b", "I am", s, flags=re.I)
    s = re.sub(r"\bI['’]ve\b", "I have", s, flags=re.I)
    if _INSTRUCTION.match(s):
        return Candidate(f'The user asked: "{_sentence(s)}"', _sentence(s), "instruction", None)
    for pattern, build in _RULES:
        m = pattern.match(s)
        if m:
            return build(m) or None
    return None


def extract(text: str) -> list[Candidate]:
    """Memories in one user message: explicit ("remember that ..."), instructions
    ("from now on ..."), and statements about the user."""
    out: list[Candidate] = []
    for sentence in split_sentences(text):
        stripped = _LEADING.sub("", sentence).strip()
        m = _EXPLICIT.match(stripped)
        if m:
            body = _clean(m.group(1)).rstrip(".!; ")
            if not body or body.endswith("?"):
                continue
            found = _statement(body)
            generic = _GENERIC.match(body)
            if found is None and generic and (v := _value(generic["v"])):
                np_ = _clean(generic["np"]).lower()
                found = _fact(f"{generic['det'].capitalize()} {np_} {generic['verb'].lower()} {v}",
                              f"{generic['det'].lower()} {np_} {generic['verb'].lower()} {v}", _key(np_, "|is"))
            if found is not None:
                out.append(Candidate(found.text, found.index_text, found.kind, found.key, explicit=True))
            elif body.lower().startswith("to "):  # "remember to buy milk": a reminder
                out.append(Candidate(_sentence(f"The user wants to remember {_third_person(body)}"),
                                     _sentence(f"remember {body}"), "fact", None, explicit=True))
            else:
                kind = "instruction" if _INSTRUCTION.match(body) else "fact"
                out.append(Candidate(_sentence(_third_person(body)), _sentence(body), kind, None, explicit=True))
            continue
        found = _statement(sentence)
        if found is not None:
            out.append(found)
    return out
