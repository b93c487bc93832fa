"""Word lists the extractor reasons with: verbs and their forms, feelings, discourse markers.
Data, not rules."""

from __future__ import annotations

import re

_BASE_VERBS = """
be have do go get make take see come know think look want give use find tell ask work seem feel try
leave call keep let begin help show hear play run move live believe bring happen write provide sit
stand lose pay meet include continue set learn change lead understand watch follow stop create speak
read allow add spend grow open walk win offer remember love consider appear buy wait serve die send
expect build stay fall cut reach remain suggest raise pass sell require report decide pull drive eat
drink cook bake teach study travel visit fly ride swim hate like prefer enjoy adore own rent share
start finish join quit retire marry date graduate attend practise practice train paint draw sing
dance knit sew garden hike climb cycle bike ski surf fish hunt collect volunteer manage host organize
organise coach mentor deploy ship release test review code program develop design research publish
edit translate sleep wake rise wear need miss celebrate close cost weigh measure lie belong contain
mean hold dislike suffer arrive return commute sail row jog lift box fence golf bowl skate snowboard
brew roast grill knead plant grow harvest fix repair restore renovate paint decorate clean tidy
volunteer donate sponsor support supervise run own lease borrow lend owe earn save invest spend
cycle shop order subscribe watch stream listen binge read blog vlog post tweet email text phone
call visit host throw celebrate mark plan book schedule postpone cancel move relocate emigrate
settle rent buy sell trade swap switch replace upgrade downgrade adopt foster rescue breed
babysit nanny nurse treat diagnose operate prescribe take inject recover heal injure break sprain
wash bathe shave dress pack unpack load carry hang hate loathe detest fancy crave avoid skip
follow track log count measure weigh speak teach tutor lecture present pitch negotiate sign
hire fire promote resign retire apply interview qualify certify graduate enrol enroll major minor
""".split()

_IRREGULAR = """
was were been had did done went gone got gotten made took taken saw seen came knew known thought
gave given told found left felt kept began begun heard held brought wrote written sat stood lost
paid met led understood spoke spoken grew grown won bought built fell fallen sent spent sold taught
drove driven ate eaten drank drunk flew flown rode ridden swam swum ran wore worn slept woke woken
rose meant broke broken chose chosen forgot forgotten hid lay lit shook sang sung sank slid stole
stuck swore threw thrown tore wept dealt fed fought froze frozen hung laid lent sought shot shut
spun spread sprang struck strove swept swung bent bled blew blown bore born bred burnt caught clung
crept dug drew drawn dreamt fled flung forbade forgave forgiven ground leapt learnt mistook overcame
rang risen sewn shone shrank slung sped spelt split spoilt stank stung strode sworn tread woven wound
""".split()

PAST_FORMS = set(_IRREGULAR)


def _forms(base: str) -> set[str]:
    out = {base}
    if re.search(r"(?:s|sh|ch|x|z|o)$", base):
        out.add(base + "es")
    elif re.search(r"[^aeiou]y$", base):
        out.add(base[:-1] + "ies")
    else:
        out.add(base + "s")
    if base.endswith("e"):
        out |= {base + "d", base[:-1] + "ing"}
    elif re.search(r"[^aeiou]y$", base):
        out |= {base[:-1] + "ied", base + "ing"}
    else:
        out |= {base + "ed", base + "ing"}
        if re.search(r"[^aeiou][aeiou][bdgmnprt]$", base):
            out |= {base + base[-1] + "ed", base + base[-1] + "ing"}
    return out


LEMMA: dict[str, str] = {}
for _b in _BASE_VERBS:
    for _f in _forms(_b):
        LEMMA.setdefault(_f, _b)
LEMMA.update({"is": "be", "am": "be", "are": "be", "was": "be", "were": "be", "been": "be", "'s": "be",
              "'m": "be", "'re": "be", "has": "have", "had": "have", "'ve": "have", "does": "do", "did": "do",
              "went": "go", "gone": "go", "got": "get", "gotten": "get", "made": "make", "took": "take",
              "bought": "buy", "sold": "sell", "drove": "drive", "left": "leave", "moved": "move",
              "met": "meet", "ran": "run", "grew": "grow", "flew": "fly", "began": "begin", "taught": "teach"})
VERB_FORMS = set(LEMMA) | PAST_FORMS

AUXILIARIES = {"am", "is", "are", "was", "were", "have", "has", "had", "do", "does", "did", "can", "could",
               "will", "would", "shall", "should", "may", "might", "must", "'m", "'s", "'re", "'ve", "'d",
               "'ll", "ca", "wo", "don't", "doesn't", "didn't", "can't", "won't", "isn't", "aren't", "wasn't",
               "weren't", "haven't", "hasn't", "hadn't", "couldn't", "wouldn't", "shouldn't", "ain't"}

ADVERBS = {"usually", "always", "never", "really", "also", "just", "still", "now", "actually", "recently",
           "finally", "often", "sometimes", "currently", "mostly", "only", "even", "already", "absolutely",
           "totally", "truly", "honestly", "basically", "literally", "definitely", "probably", "normally",
           "generally", "typically", "rarely", "seldom", "occasionally", "regularly", "mainly", "barely",
           "hardly", "kinda", "sorta", "then", "once", "originally", "officially", "secretly", "both", "all",
           "no", "longer", "too", "so", "very", "newly", "happily", "proudly", "desperately", "slowly",
           "somehow", "ever", "first", "last", "lately", "nowadays", "again"}

PREPOSITIONS = {"in", "at", "on", "to", "for", "from", "with", "by", "of", "about", "as", "into", "near",
                "under", "over", "after", "before", "since", "until", "around", "through", "across"}

FEELINGS = set("""
tired exhausted sleepy happy sad glad upset angry mad annoyed frustrated stressed anxious nervous worried
scared afraid bored excited thrilled overwhelmed lonely lost confused sick ill unwell fine good great okay
ok alright well bad awful terrible down low blue cranky grumpy hungry thirsty hungover sore busy swamped
relieved grateful thankful sorry proud ashamed embarrassed curious hopeful motivated unmotivated restless
drained burned burnt out fed up done ready back here sure unsure certain uncertain aware kidding joking
serious calm chill content pleased disappointed jealous homesick nostalgic emotional meh shattered knackered
buzzing stoked pumped psyched grateful blessed lucky stuck drowning struggling fried wiped beat
starving famished cold freezing hot sweaty full stuffed wired awake mood moody meh sluggish foggy achy
""".split())

INTENSIFIERS = {"so", "very", "really", "a", "bit", "little", "kind", "of", "kinda", "sort", "sorta", "pretty",
                "quite", "super", "totally", "absolutely", "extremely", "incredibly", "fairly", "rather", "too",
                "just", "feeling", "getting", "still", "all", "somewhat", "slightly", "utterly", "completely",
                "such", "bloody", "damn", "freaking", "not", "that", "as", "hell", "af"}

NOW_WORDS = {"today", "tonight", "now", "right", "at", "the", "moment", "this", "morning", "afternoon", "evening",
             "week", "lately", "again", "atm", "rn", "currently", "these", "days", "honestly", "tbh", "lol",
             "haha", "ugh", "though", "anyway", "man", "and", "but", "because", "after", "all", "day", "long",
             "with", "everything", "work", "life", "stuff", "things", "it", "about"}

STOPWORDS = set("""
a an the is are was were be been being am i me my mine myself you your yours yourself he him his she her
hers it its they them their theirs we us our ours this that these those there here of to in on at for
with by from and or but not no nor do does did done doing have has had having can could would should will
shall may might must what who whom whose where when why how which as so if then than too very just also
about into over after before up down out off again once only own same such both each few more most other
some any all yes yeah ok okay oh well really quite much many lot lots thing things stuff something anything
everything nothing someone anyone everyone one ones get got gets getting like just 's 're 've 'd 'll 'm n't
i'm i've i'd i'll we're we've we'd we'll you're you've you'd you'll it's that's there's he's she's they're
what's who's let's isn't aren't wasn't weren't don't doesn't didn't can't won't couldn't wouldn't shouldn't
""".split())
