"""Find what a user says about themselves, the people and things around them, their work and the
world, without asking the model.

Each sentence of a message is classified, not matched against a list of templates: questions,
requests, hypotheticals, sentences about the listener, chit-chat, passing moods, encouragement and
platitudes are dropped; any other declarative sentence that is about the speaker (I, we, my, our) or
is specific (a name, a number, a date, a code) is kept *in the user's own words*, rewritten in the
third person for the prompt ("I drive a Prius" -> "The user drives a Prius."). Relative days are
resolved against when it was said. A key (subject|relation) and the values a sentence takes back
("... isn't in Porto any more") let a newer statement supersede an older one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date

from clagent.memory import sentences, when
from clagent.memory.words import (ADVERBS, AUXILIARIES, FEELINGS, INTENSIFIERS, LEMMA, NOW_WORDS, PAST_FORMS,
                                  PREPOSITIONS, STOPWORDS, VERB_FORMS)

KINDS = ("fact", "preference", "lesson", "instruction")
MAX_MEMORY_CHARS = 400


@dataclass(frozen=True)
class Candidate:
    text: str  # third person, as put into prompts
    index_text: str  # first person, as the user said it: what is embedded and matched
    kind: str
    key: str | None  # "subject|relation": what the memory is about
    explicit: bool = False
    retracts: tuple[str, ...] = ()  # old values this sentence says no longer hold
    change: bool = False  # worded as a change ("now", "moved", "any more", "actually")
    retraction_only: bool = False  # says only that something no longer holds
    event: bool = False  # a life event that may replace what it names ("new car, new reg: ...")
    subject: str = ""
    values: tuple[str, ...] = field(default=(), compare=False)


# -- leading words that carry no content --------------------------------------------------------
_LEADING = re.compile(
    r"^(?:(?:oh|ok|okay|okey|aw+|yay|phew|oh no|well|so|also|and|but|btw|by the way|anyway|anyways|anyhow|honestly|frankly|"
    r"basically|hmm+|um+|uh+|ah+|oops|wait|right|yes|yeah|yep|yup|no|nope|nah|hey|hi|hello|heya|hiya|"
    r"lol|haha+|hehe|ugh|wow|man|dude|guess what|you know what|you know|you see|fun fact|funnily enough|"
    r"interestingly|incidentally|random(?:ly)?|side note|quick (?:update|question|note)|update|in other news|"
    r"as i said|as i mentioned|like i said|speaking of which|sorry|my mistake|my bad|i mean|to be honest|tbh|"
    r"oh and|and also|plus|then again|of course|sure|good morning|good evening|morning|evening|"
    r"actually|in fact|correction|scratch that|to be clear|just to be clear|just so you know|fyi|"
    r"for the record|for your information|note to self|important|heads up|reminder|"
    r"(?:one|the|another) (?:thing|piece of news|update) (?:i|we) (?:wanted|want|need|meant) to (?:talk about|tell you|"
    r"say|mention|share|ask about)(?: is)?|(?:first|second|third|other|more|big|good|bad) news|news)\b[\s,:;!.\-–—]*)+",
    re.I)
_CHANGE_LEAD = re.compile(r"^(?:actually|in fact|correction|scratch that|update|sorry|my mistake|my bad|wait|"
                          r"i mean|to be clear|just to be clear|quick update)\b", re.I)
_EXPLICIT_LEAD = re.compile(r"^(?:just so you know|fyi|for the record|for your information|note to self|important|"
                            r"heads up|reminder|note)\b", re.I)
_EXPLICIT = re.compile(
    r"^(?:(?:please|pls|can you|could you|would you)\s+)?(?:remember|note(?: down| that)?|make a note|"
    r"take (?:a )?note|keep in mind|bear in mind|don't forget|do not forget|never forget|memori[sz]e|"
    r"save|store|log|jot down|write down|file (?:this|that)|note to self|for future reference)"
    r"(?:\s+(?:that|this|the following|for me|for later|it))*\s*[:,\-–—]?\s*(?P<body>.*)$", re.I)

# -- sentence kinds that are never memories -----------------------------------------------------
_Q_WORD = r"(?:what|who|whom|whose|where|when|why|how|which)"
_AUX_Q = (r"(?:do|does|did|is|are|was|were|can|could|would|will|should|shall|may|might|have|has|am|"
          r"don't|doesn't|didn't|isn't|aren't|wasn't|can't|couldn't|won't|wouldn't|shouldn't|haven't|hasn't)")
_QUESTION = re.compile(
    rf"^(?:{_Q_WORD}(?:'s|'re|'d|'ll)?\b(?!\s+(?:i|we|my|our)\b)|{_AUX_Q}\s+(?:you|i|we|it|there|they|he|she|my|"
    r"the|this|that|your|our|u|anyone|anybody|someone|somebody|any|a|an)\b|i wonder|i was wondering|i'm wondering|"
    r"any (?:idea|ideas|tips|thoughts|suggestions|recommendations)|anyone know|is it true|"
    r"i(?:'d| would) (?:like|love) to know|i want to know|i need to know|i'm curious|i am curious)", re.I)
_IMPERATIVE = set("""
write tell give show help make list explain translate summarise summarize describe find create generate
suggest recommend fix check compare calculate convert draft compose rewrite edit proofread correct send
book set remind add remove delete search look read let lets let's please go try use stop be imagine
pretend suppose assume consider name plan design define teach walk guide code debug build draw sing
pick choose say repeat continue answer respond reply outline analyze analyse evaluate review sort
format count estimate predict guess quiz ask call open run start finish share keep talk chat think
brainstorm rate rank critique recap paraphrase shorten expand elaborate clarify simplify sum
""".split())
_REQUEST = re.compile(
    r"^(?:can|could|would|will)\s+(?:you|u)\b|^would you mind|^(?:i|we)\s+(?:want|need|would like|'d like|"
    r"wanna)\s+(?:you|u)\b|^i(?:'d| would) like (?:a|an|some|to (?:ask|know|see|get|have|hear|learn more))\b|"
    r"^i need (?:a|an|some|help|ideas|advice|suggestions|tips|you|to know|to ask|a hand)\b|"
    r"^(?:i'm|i am|we're|we are) looking for (?:a|an|some|ideas|advice|help|suggestions|recommendations)\b|"
    r"^how about\b|^what about\b|^help\b|^let me know\b|^tell me\b|^show me\b|^give me\b|^i have a question\b|"
    r"^quick question\b|^question\b|^just wondering\b", re.I)
_HYPOTHETICAL = re.compile(
    r"^(?:if|imagine|suppose|supposing|pretend|let's say|lets say|say|assume|assuming|what if|hypothetically|"
    r"in theory|in a (?:world|parallel universe)|picture this|consider)\b|\bif (?:i|we) (?:were|was|had|could|did|"
    r"lived|won|owned)\b|\b(?:i|we) wish\b|\bwould have\b|\bcould have been\b|\bif only\b|\bin my dreams?\b|"
    r"\bif (?:my|our)\b.*\bwould\b", re.I)
_LISTENER = re.compile(r"^(?:you|your|you're|youre|you've|you'll|you'd|u|ur|thank you|thanks|thx|ty|cheers|"
                       r"thank u|appreciate it|bless you|good job|well done|nice one|great job)\b", re.I)
_PLATITUDE = re.compile(
    r"\b(?:every(?:one|body|thing)|no ?one|nobody|people (?:who|are|should|need|can)|life|everyday life|success|happiness|progress|"
    r"hard work|practice|patience|kindness|change|growth|failure|mistakes|the journey|the key|"
    r"small (?:steps|wins)|one step at a time|baby steps|each day|tomorrow is|you got this|you've got this|"
    r"you can do (?:it|this)|keep (?:going|it up|pushing)|don't give up|never give up|hang in there|"
    r"proud of you|believe in yourself|it's okay to|it is okay to|it's ok to|self[- ]care|"
    r"never too late|worth it|what matters|that matters|matters most|it takes time|good things|"
    r"be kind|stay positive|things happen|everything happens|time heals|it is what it is|such is life|"
    r"the best is yet|good luck|congrat\w*|well done|good for you|bad for you)\b", re.I)
_GENERIC_OPENING = re.compile(
    r"^(?:it(?:'s| is| was| can be| will be| gets)|that(?:'s| is| was)|this(?:'s| is| was)|there(?:'s| is| are)|"
    r"every|each|all|any|one should|you should|you have to|you need to|you can|you never|we all|we should|"
    r"we must|we need|sometimes|always|never|nothing|the (?:best|hardest|most important|important thing|"
    r"secret|trick|point|key)|what (?:matters|counts)|a (?:little|small|good|healthy|balanced))\b", re.I)
_CHITCHAT = re.compile(
    r"^(?:thanks?(?: (?:a lot|so much|again|anyway|for \w+(?: \w+){0,4}))?|thank you(?: .*)?|ty|thx|cheers|"
    r"cool|nice|great|awesome|perfect|amazing|wonderful|lovely|sweet|neat|fair enough|got it|gotcha|i see|"
    r"makes sense|sounds (?:good|great|fun|nice|lovely|like a plan)|no worries|no problem|np|of course|sure|"
    r"indeed|exactly|true|agreed|alright|all right|bye|goodbye|see you|see ya|later|good night|gn|"
    r"good (?:morning|afternoon|evening|day)|hello|hi|hey|yo|lol|lmao|haha|hehe|ha|hmm|ok|okay|k|yes|no|yeah|"
    r"nope|yep|same|me too|not really|not quite|not exactly|that's (?:it|all|right|wrong|correct|true|"
    r"fine|cool|nice|great|funny|interesting|sad|awesome|amazing|perfect|not right|not it|not what i)|"
    r"try again|wrong|correct|right|close|almost|nope|nah|wow|whoa|omg|oh my|good point|interesting|"
    r"never mind|nevermind|forget it|my pleasure|you're welcome|welcome)\b", re.I)
_BAD_SUBJECTS = {"question", "point", "guess", "problem", "answer", "idea", "concern", "request", "issue", "bad",
                 "fault", "pleasure", "turn", "mistake", "apologies", "opinion", "thought", "thoughts",
                 "suggestion", "message", "prompt", "task", "homework", "goodness", "god", "gosh", "word",
                 "advice", "take", "two cents", "understanding", "impression", "hope", "wish", "dream", "head",
                 "brain", "mind", "heart", "mood", "day", "week", "morning", "night", "life"}
_INSTRUCTION = re.compile(
    r"^(?:please\s+)?(?:from now on|going forward|from here on(?: out)?|in (?:the )?future|for future answers|"
    r"always|never|whenever you|every time you|each time you|any time you|don't ever|do not ever|"
    r"stop \w+ing|no more|(?:please )?(?:don't|do not) (?=.*\b(?:answer|repl|respon|you)))\b", re.I)
_ANSWER_WORDS = re.compile(r"\b(?:answers?|repl(?:y|ies)|respon(?:d|ses?)|explain|explanations?|write|"
                           r"use|give|call|address|talk|speak|format|units?|language|emoji|tone|short|brief|"
                           r"concise|bullet|examples?|code|sources?|summar\w+|words?|sentences?)\b", re.I)

# -- what makes a sentence about something in particular ----------------------------------------
_PERSONAL = re.compile(r"\b(?:i|me|my|mine|myself|we|us|our|ours|ourselves|i'm|im|i've|i'd|i'll|we're|"
                       r"we've|we'd|we'll)\b", re.I)
_NUMBER_WORDS = (r"(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|"
                 r"forty|fifty|hundred|thousand|million|billion|dozen|half|first|second|third|twice|once)")
_SPECIFIC = re.compile(
    rf"\d|\b{_NUMBER_WORDS}\b|\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|january|february|"
    r"march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sep|"
    r"sept|oct|nov|dec|yesterday|tomorrow|tonight|weekend|weekdays?|noon|midnight|morning|evening)\b|"
    r"\w+[-_.]\w*\d|[#@$€£%]", re.I)
# Words that say a value changed. Life events ("moved", "started", "sold") are not among them: they
# replace a value only through a relation that holds one value (where one lives) or what they take back.
_CHANGE = re.compile(
    r"(?<!right )(?<!just )(?<!for )(?<!by )\b(?:now(?! and then)|these days|nowadays|any ?more|no longer|"
    r"not any longer|instead|correction|"
    r"scratch that|changed?|switched|replaced|rescheduled|postponed|updated?|rather than|not anymore|rebooked|"
    r"renamed?|upped|bumped|migrated|new \w+ is|is new)\b", re.I)
# Life events that may replace a value: only where the older memory names the same thing.
_EVENT = re.compile(r"\b(?:new|moved|started|quit|stopped|sold|got|bought|joined|left|switched|changed|"
                    r"promoted|got rid of|traded)\b", re.I)
PERSON_NOUNS = set("""
sister brother mother father mom mum dad mama papa parents parent wife husband partner spouse girlfriend
boyfriend fiance fiancee son daughter kid kids child children baby grandma grandmother grandpa grandfather
granny nan aunt uncle cousin niece nephew friend bestie colleague coworker co-worker boss manager
neighbour neighbor roommate flatmate housemate teacher doctor therapist dentist landlord landlady mentor
student client team lead stepmom stepdad stepson stepdaughter twin in-laws mother-in-law father-in-law
dog cat puppy kitten horse rabbit bunny hamster parrot budgie tortoise turtle pony
""".split())


def _clean(s: str) -> str:
    s = s.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    s = re.sub(r"[\U0001F300-\U0001FAFF\u2600-\u27BF\uFE0F]+", " ", s)  # emoji
    s = re.sub(r"(?:\s+(?:lol|lmao|haha+|hehe|xd|:\)|:\(|:D|;\)|<3))+\s*$", "", s, flags=re.I)
    s = re.sub(r"\s+", " ", s).strip()
    return s.strip(" \"'`")


def _words(s: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", s.lower())


def _content_words(s: str) -> list[str]:
    return [w for w in _words(s) if w not in STOPWORDS and len(w) > 1 or w.isdigit()]


def _proper_nouns(s: str) -> list[str]:
    """Capitalised words other than 'I' and a sentence's ordinary first word. A capitalised first word
    followed by a verb ("Theo dropped violin", "Venus rotates") is taken for a name."""
    tokens = re.findall(r"[A-Za-z][\w'-]*", s)
    out = [t for i, t in enumerate(tokens) if i > 0 and t[0].isupper() and t not in ("I", "I'm", "I've", "I'd", "I'll")]
    if len(tokens) > 1 and tokens[0][0].isupper() and tokens[0].lower() not in STOPWORDS | VERB_FORMS | _IMPERATIVE:
        following = tokens[1].lower()
        if following not in ("that's", "it's", "there's", "what's", "who's", "he's", "she's") and (following in VERB_FORMS or following in AUXILIARIES
                                           or following.endswith(("'s", "ed", "es"))):
            out.insert(0, tokens[0])
    return out


def _specific(s: str, strict: bool = False) -> bool:
    """A name, a number, a date, a code: something in particular. ``strict`` leaves out times of day."""
    if strict:
        return bool(re.search(r"\d|[#@$€£%]", s) or _proper_nouns(s))
    return bool(_SPECIFIC.search(s) or _proper_nouns(s) or re.search(r"\b(?:called|named|known as)\b", s, re.I))


# -- the third person ----------------------------------------------------------------------------
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


def _sentence(s: str) -> str:
    s = s.strip(" ,;:-–—")
    s = s[0].upper() + s[1:] if s else s
    if len(s) > MAX_MEMORY_CHARS:
        s = s[: MAX_MEMORY_CHARS - 3].rsplit(" ", 1)[0] + "..."
    return s if s.endswith((".", "!", "...")) else s.rstrip("?") + "."


# -- subject, relation, retracted values ---------------------------------------------------------
def _split_subject(s: str) -> tuple[str, str, list[str]]:
    """(subject key, the verb's lemma with its preposition, the words after the verb)."""
    words = _words(s)
    if not words:
        return "", "", []
    i = 0
    if words[0] in ("i", "i'm", "im", "i've", "i'd", "i'll", "we", "we're", "we've", "we'd", "we'll", "me"):
        subject = "user"
        i = 1
        if words[0] in ("i'm", "im", "we're"):
            words = words[:1] + ["be"] + words[1:]
        elif words[0] in ("i've", "we've"):
            words = words[:1] + ["have"] + words[1:]
    else:
        head = []
        while i < len(words) and words[i] not in AUXILIARIES and (
                words[i] not in VERB_FORMS or i == 0 or words[i] in PERSON_NOUNS or words[i].endswith("ing")
                or words[i - 1] in ("the", "my", "our", "a", "an", "his", "her", "their", "this", "that")):
            if words[i].endswith("'s") and words[i][:-2] in AUXILIARIES | {"it", "that", "he", "she", "there"}:
                break
            if words[i].endswith("'s") and i + 1 < len(words) and (words[i + 1] in VERB_FORMS or
                                                                    words[i + 1] in ("been", "got", "just")):
                head.append(words[i][:-2])  # "Mum's moved in with us": has, not a possessive
                i += 1
                break
            head.append(words[i])
            i += 1
            if len(head) > 6:
                break
        if words[0] in ("my", "our") and len(head) > 1:
            subject = " ".join(w for w in head[1:3] if w not in STOPWORDS or w.endswith("'s"))
        else:
            subject = " ".join(w for w in head if w not in ("the", "a", "an", "this", "that"))[:40]
    while i < len(words) and (words[i] in ADVERBS or words[i] in ("not", "n't", "don't", "doesn't", "didn't",
                                                                  "never", "do", "does", "did")):
        i += 1
    if i < len(words) and words[i] in ("isn't", "aren't", "wasn't", "weren't", "ain't"):
        words[i] = "be"
    verb = LEMMA.get(words[i], words[i]) if i < len(words) else ""
    if verb in ("be", "have") and i + 1 < len(words) and words[i + 1].endswith("ing") and words[i + 1] in LEMMA:
        i += 1  # "I'm living in Berlin": the verb is "live"
        verb = LEMMA[words[i]]
    if verb in ("be", "have") and i + 1 < len(words) and words[i + 1] in ("called", "named"):
        verb = "name"
    if verb == "be" and i + 1 < len(words) and re.search(rf"\b{re.escape(words[i])}\s+[A-Z][a-z]", s):
        verb = "name"  # "my dog is Biscuit"
    if verb in ("be", "name") and re.search(r"(?:^|(?:'s)? )name$", subject):  # "my dog's name is" = "my dog is called"
        subject, verb = re.sub(r"(?:^|(?:'s)? )name$", "", subject).strip() or "user", "name"
    subject = subject.replace("favourite", "favorite").replace("colour", "color")
    rest = words[i + 1:]
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
            words = [w for w in _words(value) if w not in STOPWORDS]
            if words and value.lower() not in out:
                out.append(value.lower())
    return out


# -- classification ------------------------------------------------------------------------------
def _is_question(s: str) -> bool:
    if _QUESTION.match(s):
        return True
    if re.match(r"^(?:turns out |so |and |apparently )?(?:i|my|we|our)\b", s, re.I):
        return False  # "turns out I have a 1934 stamp that might be worth something??"
    return s.rstrip().endswith("?")


def _is_request(s: str) -> bool:
    first = _words(s)[:1]
    if first and first[0] in _IMPERATIVE:
        # "Keep ..." / "Call me ..." / "Say ..." are imperatives; "I ..." never gets here.
        return True
    return bool(_REQUEST.match(s))


def _feeling_only(s: str) -> bool:
    """'I'm so tired today', 'ugh I feel a bit lost': a passing state with nothing particular in it."""
    s = re.sub(r"^(?:today|tonight|this (?:morning|evening|afternoon)|right now|lately|these days),?\s+", "", s, flags=re.I)
    m = re.match(r"^(?:i|we)\s*(?:'m|am|'re|are|was|were|feel|felt|'ve been|have been|'m feeling|am feeling|"
                 r"'re feeling|get|got|'m getting|seem|m)\b(?P<rest>.*)$", s, re.I)
    if not m:
        return False
    rest = [w for w in _words(m["rest"]) if w not in INTENSIFIERS and w not in NOW_WORDS]
    if not rest:
        return True
    if re.match(r"^(?:i|we)\s*(?:feel|felt|'m feeling|am feeling|'re feeling)\b", s, re.I):
        return not (_specific(m["rest"], strict=True) or re.search(r"\b(?:my|our)\s+\w+", m["rest"], re.I))
    if not any(w in FEELINGS for w in rest):
        return False
    if not _has_content(" ".join(w for w in rest if w not in FEELINGS)):
        return True
    if _specific(m["rest"], strict=True) or re.search(r"\b(?:my|our)\s+\w+", m["rest"], re.I):
        return False
    return all(w in FEELINGS or w in STOPWORDS or w in NOW_WORDS or w in INTENSIFIERS or w in PREPOSITIONS
               for w in rest) or len(rest) <= 3


_COGNITION = re.compile(r"^(?:i|we)(?:'m|'ve been|'re|'ve|'d)?\s+(?:(?:'ve been|have been|'m|am|was|were|'re|are|keep|kept|"
                        r"really|honestly|just|kind of|kinda|sort of|also|still|do|don't|do not|"
                        r"totally|completely|absolutely|sometimes)\s+)*(?:thinking(?! of)|reflecting|wondering|trying|"
                        r"pondering|processing|telling myself|reminding myself|think|guess|suppose|believe|wonder|hope|"
                        r"wish|mean|know|understand|see|agree|disagree|bet|doubt|assume|reckon|imagine|feel like|"
                        r"get it|remember when|forgot|forget|can't believe|cannot believe|appreciate|apologi[sz]e|"
                        r"love (?:it|that|this|you|how)|like (?:it|that|this|how)|hate (?:it|that|when)|"
                        r"miss (?:you|it|that)|need to|have to|should|must|want to know|was just|just wanted)\b"
                        r"(?P<rest>.*)$", re.I)


def _empty_opinion(s: str) -> bool:
    """'I think so', 'I agree with you', 'I love it!': first person, nothing held."""
    m = _COGNITION.match(s)
    if not m:
        return False
    rest = re.sub(r"^\s*(?:that|so|it|this)\b", "", m["rest"], flags=re.I)
    return not (_specific(rest) or re.search(r"\b(?:my|our)\s+\w+", rest, re.I))


_SUBORDINATE = re.compile(r"^(?:whenever|when|every time|each time|if|because|since|although|though|while|as|"
                          r"after|before|once|until)\b[^,]*,\s*", re.I)


def _main_clause(s: str) -> str:
    """'When I look at the stars, I feel small' -> 'I feel small'."""
    return _SUBORDINATE.sub("", s) or s


_VAGUE = {"thing", "things", "stuff", "way", "time", "times", "lot", "lots", "bit", "week", "day", "days", "year",
          "years", "today", "somewhere", "someone", "somebody", "something", "anything", "everything", "nothing",
          "life", "kind", "sort", "fast", "slow", "good", "bad", "better", "worse", "hard", "easy", "little", "big",
          "long", "back", "enough", "sense", "point", "moment", "while", "minute", "yourself", "others", "people",
          "world", "mind", "head", "heart", "feelings", "feeling", "share", "chat", "talk", "message", "messaging",
          "user", "reason", "idea", "sure", "why", "that's", "it's", "there's", "what's", "now", "tonight"}


_EMPTY_VERBS = set("""be have do get go make feel think try want need realize realise know see mean say tell hold share
keep come take put let seem look guess hope wish believe survive manage cope deal message chat talk reflect
process figure wonder remember forget notice learn understand happen wait sit stay rest vent rant ramble read hear
see watch""".split())


def _has_content(s: str) -> bool:
    """A word that names something: not a pronoun, a feeling, a verb, or a word for anything at all."""
    for w in _content_words(s):
        if w in FEELINGS or w in _VAGUE or w in ADVERBS or w in INTENSIFIERS:
            continue
        if LEMMA.get(w, w) in _EMPTY_VERBS or re.sub(r"(?:ed|d|ing)$", "", w) in _EMPTY_VERBS \
                or re.sub(r"(?:ed|ing)$", "e", w) in _EMPTY_VERBS:
            continue
        return True
    return bool(_specific(s, strict=True))


@dataclass
class Context:
    """Who "she" and "it" are: kept across the messages of one conversation."""
    said_on: date | None = None
    last_person: str | None = None  # "my sister": what "she" refers to in the next sentence
    last_thing: str | None = None  # "the standup": what "it" refers to
    unnamed: str | None = None  # "my sister" spoken of without a name, in the sentence before


def _resolve_pronoun(s: str, ctx: Context) -> str | None:
    m = re.match(r"^(he's|she's|they're|he|she|they|his|her|their|it's|its|it)\b", s, re.I)
    if not m:
        return s
    if m[1].lower().startswith("it"):
        if ctx.last_thing is None:
            return s
        if m[1].lower() == "it's" and re.match(r"^it's\s+been\b", s, re.I):
            return f"{ctx.last_thing} has{s[m.end():]}"
        return (f"{ctx.last_thing} is" if m[1].lower() == "it's" else
                f"{ctx.last_thing}'s" if m[1].lower() == "its" else ctx.last_thing) + s[m.end():]
    if ctx.last_person is None:
        return None
    word = m[1].lower()
    target = ctx.last_person
    if word in ("his", "her", "their"):
        return f"{target}'s{s[m.end():]}"
    if word.endswith("'s") or word.endswith("'re"):
        return f"{target} is{s[m.end():]}"
    rest = s[m.end():]
    if word == "they":  # "they live" -> "my parents live": the verb agrees already
        return f"{target}{rest}"
    return f"{target}{rest}"


def _remember_person(s: str, ctx: Context) -> None:
    named = re.match(r"^([A-Z][a-z][\w'-]*)(?:\s+\([^)]*\))?\s+(?:is|was|has|had|got|'s|just|left|moved|works|lives|"
                     r"started|quit|joined)\b", s)
    if named and named[1].lower() not in STOPWORDS and _proper_nouns(s)[:1] == [named[1]]:
        ctx.last_person = named[1]  # "Olusegun is leaving. He got a job at ..."
    m = None
    for m in re.finditer(r"\b(?:my|our|the)\s+((?:[\w-]+\s+){0,2}?(?:" + "|".join(PERSON_NOUNS) +
                         r"))(?:,?\s+([A-Z][\w'-]+))?\b", s, re.I):
        pass
    if m:
        named = m[2] and m[2][0].isupper()
        ctx.last_person = f"my {m[1]}" + (f" {m[2]}" if named else "")
        ctx.unnamed = None if named else f"my {m[1]}"


def _link_name(s: str, ctx: Context) -> str:
    """"...my sister. Marta called last night": Marta is the sister just spoken of."""
    m = re.match(r"^([A-Z][a-z][\w'-]*)(?=\s+(?!is my|is our|and\b)[a-z])", s)
    if not m or ctx.unnamed is None or m[1].lower() in STOPWORDS or not _proper_nouns(s)[:1] == [m[1]]:
        return s
    linked = f"{m[1]} ({ctx.unnamed}){s[m.end():]}"
    ctx.unnamed = None
    return linked


def classify(sentence: str, ctx: Context, explicit: bool = False) -> Candidate | None:
    """The memory in one sentence, or None."""
    s = _clean(sentence)
    lead_change = bool(_CHANGE_LEAD.match(s))
    explicit = explicit or bool(_EXPLICIT_LEAD.match(s))
    s = _LEADING.sub("", s).strip(" ,;:-–—")
    if not s or not re.search(r"[A-Za-z]", s):
        return None
    s = _link_name(s, ctx)  # a name opening this sentence, linked to who the one before spoke of
    ctx.unnamed = None
    _remember_person(s, ctx)  # whatever this sentence is, "she" in the next may be who it names
    m = _EXPLICIT.match(s)
    if m and m["body"].strip():
        body = m["body"].strip()
        if re.match(r"^to\s+\w", body, re.I):  # "remember to buy milk": a reminder
            if re.search(r"\byou(?:rself|r)?\b", body, re.I):
                return None  # "remember to be kind to yourself": advice
            text = _sentence("The user wants to remember " + third_person(body))
            return Candidate(text, _sentence("remember " + body), "fact", None, explicit=True)
        return classify(body, ctx, explicit=True)
    if m:
        return None  # "Remember that!" with nothing in it
    s = s.rstrip(" .!;")
    words = _words(s)
    if len([w for w in words if not any(ch.isdigit() for ch in w)]) >= 6 and not any(w in STOPWORDS for w in words):
        return None  # not English: nothing is made up from what we cannot read
    told = re.match(r"^(?:did you know|do you know|fun fact|guess what)(?: that)?[,:]?\s+(?P<fact>.+?)\??$", s, re.I)
    if told and not re.match(r"^(?:what|who|where|when|why|how|which|if|whether)\b", told["fact"], re.I):
        s = told["fact"]  # "Did you know octopuses have three hearts?": told, not asked
    if _is_question(s):
        return None
    if _INSTRUCTION.match(s) and not re.match(r"^(?:always|never)\s+(?:i|we|my)\b", s, re.I) \
            and (_ANSWER_WORDS.search(s) or re.search(r"\b(?:you|me)\b", s, re.I)) \
            and not re.search(r"\b(?:i|we)\s+(?:\w+\s+)?(?:think|feel|hear|remember|get|go|am|was)\b", s, re.I):
        body = re.sub(r"^please\s+", "", s, flags=re.I)
        return Candidate(f'The user asked: "{_sentence(body)}"', _sentence(body), "instruction", None,
                         explicit=explicit)
    if re.match(r"^(?:please\s+)?(?:keep|make|give|write|use)\b.*\b(?:answers|replies|responses)\b", s, re.I):
        return Candidate(f'The user asked: "{_sentence(s)}"', _sentence(s), "instruction", None, explicit=explicit)
    if _is_request(s) and not re.match(r"^[Cc]all me\s+[A-Z]", s):
        return None
    if _HYPOTHETICAL.search(s) or _LISTENER.match(s) or _CHITCHAT.fullmatch(s.lower().strip(" !.,")) \
            or _CHITCHAT.match(s) and len(_content_words(s)) <= 2:
        return None
    call_me = re.match(r"^[Cc]all me\s+(?P<n>[A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)?)", s)
    if call_me:
        name = call_me["n"]
        return Candidate(f"The user wants to be called {name}.", _sentence(f"Call me {name}"), "instruction",
                         "user|name", explicit=explicit, subject="user", values=(name,))
    negated = re.search(r"\b(?:is|are|was)n't\s+((?:my|our|the)\s+[\w' -]+?)\s+(?:any ?more|any longer)", s, re.I)
    if negated:  # "Sophie isn't my manager any more, it's Aleksandr": "it" is the manager
        ctx.last_thing = negated[1]
    resolved = _resolve_pronoun(s, ctx)
    thing = re.match(r"^((?:my|our|the)\s+(?:[\w'-]+\s+){0,3}?)(?:is|was|are|isn't|wasn't|has|moved|starts|"
                     r"happens|takes)\b", s, re.I)
    if thing and not negated:
        ctx.last_thing = thing[1].strip()
    if resolved is None and (not _specific(s, strict=True) or re.match(r"^(?:his|her|their)\b", s, re.I)):
        return None  # "She loves it" with nobody to refer to; "she's a vet in Gdańsk" still says something
    s = resolved or s
    if re.search(r"\b(?:is|are|was|were|do|does|did|has|have|had|can|could|will|would|isn't|doesn't|didn't|won't)"
                 r"(?:[\s,]+(?:not|too|so|yes|no|indeed|really|though|either|honestly|definitely|totally))*[\s,.!]*$",
                 s, re.I) and len(_words(s)) <= 8:
        return None  # "She does, yes": an echo of something said before, nothing held
    personal = bool(_PERSONAL.search(s))
    low = s.lower()
    subject_word = _words(s)[:2]
    if subject_word[:1] == ["my"] and len(subject_word) > 1 and subject_word[1] in _BAD_SUBJECTS:
        return None
    if not explicit:
        if len(_words(s)) <= 3 and not any(w in VERB_FORMS or w in AUXILIARIES or w.endswith(("ed", "'s", "'m", "'re"))
                                           for w in _words(s)):
            return None  # "my sister." - nothing said about it
        if re.search(r"\b(?:thank you|thanks)\b", s, re.I) and not _specific(s, strict=True):
            return None
        if re.match(r"^(?:it|that|this|these|those|there|here|he|she|they|which|what)\b", low):
            if not (personal and _specific(s)):
                return None
        if not _has_content(s):
            return None
        main = _main_clause(s)
        if re.search(r"\b(?:going to|gonna|about to|off to|heading (?:out|off) to)\b.*\b(?:now|right now|in a bit|"
                     r"in a minute|shortly|soon)\b", s, re.I) and not _specific(s, strict=True):
            return None  # "I'm going to make dinner now": what happens next, not something to keep
        if personal:
            if _feeling_only(main) or _empty_opinion(main):
                return None
            if not re.match(r"^(?:my|our|i|we|me)\b", low) and not _specific(s) and (
                    _PLATITUDE.search(s) or _GENERIC_OPENING.match(s)):
                return None
        else:
            if _PLATITUDE.search(s) or _GENERIC_OPENING.match(s) or not _specific(s):
                return None
            if re.search(r"\b(?:should|must|ought to|need to|have to|better|best|important|essential|crucial)\b",
                         low) and not re.search(r"\d", s):
                return None  # advice
    return _candidate(s, ctx, explicit, lead_change)


def _candidate(s: str, ctx: Context, explicit: bool, lead_change: bool) -> Candidate:
    said = s
    if ctx.said_on is not None:
        said = when.resolve(said, ctx.said_on)
    text = _sentence(third_person(said))
    if not re.match(r"^the user", text, re.I) and _PERSONAL.search(said) is None and not explicit:
        text = _sentence(said)
    subject, relation, rest = _split_subject(s)
    retracts = tuple(retracted_values(s))
    change = lead_change or bool(_CHANGE.search(s)) or bool(retracts)
    negative_only = bool(retracts) and not re.search(
        r"\bfrom\b.+\bto\b|\brather than\b|\binstead of\b|\b(?:now|new|bought|got|for|replaced with)\b", s, re.I)
    kind = "preference" if re.search(r"\b(?:like|love|enjoy|prefer|adore|hate|dislike|can't stand|cannot stand|"
                                     r"favou?rite|fan of|rather|loathe|detest|into)\b", s, re.I) else "fact"
    key = f"{subject}|{relation_class(relation)}" if subject and relation else None
    values = tuple(_proper_nouns(s)) or tuple(_content_words(" ".join(rest))[:3])
    return Candidate(text, _sentence(said), kind, key, explicit=explicit, retracts=retracts, change=change,
                     retraction_only=negative_only, subject=subject, values=values, event=bool(_EVENT.search(s)))


_CONTINUES = re.compile(r"^(?:it|it's|it is|its|that's|that is|this is|they're|they are)\b", re.I)


def extract(text: str, said_on: date | None = None, context: Context | None = None) -> list[Candidate]:
    """Memories in one user message, in order. ``context`` carries who was spoken of from one
    message of a conversation to the next."""
    ctx = context or Context()
    ctx.said_on = said_on
    ctx.last_thing = ctx.unnamed = None  # only people are spoken of again from one message to the next
    out: list[Candidate] = []
    explicit_next = False
    previous: Candidate | None = None
    pending: str | None = None
    for sentence in sentences.split(text):
        cleaned = _LEADING.sub("", _clean(sentence)).strip(" .!")
        verbless = not any(w in VERB_FORMS or w in AUXILIARIES or w.endswith(("ed", "'m", "'re", "'s", "'ve"))
                           for w in _words(cleaned))
        took_back = re.match(r"^not\s+(?P<v>[\w:.' -]{1,30})$", cleaned, re.I)
        if took_back:  # "not 112, it's locker 211": what follows is the value, this one is taken back
            pending = took_back["v"].strip().lower()
            continue
        if previous is not None and (_CONTINUES.match(cleaned) and ctx.last_thing is None or verbless) \
                and not _is_question(cleaned) and (_specific(cleaned, strict=True) or len(_content_words(cleaned)) >= 2):
            # "I started a podcast. It's called Quiet Hours": the name belongs to the podcast.
            more = third_person(cleaned)
            joined = replace(previous, text=_sentence(previous.text.rstrip(".") + ". " + more[:1].upper() + more[1:]),
                             index_text=_sentence(previous.index_text.rstrip(".") + ". " + cleaned),
                             change=previous.change or bool(_CHANGE.search(cleaned)))
            out[-1] = previous = joined
            continue
        stripped = _LEADING.sub("", _clean(sentence)).strip()
        bare = _EXPLICIT.match(stripped)
        if bare and not bare["body"].strip(" .!:"):
            explicit_next = sentence.rstrip().endswith(":") or explicit_next
            continue
        found = classify(sentence, ctx, explicit=explicit_next or bool(pending and _CONTINUES.match(cleaned)))
        explicit_next = False
        if found is not None and pending:
            found = replace(found, retracts=(*found.retracts, pending), change=True)
        pending = None
        previous = found
        if found is not None:
            out.append(found)
    return out
