"""Turn what the user said into question/answer pairs, in several phrasings, so that knowledge
learned into the weights does not hang on one wording. Pure functions, no model.

A memory's ``text`` is a third-person sentence ("The user's sister lives in Porto.", "The staging
server is called atlas-2."). :func:`split` cuts it into subject, verb and object; the questions are
the ones a person would ask whose answer is the object ("Where does my sister live?", "What is the
staging server called?"), plus generic ones about the subject ("What do you know about my
sister?"). The last question of :func:`questions_for` is held out of training: verification asks
it, so that a memory counts as held by the weights only when it is answered in other words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STOPWORDS = set("""a an the is are was were be been am i me my mine you your yours he she it they we our
their his her its of to in on at for with by from and or but not no do does did what who whom whose
where when why how which that this these those called named name s there here as so if then than
about into over after before up down out very can could would should will just also any more user
users""".split())

# Verbs that can follow the subject; third-person singular, plural/base and past forms.
_AUX = {"is", "are", "was", "were", "has", "have", "had", "does", "do", "did", "can", "will", "goes"}
_VERBS = set("""live lives lived work works worked drive drives drove like likes liked love loves loved hate
hates hated prefer prefers preferred own owns owned play plays played study studies studied speak
speaks spoke teach teaches taught run runs ran use uses used need needs needed want wants wanted
eat eats ate drink drinks drank go went make makes made keep keeps kept get gets got take takes
took moved move moves visit visits visited write writes wrote read reads build builds built
support supports supported manage manages managed lead leads led runs belong belongs belonged
enjoy enjoys enjoyed dislike dislikes disliked fly flies flew ride rides rode wear wears wore
grew grow grows come comes came start starts started starts joined join joins meet meets met
cost costs deploy deploys deployed host hosts hosted stand stands stood sit sits sat happen happens
happened flow flows flowed take takes begin begins began open opens opened close closes closed end ends ended
arrive arrives arrived leave leaves left train trains trained practise practises practised practice practices
practiced collect collects collected sell sells sold buy buys bought bring brings brought learn learns learned
learnt travel travels travelled traveled commute commutes commuted attend attends attended contain contains
contained include includes included cover covers covered connect connects connected serve serves served
handle handles handled store stores stored track tracks tracked send sends sent receive receives received
report reports reported call calls sing sings sang swim swims swam walk walks walked cook cooks cooked
volunteer volunteers volunteered celebrate celebrates celebrated fix fixes fixed watch watches watched
coach coaches coached mentor mentors mentored owe owes owed hold holds held sleep sleeps slept wake wakes woke
rent rents rented share shares shared finish finishes finished release releases released ship ships shipped
migrate migrates migrated renamed rename renames replaced replace replaces switched switch switches
changed change changes bought""".split())
_PAST_BASE = {"had": "have", "did": "do", "was": "be", "were": "be", "drove": "drive", "spoke": "speak",
              "taught": "teach", "ran": "run", "ate": "eat", "drank": "drink", "went": "go", "made": "make",
              "kept": "keep", "got": "get", "took": "take", "wrote": "write", "built": "build", "led": "lead",
              "flew": "fly", "rode": "ride", "wore": "wear", "grew": "grow", "came": "come", "met": "meet",
              "stood": "stand", "sat": "sit", "read": "read", "cost": "cost"}
MAX_SENTENCE = 300  # characters of a memory's text that questions are made from
GENERIC = ("What do you know about", "Tell me about", "Remind me about", "Tell me something")
_WH_OBJ = {"in": "Where", "at": "Where", "near": "Where", "from": "Where"}


@dataclass(frozen=True)
class Split:
    subject: str  # as the user would say it: "my sister", "I", "the staging server"
    verb: str  # as written: "lives", "is called", "had"
    obj: str  # "in Porto", "atlas-2"
    user: bool  # the subject is the user themself


def second_person(text: str) -> str:
    """'The user's dog is called Biscuit.' -> 'Your dog is called Biscuit.'"""
    t = re.sub(r"\bthe user's\b", "your", text, flags=re.I)
    t = re.sub(r"\bthe user (is|was)\b", lambda m: "you " + ("are" if m.group(1).lower() == "is" else "were"), t,
               flags=re.I)
    t = re.sub(r"\bthe user has\b", "you have", t, flags=re.I)
    t = re.sub(r"\bthe user does\b", "you do", t, flags=re.I)
    t = re.sub(r"\bthe user (\w+?)(ie)?s\b", lambda m: "you " + m.group(1) + ("y" if m.group(2) else ""), t,
               flags=re.I)  # "the user lives" -> "you live", "studies" -> "study"
    t = re.sub(r"\bthe user\b", "you", t, flags=re.I)
    t = re.sub(r"\b(?:the user|you)self\b", "yourself", t, flags=re.I)
    return t[0].upper() + t[1:] if t else t


def first_person_subject(subject: str) -> str:
    """'the user's sister' -> 'my sister' (how the user asks about it)."""
    s = re.sub(r"\bthe user's\b", "my", subject, flags=re.I)
    return re.sub(r"\bthe user\b", "I", s, flags=re.I)


def third_person(statement: str) -> str | None:
    """A first-person statement -> a third-person sentence about the user ('I live in Lisbon.' ->
    'The user lives in Lisbon.'); None when it is not a plain first-person statement."""
    s = re.sub(r"\s+", " ", statement).strip().rstrip(".!")
    if not s or "?" in s:
        return None
    m = re.match(r"^(?:I'm|I am)\s+(.+)$", s, flags=re.I)
    if m:
        out = f"The user is {m.group(1)}"
    elif re.match(r"^I've\s+", s, flags=re.I):
        out = "The user has " + s.split(None, 1)[1]
    elif re.match(r"^I\s+(\w+)\b", s):
        verb, rest = re.match(r"^I\s+(\w+)\s*(.*)$", s).groups()
        v = verb.lower()
        if v in ("have", "do"):
            v3 = "has" if v == "have" else "does"
        elif v in _PAST_BASE or v.endswith("ed") or v in ("can", "will", "would", "should", "could", "must"):
            v3 = v
        elif re.search(r"[^aeiou]y$", v):
            v3 = v[:-1] + "ies"
        elif re.search(r"(s|sh|ch|x|z|o)$", v):
            v3 = v + "es"
        else:
            v3 = v + "s"
        out = f"The user {v3} {rest}".strip()
    elif re.match(r"^(?:my|our)\s+", s, flags=re.I):
        out = s
    else:
        return None
    out = re.sub(r"\b(?:my|our)\b", "the user's", out, flags=re.I)
    out = re.sub(r"\bmine\b", "the user's", out, flags=re.I)
    out = re.sub(r"\b(?:me|myself)\b", "the user", out, flags=re.I)
    out = out[0].upper() + out[1:]
    return out + "."


def _base(verb: str) -> str | None:
    v = verb.lower()
    if v in _PAST_BASE:
        return _PAST_BASE[v]
    if v in ("has", "have"):
        return "have"
    if v in ("does", "do"):
        return "do"
    if v == "goes":
        return "go"
    if v.endswith("ies"):
        return v[:-3] + "y"
    if re.search(r"(ss|sh|ch|x|z|o)es$", v):
        return v[:-2]
    if v.endswith("s") and not v.endswith("ss"):
        return v[:-1]
    if v.endswith("ed"):
        return None  # past of a regular verb: its base is not always recoverable, skip the form
    return v


def _is_verb(word: str, position: int) -> bool:
    w = word.lower()
    if w in _AUX or w in _VERBS:
        return True
    # Another lowercase word ending in -s after the head noun ("boss Dana hates ...").
    return position > 0 and w.endswith("s") and not w.endswith("ss") and word[0].islower() and w not in STOPWORDS


def split(text: str) -> Split | None:
    """Subject, verb and object of a third-person memory sentence, or None."""
    s = re.sub(r"\s+", " ", text).strip()
    if len(s) > MAX_SENTENCE:  # a very long memory: its first sentence, cut at a word
        s = re.split(r"(?<=[.!?])\s", s, maxsplit=1)[0][:MAX_SENTENCE].rsplit(" ", 1)[0]
    s = s.rstrip(".!")
    if not s or "?" in s:
        return None
    m = re.match(r"^(?:the user's|the user)\b", s, flags=re.I)
    user = False
    if m and m.group(0).lower() == "the user":
        user = True
        head, rest = "the user", s[m.end():].strip()
        words = rest.split()
        start = 0
    else:
        m2 = re.match(r"^(the user's|the|a|an|our|his|her|their)\s+(.*)$", s, flags=re.I)
        if m2:
            head, rest = m2.group(1).lower(), m2.group(2)
        else:  # a proper noun: "Dana hates meetings", "Porto is in Portugal"
            head, rest = "", s
        words = rest.split()
        start = None
        for i, w in enumerate(words):
            if i > 0 and _is_verb(w, i) and not (w.lower() not in _AUX and i + 1 < len(words)
                                                  and words[i + 1].lower() in _AUX):
                start = i  # (a word followed by "is" is a noun: "the quarterly report is due")
                break
        if start is None:
            return None
        head = (head + " " + " ".join(words[:start])).strip()
    if start >= len(words):
        return None
    verb_words = [words[start]]
    j = start + 1
    if verb_words[0].lower() in ("is", "are", "was", "were") and j < len(words) and \
            words[j].lower() in ("called", "named", "known"):
        verb_words.append(words[j])
        j += 1
        if verb_words[-1].lower() == "known" and j < len(words) and words[j].lower() == "as":
            verb_words.append(words[j])
            j += 1
    obj = " ".join(words[j:]).strip(" ,;:")
    if not obj:
        return None
    subject = first_person_subject(head)
    return Split(subject=subject, verb=" ".join(verb_words), obj=obj, user=user)


def _do(subject: str, past: bool) -> str:
    if past:
        return "did"
    return "do" if subject == "I" else "does"


def _be(subject: str, verb: str) -> str:
    v = verb.split()[0].lower()
    if subject == "I":
        return "was" if v in ("was", "were") else "am"
    return v


_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|december|"
           "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec")
_DAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday|weekend|weekday"
_TIME = re.compile(r"\b(?:\d{1,2}[:.]\d\d|\d{1,2}\s*(?:am|pm|a\.m\.|p\.m\.)|noon|midnight|o'clock)\b", re.I)
_WHEN = re.compile(rf"\b(?:1[5-9]\d\d|20\d\d|\d{{4}}-\d\d-\d\d|\d{{1,2}}(?:st|nd|rd|th)|(?:{_MONTHS})|(?:{_DAYS})s?|"
                   r"today|tomorrow|yesterday|tonight|morning|evening|afternoon|night|week|month|year|spring|"
                   r"summer|autumn|fall|winter|christmas|easter)\b", re.I)
# Who a subject is, when it is a person: "Who is my manager?", not "What is my manager?".
_PEOPLE = set("""manager boss friend sister brother wife husband partner son daughter mother father mum mom dad
parent grandmother grandfather grandma grandpa granny aunt uncle cousin niece nephew colleague coworker
neighbour neighbor doctor dentist teacher tutor mentor coach therapist author writer founder lead leader
client landlord landlady ceo cto cfo owner director composer painter inventor architect designer
boyfriend girlfriend fiance fiancee roommate flatmate housemate godson goddaughter godmother godfather
stepmother stepfather stepson stepdaughter baby child kid kids children twin twins assistant
engineer developer nurse vet lawyer accountant captain president mayor king queen chair""".split())
# Passive participles: "was built in", "is led by".
_PARTICIPLES = {"built": "build", "written": "write", "led": "lead", "made": "make", "run": "run",
                "held": "hold", "born": None, "known": "know", "given": "give", "taken": "take",
                "sold": "sell", "kept": "keep", "grown": "grow", "drawn": "draw", "sung": "sing",
                "chosen": "choose", "spoken": "speak", "taught": "teach", "bought": "buy", "brought": "bring",
                "found": "find", "paid": "pay", "hidden": "hide", "shown": "show", "done": "do", "set": "set",
                "due": None, "located": None, "based": None, "situated": None}
_PREPS = {"in", "at", "on", "near", "from", "to", "through", "into", "for", "with", "by", "under", "over",
          "behind", "inside", "outside", "around", "across", "along", "beside", "between", "as", "of"}
_WHERE_PREPS = {"in", "at", "near", "from", "through", "to", "into", "inside", "outside", "around", "across",
                "along", "beside", "behind", "under", "over", "between"}
_LATER = re.compile(r"(?:,?\s+(?:now|these days|nowadays|any ?more|at the moment|currently|at present|"
                    r"for now|again|too|as well|instead))+$", re.I)


def _when_kind(obj: str) -> str | None:
    """'year', 'month', 'day', 'time' or 'date' when ``obj`` says when; None otherwise."""
    low = obj.lower()
    if _TIME.search(low):
        return "time"
    m = _WHEN.search(low)
    if not m:
        return None
    w = m.group(0)
    if re.fullmatch(r"1[5-9]\d\d|20\d\d", w):
        return "year"
    if re.fullmatch(_MONTHS, w):
        return "month"
    if re.fullmatch(rf"(?:{_DAYS})s?", w):
        return "day"
    return "date"


def _head(subject: str) -> str:
    """The head noun of a subject: 'my best friend' -> 'friend', 'the author of X' -> 'author'."""
    words = re.sub(r"\s+(?:of|in|at|for|on)\s.*$", "", subject).split()
    return words[-1].lower().strip("'s") if words else ""


def _is_person(subject: str) -> bool:
    return _head(subject) in _PEOPLE or _head(subject).rstrip("s") in _PEOPLE


def _possessive_ok(subject: str) -> bool:
    """Whether "<subject>'s name" reads well (not "the capital of Freedonia's name")."""
    return " of " not in subject and not subject.endswith("'s") and subject != "I"


def _name(subject: str, obj: str) -> bool:
    """The object looks like a name (capitalised words or a code), not a description."""
    words = [w for w in obj.split() if w.lower() not in ("the", "a", "an")]
    return bool(words) and all(w[0].isupper() or any(ch.isdigit() for ch in w) or "-" in w for w in words)


def clauses(text: str) -> list[str]:
    """A sentence cut into clauses that each say one thing: 'The user moved, the user lives in
    Corravin now.' -> both; a pronoun opening a clause stands for the object of the one before
    ('... renamed the staging server, it is called atlas-9' -> 'The staging server is called atlas-9')."""
    parts = [p.strip() for p in re.split(r"[;,]\s+(?:and\s+|but\s+|so\s+)?|\s+(?:and|but|so)\s+(?=(?:the user|it|"
                                          r"they|he|she|the|my|our)\b)", text) if p and p.strip()]
    out: list[str] = []
    prev_obj = None
    for part in parts:
        m = re.match(r"^(it|they|he|she)\s+(.*)$", part, flags=re.I)
        if m:
            if not (prev_obj and re.match(r"^(?:the|a|an|the user's)\s", prev_obj, flags=re.I)):
                continue  # nobody to say who "it" is
            part = f"{prev_obj} {m.group(2)}"
        part = part[0].upper() + part[1:]
        out.append(part)
        sp = split(part)
        prev_obj = sp.obj if sp else None
        if prev_obj and re.match(r"^my\s", prev_obj):
            prev_obj = "the user's " + prev_obj[3:]
    return out


def questions_from_sentence(text: str) -> list[str]:
    """Questions whose answer is this sentence's object, then generic ones about its subject."""
    s = _LATER.sub("", re.sub(r"\s+", " ", text).strip().rstrip(".!"))
    if len(s) > MAX_SENTENCE:
        s = re.split(r"(?<=[.!?])\s", s, maxsplit=1)[0][:MAX_SENTENCE].rsplit(" ", 1)[0]
    parsed = [sp for sp in (split(_LATER.sub("", c)) for c in clauses(s.rstrip("."))) if sp is not None]
    if not parsed:
        return []
    # The clause that carries a value: the last one with a name, a number or a place ("moved, lives in X").
    sp = next((p for p in reversed(parsed) if _name(p.subject, p.obj) or re.search(r"\d|\b[A-Z]", p.obj)),
              parsed[-1])
    out = _specific_questions(sp)
    if not sp.user:
        out += [f"What do you know about {sp.subject}?", f"Tell me about {sp.subject}.",
                f"Remind me about {sp.subject}."]
    elif not out:  # "about me" fits every fact about the user: only when nothing more precise does
        out += ["What do you know about me?", "Tell me something you remember about me."]
    seen: list[str] = []
    for q in out:
        q = q[0].upper() + q[1:]
        if q not in seen:
            seen.append(q)
    return seen


def _specific_questions(sp: Split) -> list[str]:
    subj, verb, obj = sp.subject, sp.verb, re.sub(r"^now\s+", "", sp.obj)
    v0 = verb.split()[0].lower()
    words = obj.split()
    first = words[0].lower() if words else ""
    when = _when_kind(obj)
    out: list[str] = []
    if v0 in ("is", "are", "was", "were", "am"):
        be = _be(subj, verb)
        person = _is_person(subj)
        if len(verb.split()) > 1:  # "is called" / "is named" / "is known as"
            if person:
                out.append(f"Who {be} {subj}?")
            out += [f"What {be} {subj} called?", f"What's the name of {subj}?"]
            if _possessive_ok(subj):
                out.append(f"What's {subj}'s name?")
            out += [f"Do you remember what {subj} {be} called?", f"Tell me the name of {subj}."]
            return out
        rest = " ".join(words[1:])
        nxt = words[1].lower() if len(words) > 1 else ""
        if first in _PARTICIPLES or (first.endswith("ed") and nxt in _PREPS):  # passive: "built in 1887"
            after = " ".join(words[2:])
            if nxt == "by":
                base = _PARTICIPLES.get(first, first[:-2] if first.endswith("ed") else None)
                if be in ("was", "were") and first not in ("due", "born"):
                    out.append(f"Who {first if first.endswith('ed') else _past(first)} {subj}?")
                elif base:
                    out.append(f"Who {_third(base)} {subj}?")
                out += [f"Who {be} {subj} {first} by?", f"Tell me who {subj} {be} {first} by."]
                return out
            if when and nxt in ("in", "on", "at", "for", "by", "until", "before", "after"):
                out += [f"When {be} {subj} {first}?"]
                out += {"year": [f"In which year {be} {subj} {first}?"],
                        "month": [f"In which month {be} {subj} {first}?"],
                        "day": [f"On which day {be} {subj} {first}?"],
                        "time": [f"At what time {be} {subj} {first}?"]}.get(when, [])
                return out + [f"Do you know when {subj} {be} {first}?"]
            if nxt in _WHERE_PREPS and (first in ("born", "located", "based", "situated", "held", "kept", "made",
                                                  "raised", "stored", "buried", "parked")):
                out += [f"Where {be} {subj} {first}?", f"In which place {be} {subj} {first}?",
                        f"Do you know where {subj} {be} {first}?"]
                return out
            if nxt in _PREPS:
                out += [f"What {be} {subj} {first} {nxt}?", f"Do you know what {subj} {be} {first} {nxt}?"]
                if nxt in _WHERE_PREPS and nxt not in ("in", "to"):
                    out.append(f"Where {be} {subj} {first}?")
                return out
            if not after and rest:
                out += [f"What {be} {subj} {first}?"]
        if when and first in ("at", "on", "in", "every", "each", "due") or when == "time" and first == "at":
            out += [f"When {be} {subj}?"]
            out += {"time": [f"What time {be} {subj}?"], "day": [f"On which day {be} {subj}?"],
                    "month": [f"In which month {be} {subj}?"], "year": [f"In which year {be} {subj}?"]
                    }.get(when, [f"Do you know when {subj} {be}?"])
            return out
        if first in _WHERE_PREPS or first in ("at", "near", "from"):
            out += [f"Where {be} {subj}?", f"Do you know where {subj} {be}?"]
            return out
        adj = re.match(r"^([a-z]+) (to|of|with|about|for|at|on|in)\b", obj)
        if adj and adj.group(1) not in STOPWORDS:  # "allergic to peanuts" -> "What am I allergic to?"
            out += [f"What {be} {subj} {adj.group(1)} {adj.group(2)}?",
                    f"Do you know what {subj} {be} {adj.group(1)} {adj.group(2)}?",
                    f"Tell me what {subj} {be} {adj.group(1)} {adj.group(2)}."]
            return out
        if first.endswith("ing") and first not in STOPWORDS and len(first) > 4:  # "is learning Icelandic"
            out += [f"What {be} {subj} {first}?", f"Tell me what {subj} {be} {first}.",
                    f"Do you know what {subj} {be} {first}?"]
            return out
        if subj == "I":
            return out + (["What am I?"] if be == "am" else ["What was I?"])
        if person:
            out.append(f"Who {be} {subj}?")
        out += [f"What {be} {subj}?", f"Tell me what {subj} {be}."]
        if re.match(r"^the\s+\w+est\s", subj):  # "the tallest mountain in Quelland"
            out.insert(1 if person else 0, f"Which {be} {subj}?")
        return out
    base = _base(v0)
    if base is None:
        return [f"Tell me what {subj} {verb}."]
    past = (v0 in _PAST_BASE and v0 not in ("read", "cost")) or v0.endswith("ed")
    plural = not past and v0 == base and subj != "I"  # "my kids go": a plural subject
    do = "do" if plural else _do(subj, past)
    said = verb if past or (subj != "I" and not plural) else base  # "Tell me what I drive."
    if first in ("place", "part") and len(words) > 1 and words[1].lower() in _PREPS:  # "takes place in October"
        base, said = f"{base} {first}", f"{said} {first}"
        words, first = words[1:], words[1].lower()
    nxt_rest = " ".join(words[1:])
    if first in ("in", "at", "near", "for", "from", "to") and base in ("live", "work", "stay", "study", "grow", "go",
                                                                        "move", "come"):
        if not when:
            out += [f"Where {do} {subj} {base}?", f"In which place {do} {subj} {base}?"]
            if base == "live":
                out.append("Where is my home?" if sp.user else
                           f"Where is {subj}'s home?" if _possessive_ok(subj) else f"Where {do} {subj} live now?")
            if base == "work":
                out.append(f"Who {do} {subj} work for?" if first == "for" else
                           ("Where is my workplace?" if sp.user else f"Where is {subj}'s workplace?"))
            elif first == "to":
                out.append(f"What {do} {subj} {base} to?")
            return out
    if base == "work" and first == "as":
        return out + [f"What {do} {subj} do for a living?", f"What {do} {subj} work as?",
                      "What is my job?" if sp.user else f"What is {subj}'s job?", f"What {do} {subj} do for work?"]
    if first in _PREPS and nxt_rest:
        if when:
            out += [f"When {do} {subj} {base}?"]
            out += {"time": [f"At what time {do} {subj} {base}?"], "day": [f"On which day {do} {subj} {base}?"],
                    "month": [f"In which month {do} {subj} {base}?"], "year": [f"In which year {do} {subj} {base}?"]
                    }.get(when, [f"Do you know when {subj} {said}?"])
            return out
        out.append(f"What {do} {subj} {base} {first}?")
        if first in _WHERE_PREPS or first == "on":
            out.append(f"Where {do} {subj} {base}?")
        out.append(f"Tell me what {subj} {said} {first}.")
        return out
    dated = re.match(r"^(.+?) (?:on|in|at) (\d{4}-\d\d-\d\d|\d{1,2} \w+|\w+ \d{1,2}(?:st|nd|rd|th)?)\b", obj)
    if dated:
        out += [f"When {do} {subj} {base} {dated.group(1)}?", f"What {do} {subj} {base} on {dated.group(2)}?"]
    out += [f"What {do} {subj} {base}?", f"Tell me what {subj} {said}.", f"Do you know what {subj} {said}?"]
    return out


def _third(base: str) -> str:
    if re.search(r"[^aeiou]y$", base):
        return base[:-1] + "ies"
    if re.search(r"(s|sh|ch|x|z|o)$", base):
        return base + "es"
    return base + "s"


def _past(participle: str) -> str:
    return {"written": "wrote", "known": "knew", "given": "gave", "taken": "took", "grown": "grew",
            "drawn": "drew", "sung": "sang", "chosen": "chose", "spoken": "spoke", "hidden": "hid",
            "shown": "showed", "done": "did", "run": "ran"}.get(participle, participle)


def _subject(key: str) -> str:
    return key.split("|")[0].strip()


def _key_questions(k: str) -> list[str]:
    """The older extractor's keys, kept: they name the subject precisely."""
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
        return [f"How many {k[len('number of '):]} do I have?"]
    return []


def questions_for(kind: str, key: str | None, text: str, question: str | None = None,
                  limit: int = 6) -> list[str]:
    """Questions a user might ask whose answer is this memory: specific ones first, generic ones
    last (the last one is held out of training for verification)."""
    if kind == "lesson" and question:
        q = question.strip()
        return [q, f"Quick question: {q}", f"{q} Please answer in one sentence.", f"Can you tell me: {q}"]
    if kind == "instruction":
        return []
    about_user = bool(re.match(r"^the user\b", text.strip(), flags=re.I))
    keyed = _key_questions((key or "").lower()) if about_user else []  # keys name the user's things only
    from_text = questions_from_sentence(text)
    generic = [q for q in from_text if q.startswith(GENERIC)]
    specific: list[str] = []
    for q in keyed + [q for q in from_text if q not in generic]:
        if q not in specific:
            specific.append(q)
    if not specific and not generic:
        return ["What do you know about me?", "Tell me something you remember about me."]
    # The held-out phrasing (verification asks it) is a specific question, never a generic one that
    # any other memory could answer: the second specific one, or the only one asked another way.
    if len(specific) >= 2:
        held = specific.pop(1)
    elif specific:
        held = f"Remind me, {specific[0][0].lower()}{specific[0][1:]}"
    else:
        held = generic.pop()
    out = specific[: max(1, limit - 2)]
    out += [q for q in generic if q not in out][: max(0, limit - 1 - len(out))]
    return out + [held]


def split_for_training(questions: list[str]) -> tuple[list[str], str | None]:
    """(trained questions, held-out question): the last is held out when there are at least 3."""
    if len(questions) >= 3:
        return questions[:-1], questions[-1]
    return list(questions), None


def value_of(kind: str, text: str) -> str:
    """The part of a memory that an answer must contain: the object of its sentence."""
    sp = split(text)
    if sp is None:
        return text
    return sp.obj


def answer_for(kind: str, text: str, correction: str | None = None, old_text: str | None = None) -> str:
    """The answer trained for a memory, in the second person; with ``old_text`` (the memory this
    one superseded) it says explicitly that the old value no longer holds."""
    if kind == "lesson" and correction:
        return correction
    answer = second_person(text)
    if old_text:
        old, new = value_of(kind, old_text), value_of(kind, text)
        if old and old.lower() != new.lower() and old.lower() not in new.lower():
            answer = answer.rstrip(".") + f", not {_unpossessive(old)} any more."
    return answer


def _unpossessive(value: str) -> str:
    out = second_person(value).rstrip(".")
    return value[0] + out[1:] if value else out  # keep the value's own first letter


def acknowledgement(third_person_text: str) -> str:
    """What the assistant says back to a user statement: it restates it, so that the loss falls
    on the fact ('Got it: your sister lives in Porto.')."""
    said = second_person(third_person_text).rstrip(".")
    if said.split(" ", 1)[0] in ("Your", "You", "The"):
        said = said[0].lower() + said[1:]
    return f"Got it: {said}."


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
