"""A statement rewritten for the prompt ("I drive a Prius" -> "The user drives a Prius."), and
what it is about: its subject and relation, and the values it takes back. Pure functions."""

from __future__ import annotations

import re

from clagent.memory.cues import PERSON_NOUNS, STOPWORDS, words
from clagent.memory.words import ADVERBS, AUXILIARIES, LEMMA, PAST_FORMS, PREPOSITIONS, VERB_FORMS

MAX_MEMORY_CHARS = 400
def _third_singular(verb: str) -> str:
    low = verb.lower()
    special = {"have": "has", "do": "does", "go": "goes", "be": "is", "am": "is", "don't": "doesn't"}
    if low in special:
        return special[low]
    if low in PAST_FORMS or low in AUXILIARIES or LEMMA.get(low) != low:
        return verb  # a past form, an auxiliary, or a word we do not know as a verb
    if re.search(r"(?:s|sh|ch|x|z|o)$", low):
        return verb + "es"
    if re.search(r"[^aeiou]y$", low):
        return verb[:-1] + "ies"
    return verb + "s"


def _we_means(s: str) -> str:
    if re.search(r"\b(?:married|wedding|honeymoon|engaged|anniversary|dating|met each other|divorced)\b", s, re.I):
        return "the user and their partner"
    if re.search(r"\b(?:legal|codename|code name|colleagues?|team|deploy\w*|sprint|standup|stand-up|release\w*|office|client\w*|project\w*|server\w*|"
                 r"meeting\w*|company|product|customers?|launch\w*|repo\w*|codebase|quarter|q[1-4]|"
                 r"ship\w*|on-?call|stack|kubernetes|jenkins|jira|slack|manager)\b", s, re.I):
        return "the user's team"
    return "the user and their family"


def third_person(s: str) -> str:
    """'I usually wake up at 6 and my wife runs' -> 'The user usually wakes up at 6 and the user's wife runs'."""
    we = _we_means(s)
    team = we == "the user's team"
    s = re.sub(r"\b(?:my|our)\s+(\w+)\s+and\s+I\b", r"the user and the user's \1", s, flags=re.I)
    s = re.sub(r"\bme and my\b", "the user and the user's", s, flags=re.I)

    def first_singular(m: re.Match) -> str:
        contraction, adverbs, verb = m["c"], m["adv"] or "", m["verb"]
        if contraction:
            c = contraction.lower()
            if c in ("'m", "m", " am"):
                return f"the user is{adverbs}{' ' + verb if verb else ''}"
            if c in ("'ve", " have"):
                return f"the user has{adverbs}{' ' + verb if verb else ''}"
            if c == "'d":
                aux = "had" if verb and verb.lower() in {"been", "never", "already", "just"} | PAST_FORMS else "would"
                return f"the user {aux}{adverbs}{' ' + verb if verb else ''}"
            if c == "'ll":
                return f"the user will{adverbs}{' ' + verb if verb else ''}"
        if not verb:
            return "the user" + adverbs
        return f"the user{adverbs} {_third_singular(verb)}"

    s = re.sub(r"\bi(?P<c>'m| am|'ve| have|'d|'ll)?\b(?P<adv>(?:\s+(?:" + "|".join(sorted(ADVERBS)) +
               r"))*)(?:\s+(?P<verb>[a-z][\w']*))?", first_singular, s, flags=re.I)
    s = re.sub(r"\bthe user (?:(\w+) )?\b(is|has|does)n't\b", lambda m: m[0], s)
    s = re.sub(r"\b(?:me|myself)\b", "the user", s, flags=re.I)
    s = re.sub(r"\b(?:my|mine)\b", "the user's", s, flags=re.I)
    if team:
        s = re.sub(r"\bwe(?:'re| are)\b", "the user's team is", s, flags=re.I)
        s = re.sub(r"\bwe(?:'ve| have)\b", "the user's team has", s, flags=re.I)
        s = re.sub(r"\bwe (\w+)\b", lambda m: f"the user's team {_third_singular(m[1])}", s, flags=re.I)
    else:
        s = re.sub(r"\bwe(?='re|'ve|'d|'ll)", we, s, flags=re.I)
        s = re.sub(r"\bwe\b", we, s, flags=re.I)
    s = re.sub(r"\b(?:our|ours)\b", "the user's", s, flags=re.I)
    s = re.sub(r"\bus\b", "the user's team" if team else "the user's family", s)
    s = re.sub(r"\bourselves\b", "themselves", s, flags=re.I)
    return s


def sentence_case(s: str) -> str:
    s = s.strip(" ,;:-–—")
    s = s[0].upper() + s[1:] if s else s
    if len(s) > MAX_MEMORY_CHARS:
        s = s[: MAX_MEMORY_CHARS - 3].rsplit(" ", 1)[0] + "..."
    return s if s.endswith((".", "!", "...")) else s.rstrip("?") + "."


# -- subject, relation, retracted values ---------------------------------------------------------
def split_subject(s: str) -> tuple[str, str, list[str]]:
    """(subject key, the verb's lemma with its preposition, the words after the verb)."""
    ws = words(s)
    if not ws:
        return "", "", []
    i = 0
    if ws[0] in ("i", "i'm", "im", "i've", "i'd", "i'll", "we", "we're", "we've", "we'd", "we'll", "me"):
        subject = "user"
        i = 1
        if ws[0] in ("i'm", "im", "we're"):
            ws = ws[:1] + ["be"] + ws[1:]
        elif ws[0] in ("i've", "we've"):
            ws = ws[:1] + ["have"] + ws[1:]
    else:
        head = []
        while i < len(ws) and ws[i] not in AUXILIARIES and (
                ws[i] not in VERB_FORMS or i == 0 or ws[i] in PERSON_NOUNS or ws[i].endswith("ing")
                or ws[i - 1] in ("the", "my", "our", "a", "an", "his", "her", "their", "this", "that")):
            if ws[i].endswith("'s") and ws[i][:-2] in AUXILIARIES | {"it", "that", "he", "she", "there"}:
                break
            if ws[i].endswith("'s") and i + 1 < len(ws) and (ws[i + 1] in VERB_FORMS or
                                                                    ws[i + 1] in ("been", "got", "just")):
                head.append(ws[i][:-2])  # "Mum's moved in with us": has, not a possessive
                i += 1
                break
            head.append(ws[i])
            i += 1
            if len(head) > 6:
                break
        if ws[0] in ("my", "our") and len(head) > 1:
            subject = " ".join(w for w in head[1:3] if w not in STOPWORDS or w.endswith("'s"))
        else:
            subject = " ".join(w for w in head if w not in ("the", "a", "an", "this", "that"))[:40]
    while i < len(ws) and (ws[i] in ADVERBS or ws[i] in ("not", "n't", "don't", "doesn't", "didn't",
                                                                  "never", "do", "does", "did")):
        i += 1
    if i < len(ws) and ws[i] in ("isn't", "aren't", "wasn't", "weren't", "ain't"):
        ws[i] = "be"
    verb = LEMMA.get(ws[i], ws[i]) if i < len(ws) else ""
    if verb in ("be", "have") and i + 1 < len(ws) and ws[i + 1].endswith("ing") and ws[i + 1] in LEMMA:
        i += 1  # "I'm living in Berlin": the verb is "live"
        verb = LEMMA[ws[i]]
    if verb in ("be", "have") and i + 1 < len(ws) and ws[i + 1] in ("called", "named"):
        verb = "name"
    if verb == "be" and i + 1 < len(ws) and re.search(rf"\b{re.escape(ws[i])}\s+[A-Z][a-z]", s):
        verb = "name"  # "my dog is Biscuit"
    if verb in ("be", "name") and re.search(r"(?:^|(?:'s)? )name$", subject):  # "my dog's name is" = "my dog is called"
        subject, verb = re.sub(r"(?:^|(?:'s)? )name$", "", subject).strip() or "user", "name"
    subject = subject.replace("favourite", "favorite").replace("colour", "color")
    rest = ws[i + 1:]
    prep = rest[0] if rest and rest[0] in PREPOSITIONS else ""
    return subject, (verb + (" " + prep if prep else "")).strip(), rest


_RELATION_CLASSES = {
    "home": {"live", "live in", "move", "move to", "move in", "relocate", "relocate to", "reside", "reside in",
             "settle", "settle in", "stay in", "be based", "be in", "be based in"},
    "work": {"work", "work at", "work for", "work as", "work in", "join", "start at", "be employed", "quit"},
    "car": {"drive", "own"},
    "name": {"name", "be called", "be named", "go by"},
}


SINGLE_VALUED = {"home", "work", "car", "name"}


def relation_class(relation: str) -> str:
    for name, members in _RELATION_CLASSES.items():
        if relation in members:
            return name
    return relation


_RETRACT = [
    re.compile(r"\b(?:is|are|was|am|'s|'re|'m)\s*(?:n't|not)\s+(?:in |at |on |called |named |a |an |the )?"
               r"(?P<v>[\w' -]{2,40}?)\s+(?:any ?more|any longer)\b", re.I),
    re.compile(r"\b(?:is|are|am|'s|'re|'m)\s+no longer\s+(?:in |at |on |called |named |a |an |the )?(?P<v>[\w' -]{2,40}?)"
               r"(?=[,.;!]|\s+(?:but|and|since|because|so|now)\b|$)", re.I),
    re.compile(r"\b(?:do|does|did)\s*(?:n't|not)\s+\w+\s+(?:in |at |on |for |with |a |an |the )?(?P<v>[\w' -]{2,40}?)\s+"
               r"(?:any ?more|any longer)\b", re.I),
    re.compile(r"\bno longer\s+\w+\s+(?:in |at |on |for |with |as |a |an |the )?(?P<v>[\w' -]{2,40}?)(?=[,.;!]|\s+(?:but|and|"
               r"since|because|so|now)\b|$)", re.I),
    re.compile(r"(?P<v>[A-Z][\w'-]+) and I (?:broke up|split up|separated|divorced)\b"),
    re.compile(r"\b(?:sold|traded(?: in)?|got rid of|gave away|gave up|quit|left|moved (?:out of|away from|from|off)|"
               r"switched from|changed from|replaced|broke up with|divorced|stopped(?: using)?|retired from|ditched|"
               r"dropped|migrated (?:off|away from|from)|renamed?|no longer use)\s+(?:my |our |the |a |an |his |her |their )?(?P<v>[\w' -]{2,40}?)(?=[,.;!]|\s+(?:to|for|"
               r"and|but|because|since|so|now|last|this|in|a|after|with)\b|$)", re.I),
    re.compile(r"(?:^|[,;]\s*|\b(?:is|are|was|'s|at|in|on)\s+)not\s+(?:in |at |on |a |an |the )?(?P<v>[\w' :.-]{1,30}?)\s*"
               r"(?:[,;]\s*(?:it's|it is|but|rather|they're|she's|he's|we're|i'm|its)\b|$)", re.I),
    re.compile(r"\bfrom\s+(?P<v>[\w' -]{2,30}?)\s+to\s+\w", re.I),
    re.compile(r"\b(?:rather than|instead of)\s+(?P<v>[\w' -]{2,30}?)(?=[,.;!]|$)", re.I),
    re.compile(r"\bnot\s+(?P<v>[\w' -]{2,30}?)\s+any ?more\b", re.I),
]


def retracted_values(s: str) -> list[str]:
    out = []
    for pattern in _RETRACT:
        for m in pattern.finditer(s):
            value = re.sub(r"^(?:my|our|the|a|an|his|her|their|in|at|on)\s+", "", m["v"].strip(), flags=re.I)
            kept = [w for w in words(value) if w not in STOPWORDS]
            if kept and value.lower() not in out:
                out.append(value.lower())
    return out


