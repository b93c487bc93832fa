"""What a sentence looks like: the cues the fast memory's capture model weighs (questions, requests,
hypotheticals, chit-chat, platitudes, moods, first person, something specific ...). Patterns and
pure predicates; data, not decisions: clagent/memory/capture_model.py decides."""

from __future__ import annotations

import re

from clagent.memory.words import (ADVERBS, AUXILIARIES, FEELINGS, INTENSIFIERS, LEMMA, NOW_WORDS, PREPOSITIONS,
                                  STOPWORDS, VERB_FORMS)

LEADING = re.compile(
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
CHANGE_LEAD = re.compile(r"^(?:actually|in fact|correction|scratch that|update|sorry|my mistake|my bad|wait|"
                          r"i mean|to be clear|just to be clear|quick update)\b", re.I)
EXPLICIT_LEAD = re.compile(r"^(?:just so you know|fyi|for the record|for your information|note to self|important|"
                            r"heads up|reminder|note)\b", re.I)
EXPLICIT = re.compile(
    r"^(?:(?:please|pls|can you|could you|would you)\s+)?(?:remember|note(?: down| that)?|make a note|"
    r"take (?:a )?note|keep in mind|bear in mind|don't forget|do not forget|never forget|memori[sz]e|"
    r"save|store|log|jot down|write down|file (?:this|that)|note to self|for future reference)"
    r"(?:\s+(?:that|this|the following|for me|for later|it))*\s*[:,\-–—]?\s*(?P<body>.*)$", re.I)

# -- sentence kinds that are never memories -----------------------------------------------------
Q_WORD = r"(?:what|whats|who|whos|whom|whose|where|wheres|when|why|how|hows|which)"
AUX_Q = (r"(?:do|does|did|is|are|was|were|can|could|would|will|should|shall|may|might|have|has|am|"
          r"don't|doesn't|didn't|isn't|aren't|wasn't|can't|couldn't|won't|wouldn't|shouldn't|haven't|hasn't)")
QUESTION = re.compile(
    rf"^(?:{Q_WORD}(?:'s|'re|'d|'ll)?\b(?!\s+(?:i|we|my|our)\b)|{AUX_Q}\s+(?:you|i|we|it|there|they|he|she|my|"
    r"the|this|that|your|our|u|anyone|anybody|someone|somebody|any|a|an)\b|i wonder|i was wondering|i'm wondering|"
    r"any (?:idea|ideas|tips|thoughts|suggestions|recommendations)|anyone know|is it true|"
    r"i(?:'d| would) (?:like|love) to know|i want to know|i need to know|i'm curious|i am curious)", re.I)
IMPERATIVE = set("""
write tell give show help make list explain translate summarise summarize describe find create generate
suggest recommend fix check compare calculate convert draft compose rewrite edit proofread correct send
book set remind add remove delete search look read let lets let's please plz pls go try use stop be imagine
pretend suppose assume consider name plan design define teach walk guide code debug build draw sing
pick choose say repeat continue answer respond reply outline analyze analyse evaluate review sort
format count estimate predict guess quiz ask call open run start finish share keep talk chat think
brainstorm rate rank critique recap paraphrase shorten expand elaborate clarify simplify sum
""".split())
REQUEST = re.compile(
    r"^(?:can|could|would|will)\s+(?:you|u)\b|^would you mind|^(?:i|we)\s+(?:want|need|would like|'d like|"
    r"wanna)\s+(?:you|u)\b|^i(?:'d| would) like (?:a|an|some|to (?:ask|know|see|get|have|hear|learn more))\b|"
    r"^i need (?:a|an|some|help|ideas|advice|suggestions|tips|you|to know|to ask|a hand)\b|"
    r"^(?:i'm|i am|we're|we are) looking for (?:a|an|some|ideas|advice|help|suggestions|recommendations)\b|"
    r"^how about\b|^what about\b|^help\b|^let me know\b|^tell me\b|^show me\b|^give me\b|^i have a question\b|"
    r"^quick question\b|^question\b|^just wondering\b", re.I)
HYPOTHETICAL = re.compile(
    r"^(?:if|imagine|suppose|supposing|pretend|let's say|lets say|say|assume|assuming|what if|hypothetically|"
    r"in theory|in a (?:world|parallel universe)|picture this|consider)\b|\bif (?:i|we) (?:were|was|had|could|did|"
    r"lived|won|owned)\b|\b(?:i|we) wish\b|\bwould have\b|\bcould have been\b|\bif only\b|\bin my dreams?\b|"
    r"\bif (?:my|our)\b.*\bwould\b", re.I)
LISTENER = re.compile(r"^(?:you|your|you're|youre|you've|you'll|you'd|u|ur|thank you|thanks|thx|ty|cheers|"
                       r"thank u|appreciate it|bless you|good job|well done|nice one|great job)\b", re.I)
PLATITUDE = re.compile(
    r"\b(?:every(?:one|body|thing)|no ?one|nobody|people (?:who|are|should|need|can)|life|everyday life|success|happiness|progress|"
    r"hard work|practice|patience|kindness|change|growth|failure|mistakes|the journey|the key|"
    r"small (?:steps|wins)|one step at a time|baby steps|each day|tomorrow is|you got this|you've got this|"
    r"you can do (?:it|this)|keep (?:going|it up|pushing)|don't give up|never give up|hang in there|"
    r"proud of you|believe in yourself|it's okay to|it is okay to|it's ok to|self[- ]care|"
    r"never too late|worth it|what matters|that matters|matters most|it takes time|good things|"
    r"be kind|stay positive|things happen|everything happens|time heals|it is what it is|such is life|"
    r"the best is yet|good luck|congrat\w*|well done|good for you|bad for you)\b", re.I)
GENERIC_OPENING = re.compile(
    r"^(?:it(?:'s| is| was| can be| will be| gets)|that(?:'s| is| was)|this(?:'s| is| was)|there(?:'s| is| are)|"
    r"every|each|all|any|one should|you should|you have to|you need to|you can|you never|we all|we should|"
    r"we must|we need|sometimes|always|never|nothing|the (?:best|hardest|most important|important thing|"
    r"secret|trick|point|key)|what (?:matters|counts)|a (?:little|small|good|healthy|balanced))\b", re.I)
CHITCHAT = re.compile(
    r"^(?:thanks?(?: (?:a lot|so much|again|anyway|for \w+(?: \w+){0,4}))?|thank you(?: .*)?|ty|thx|cheers|"
    r"cool|nice|great|awesome|perfect|amazing|wonderful|lovely|sweet|neat|fair enough|got it|gotcha|i see|"
    r"makes sense|sounds (?:good|great|fun|nice|lovely|like a plan)|no worries|no problem|np|of course|sure|"
    r"indeed|exactly|true|agreed|alright|all right|bye|goodbye|see you|see ya|later|good night|gn|"
    r"good (?:morning|afternoon|evening|day)|hello|hi|hey|yo|lol|lmao|haha|hehe|ha|hmm|ok|okay|k|yes|no|yeah|"
    r"nope|yep|same|me too|not really|not quite|not exactly|that's (?:it|all|right|wrong|correct|true|"
    r"fine|cool|nice|great|funny|interesting|sad|awesome|amazing|perfect|not right|not it|not what i)|"
    r"try again|wrong|correct|right|close|almost|nope|nah|wow|whoa|omg|oh my|good point|interesting|"
    r"never mind|nevermind|forget it|my pleasure|you're welcome|welcome)\b", re.I)
BAD_SUBJECTS = {"question", "point", "guess", "problem", "answer", "idea", "concern", "request", "issue", "bad",
                 "fault", "pleasure", "turn", "mistake", "apologies", "opinion", "thought", "thoughts",
                 "suggestion", "message", "prompt", "task", "homework", "goodness", "god", "gosh", "word",
                 "advice", "take", "two cents", "understanding", "impression", "hope", "wish", "dream", "head",
                 "brain", "mind", "heart", "mood", "day", "week", "morning", "night", "life"}
INSTRUCTION = re.compile(
    r"^(?:please\s+)?(?:from now on|going forward|from here on(?: out)?|in (?:the )?future|for future answers|"
    r"always|never|whenever you|every time you|each time you|any time you|don't ever|do not ever|"
    r"stop \w+ing|no more|(?:please )?(?:don't|do not) (?=.*\b(?:answer|repl|respon|you)))\b", re.I)
ANSWER_WORDS = re.compile(r"\b(?:answers?|repl(?:y|ies)|respon(?:d|ses?)|explain|explanations?|write|"
                           r"use|give|call|address|talk|speak|format|units?|language|emoji|tone|short|brief|"
                           r"concise|bullet|examples?|code|sources?|summar\w+|words?|sentences?)\b", re.I)

# -- what makes a sentence about something in particular ----------------------------------------
PERSONAL = re.compile(r"\b(?:i|me|my|mine|myself|we|us|our|ours|ourselves|i'm|im|i've|i'd|i'll|we're|"
                       r"we've|we'd|we'll)\b", re.I)
NUMBER_WORDS = (r"(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|"
                 r"forty|fifty|hundred|thousand|million|billion|dozen|half|first|second|third|twice|once)")
SPECIFIC = re.compile(
    rf"\d|\b{NUMBER_WORDS}\b|\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|january|february|"
    r"march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sep|"
    r"sept|oct|nov|dec|yesterday|tomorrow|tonight|weekend|weekdays?|noon|midnight|morning|evening)\b|"
    r"\w+[-_.]\w*\d|[#@$€£%]", re.I)
# Words that say a value changed. Life events ("moved", "started", "sold") are not among them: they
# replace a value only through a relation that holds one value (where one lives) or what they take back.
CHANGE = re.compile(
    r"(?<!right )(?<!just )(?<!for )(?<!by )\b(?:now(?! and then)|these days|nowadays|any ?more|no longer|"
    r"not any longer|instead|correction|"
    r"scratch that|changed?|switched|replaced|rescheduled|postponed|updated?|rather than|not anymore|rebooked|"
    r"renamed?|upped|bumped|migrated|new \w+ is|is new)\b", re.I)
# Life events that may replace a value: only where the older memory names the same thing.
EVENT = re.compile(r"\b(?:new|moved|started|quit|stopped|sold|got|bought|joined|left|switched|changed|"
                    r"promoted|got rid of|traded)\b", re.I)
PERSON_NOUNS = set("""
sister brother mother father mom mum dad mama papa parents parent wife husband partner spouse girlfriend
boyfriend fiance fiancee son daughter kid kids child children baby grandma grandmother grandpa grandfather
granny nan aunt uncle cousin niece nephew friend bestie colleague coworker co-worker boss manager
neighbour neighbor roommate flatmate housemate teacher doctor therapist dentist landlord landlady mentor
student client team lead stepmom stepdad stepson stepdaughter twin in-laws mother-in-law father-in-law
dog cat puppy kitten horse rabbit bunny hamster parrot budgie tortoise turtle pony
""".split())


# Capitalised words that name no one in particular.
COMMON_CAPITALISED = set("""monday tuesday wednesday thursday friday saturday sunday january february march april may
june july august september october november december christmas easter the a an i i'm i've i'd i'll ok okay
english mum mom dad""".split())


def clean(s: str) -> str:
    s = s.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    s = re.sub(r"[\U0001F300-\U0001FAFF\u2600-\u27BF\uFE0F]+", " ", s)  # emoji
    s = re.sub(r"(?:\s+(?:lol|lmao|haha+|hehe|xd|:\)|:\(|:D|;\)|<3))+\s*$", "", s, flags=re.I)
    s = re.sub(r"\s+", " ", s).strip()
    return s.strip(" \"'`")


def words(s: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", s.lower())


def content_words(s: str) -> list[str]:
    return [w for w in words(s) if w not in STOPWORDS and len(w) > 1 or w.isdigit()]


def proper_nouns(s: str) -> list[str]:
    """Capitalised words other than 'I' and a sentence's ordinary first word. A capitalised first word
    followed by a verb ("Theo dropped violin", "Venus rotates") is taken for a name."""
    tokens = re.findall(r"[A-Za-z][\w'-]*", s)
    out = [t for i, t in enumerate(tokens) if i > 0 and t[0].isupper() and t not in ("I", "I'm", "I've", "I'd", "I'll")]
    if len(tokens) > 1 and tokens[0][0].isupper() and tokens[0].lower() not in STOPWORDS | VERB_FORMS | IMPERATIVE:
        following = tokens[1].lower()
        if following not in ("that's", "it's", "there's", "what's", "who's", "he's", "she's") and (following in VERB_FORMS or following in AUXILIARIES
                                           or following.endswith(("'s", "ed", "es"))):
            out.insert(0, tokens[0])
    return out


def specific(s: str, strict: bool = False) -> bool:
    """A name, a number, a date, a code: something in particular. ``strict`` leaves out times of day."""
    if strict:
        return bool(re.search(r"\d|[#@$€£%]", s) or proper_nouns(s))
    return bool(SPECIFIC.search(s) or proper_nouns(s) or re.search(r"\b(?:called|named|known as)\b", s, re.I))




def is_question(s: str) -> bool:
    if QUESTION.match(s):
        return True
    if re.match(r"^(?:turns out |so |and |apparently )?(?:i|my|we|our)\b", s, re.I):
        return False  # "turns out I have a 1934 stamp that might be worth something??"
    return s.rstrip().endswith("?")


def is_request(s: str) -> bool:
    first = words(s)[:1]
    if first and first[0] in IMPERATIVE:
        # "Keep ..." / "Call me ..." / "Say ..." are imperatives; "I ..." never gets here.
        return True
    return bool(REQUEST.match(s))


def feeling_only(s: str) -> bool:
    """'I'm so tired today', 'ugh I feel a bit lost': a passing state with nothing particular in it."""
    s = re.sub(r"^(?:today|tonight|this (?:morning|evening|afternoon)|right now|lately|these days),?\s+", "", s, flags=re.I)
    m = re.match(r"^(?:i|we)\s*(?:'m|am|'re|are|was|were|feel|felt|'ve been|have been|'m feeling|am feeling|"
                 r"'re feeling|get|got|'m getting|seem|m)\b(?P<rest>.*)$", s, re.I)
    if not m:
        return False
    rest = [w for w in words(m["rest"]) if w not in INTENSIFIERS and w not in NOW_WORDS]
    if not rest:
        return True
    if re.match(r"^(?:i|we)\s*(?:feel|felt|'m feeling|am feeling|'re feeling)\b", s, re.I):
        return not (specific(m["rest"], strict=True) or re.search(r"\b(?:my|our)\s+\w+", m["rest"], re.I))
    if not any(w in FEELINGS for w in rest):
        return False
    if not has_content(" ".join(w for w in rest if w not in FEELINGS)):
        return True
    if specific(m["rest"], strict=True) or re.search(r"\b(?:my|our)\s+\w+", m["rest"], re.I):
        return False
    return all(w in FEELINGS or w in STOPWORDS or w in NOW_WORDS or w in INTENSIFIERS or w in PREPOSITIONS
               for w in rest) or len(rest) <= 3


COGNITION = re.compile(r"^(?:i|we)(?:'m|'ve been|'re|'ve|'d)?\s+(?:(?:'ve been|have been|'m|am|was|were|'re|are|keep|kept|"
                        r"really|honestly|just|kind of|kinda|sort of|also|still|do|don't|do not|"
                        r"totally|completely|absolutely|sometimes)\s+)*(?:thinking(?! of)|reflecting|wondering|trying|"
                        r"pondering|processing|telling myself|reminding myself|think|guess|suppose|believe|wonder|hope|"
                        r"wish|mean|know|understand|see|agree|disagree|bet|doubt|assume|reckon|imagine|feel like|"
                        r"get it|remember when|forgot|forget|can't believe|cannot believe|appreciate|apologi[sz]e|"
                        r"love (?:it|that|this|you|how)|like (?:it|that|this|how)|hate (?:it|that|when)|"
                        r"miss (?:you|it|that)|need to|have to|should|must|want to know|was just|just wanted)\b"
                        r"(?P<rest>.*)$", re.I)


def empty_opinion(s: str) -> bool:
    """'I think so', 'I agree with you', 'I love it!': first person, nothing held."""
    m = COGNITION.match(s)
    if not m:
        return False
    rest = re.sub(r"^\s*(?:that|so|it|this)\b", "", m["rest"], flags=re.I)
    return not (specific(rest) or re.search(r"\b(?:my|our)\s+\w+", rest, re.I))


SUBORDINATE = re.compile(r"^(?:whenever|when|every time|each time|if|because|since|although|though|while|as|"
                          r"after|before|once|until)\b[^,]*,\s*", re.I)


def main_clause(s: str) -> str:
    """'When I look at the stars, I feel small' -> 'I feel small'."""
    return SUBORDINATE.sub("", s) or s


VAGUE = {"thing", "things", "stuff", "way", "time", "times", "lot", "lots", "bit", "week", "day", "days", "year",
          "years", "today", "somewhere", "someone", "somebody", "something", "anything", "everything", "nothing",
          "life", "kind", "sort", "fast", "slow", "good", "bad", "better", "worse", "hard", "easy", "little", "big",
          "long", "back", "enough", "sense", "point", "moment", "while", "minute", "yourself", "others", "people",
          "world", "mind", "head", "heart", "feelings", "feeling", "share", "chat", "talk", "message", "messaging",
          "user", "reason", "idea", "sure", "why", "that's", "it's", "there's", "what's", "now", "tonight"}


EMPTY_VERBS = set("""be have do get go make feel think try want need realize realise know see mean say tell hold share
keep come take put let seem look guess hope wish believe survive manage cope deal message chat talk reflect
process figure wonder remember forget notice learn understand happen wait sit stay rest vent rant ramble read hear
see watch""".split())


def has_content(s: str) -> bool:
    """A word that names something: not a pronoun, a feeling, a verb, or a word for anything at all."""
    for w in content_words(s):
        if w in FEELINGS or w in VAGUE or w in ADVERBS or w in INTENSIFIERS:
            continue
        if LEMMA.get(w, w) in EMPTY_VERBS or re.sub(r"(?:ed|d|ing)$", "", w) in EMPTY_VERBS \
                or re.sub(r"(?:ed|ing)$", "e", w) in EMPTY_VERBS:
            continue
        return True
    return bool(specific(s, strict=True))

