"""A user message as the sentences the fast memory looks at: code, quoted material and text handed
over for a task (translate, summarise ...) removed; markdown stripped; split into sentences and into
clauses that start a new statement. Pure functions."""

from __future__ import annotations

import re

MAX_SENTENCES = 200
_SUBORDINATE = re.compile(r"^(?:whenever|when|every time|each time|if|because|since|although|though|while|as|"
                          r"after|before|once|until)\b", re.I)

_FENCE = re.compile(r"```.*?(?:```|$)|~~~.*?(?:~~~|$)", re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_QUOTED = re.compile(r"\"[^\"\n]{12,}\"|“[^”\n]{12,}”|(?<![\w])'[^'\n]{12,}'(?![\w])|«[^»\n]{12,}»")
_CODE_LINE = re.compile(r"^\s*(?:[{}()\[\];]|def |class |import |from \S+ import |return\b|#include|//|/\*|\$ |>>> |"
                        r"(?:const|let|var|int|public|private|fn|func)\s)|[;{]\s*$|^\s{4,}\S")
# A request that hands over material: whatever follows it is the material, not the user's life.
_TASK = re.compile(
    r"^\s*(?:(?:please|pls|can you|could you|would you|help me|i need you to|i want you to)\s+)*(?:translat\w*|summar\w*|paraphras\w*|proofread\w*|rephras\w*|rewrit\w*|reword\w*|fix|correct|"
    r"check|edit|improve|shorten|simplify|explain|analy[sz]e|review|format|convert|grammar|spell\w*|"
    r"what does|what do(?:es)? .{0,30} mean|meaning of|tl;?dr|.{0,60}\binto (?:french|german|spanish|italian|"
    r"portuguese|english|japanese|chinese|dutch|polish))\b", re.I)
_ABBREV = re.compile(r"\b(?:Mr|Mrs|Ms|Dr|Prof|St|Sr|Jr|Mt|vs|etc|approx|no|e\.g|i\.e|a\.m|p\.m|U\.S|U\.K)\.$", re.I)
_NEW_CLAUSE = re.compile(
    r"((?:,\s*|\s+)(?:and|but|also|plus|so|while|whereas)\s+(?=(?:also\s+)?(?:i|i'm|i've|i'd|i'll|my|we|we're|we've|our)\b)"
    r"|,\s+(?=(?:i|i'm|i've|my|we|we're|our)\s)"
    r"|\s+[-–—]+\s+)", re.I)
# "... isn't in Porto any more, she moved to Lisbon": the take-back and the new value apart.
_TAKE_BACK = re.compile(r"(?:\b(?:any ?more|no longer|any longer)|\bnot\b[^,;]{1,40})[,;]?\s+(?:but\s+|now\s+)?"
                        r"(?=(?:she|he|they|it|it's|its|now|she's|he's|they're)\b)", re.I)


def strip_material(text: str) -> str:
    """Remove what the user quotes, pastes or hands over rather than says about themselves."""
    text = _FENCE.sub(" ", text)
    text = _INLINE_CODE.sub(" ", text)
    lines = []
    for line in text.splitlines():
        if line.lstrip().startswith(">") or _CODE_LINE.search(line):
            continue  # a quoted block or a line of code
        line = re.sub(r"^\s*(?:#{1,6}\s+|[-*+•]\s+|\d+[.)]\s+)", "", line)  # markdown heading / list marker
        line = re.sub(r"[*_]{2,}|(?<!\w)[*_](?=\w)|(?<=\w)[*_](?!\w)", "", line)  # **bold**, _em_
        lines.append(line)
    text = "\n".join(lines)
    text = _QUOTED.sub(" (quoted) ", text)
    # "Translate this: My brother lives in Paris." - the rest of the message is the material.
    for m in re.finditer(r":(?!\d)|\n", text):
        lead = re.split(r"[.!?\n]", text[: m.start()])[-1]
        if _TASK.match(lead) and not re.search(r"\b(?:remember|note|keep in mind|forget|save)\b", lead, re.I):
            return text[: m.start() - len(lead)]
    return text


def split(text: str) -> list[str]:
    """Sentences, then clauses that start a new statement about the speaker ("..., and my sister ...")."""
    text = strip_material(text)
    out: list[str] = []
    for line in re.split(r"\n+", text):
        for piece in _sentences(line):
            clauses = [piece] if _SUBORDINATE.match(piece) else _rejoin_short(_NEW_CLAUSE.split(piece))
            for clause in clauses:
                for part in _split_take_back(clause):
                    part = part.strip(" ,;-–—")
                    if part:
                        out.append(part)
                    if len(out) >= MAX_SENTENCES:
                        return out
    return out


_LEAD_IN = re.compile(r"^(?:for the record|just so you know|for your information|fyi|by the way|btw|to be honest|"
                      r"honestly|anyway|oh and|also|note to self|for future reference|to be clear)[,:]?$", re.I)


def _rejoin_short(parts: list[str]) -> list[str]:
    """re.split with the separators kept: clauses of fewer than three words go back together with
    the next ("Lars, my manager, is ...", "Hana and I broke up")."""
    out, carry = [], ""
    for i in range(0, len(parts), 2):
        clause = carry + parts[i]
        sep = parts[i + 1] if i + 1 < len(parts) else ""
        if (len(clause.split()) < 3 or _LEAD_IN.match(clause.strip())) and sep:
            carry = clause + sep
            continue
        carry = ""
        out.append(clause)
    if carry:
        out.append(carry)
    return out


def _split_take_back(clause: str) -> list[str]:
    m = _TAKE_BACK.search(clause)
    if not m:
        return [clause]
    return [clause[: m.end()].rstrip(" ,;"), clause[m.end():]]


def _sentences(line: str) -> list[str]:
    parts, start = [], 0
    for m in re.finditer(r"[.!?;…]+[\"')\]]*(?=\s+|$)|\s+(?=[\U0001F300-\U0001FAFF\u2600-\u27BF])", line):
        chunk = line[start: m.end()]
        if m.group().strip() == "." and (_ABBREV.search(chunk) or re.search(r"\b[A-Z]\.$", chunk)):
            continue  # "Dr. Silva", "J. Smith"
        parts.append(chunk.strip())
        start = m.end()
    parts.append(line[start:].strip())
    return [p for p in parts if p and re.search(r"\w", p)]
