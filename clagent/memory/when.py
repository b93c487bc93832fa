"""Relative days ("yesterday", "last Friday", "in three days") resolved against when they were said,
so that a memory still means the same day next month. Pure functions."""

from __future__ import annotations

import re
from datetime import date, timedelta

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
            "nine": 9, "ten": 10, "a couple of": 2, "a few": 3}
_N = r"(?P<n>\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten|a couple of|a few)"
_DAY = r"(?P<wd>" + "|".join(WEEKDAYS) + r")"

_PATTERNS = [
    (re.compile(r"\bthe day before yesterday\b", re.I), lambda m, d: d - timedelta(days=2)),
    (re.compile(r"\bthe day after tomorrow\b", re.I), lambda m, d: d + timedelta(days=2)),
    (re.compile(r"\byesterday\b", re.I), lambda m, d: d - timedelta(days=1)),
    (re.compile(r"\btomorrow\b", re.I), lambda m, d: d + timedelta(days=1)),
    (re.compile(r"\b(?:today|tonight|this (?:morning|afternoon|evening))\b", re.I), lambda m, d: d),
    (re.compile(rf"\blast {_DAY}\b", re.I), lambda m, d: _before(d, m["wd"])),
    (re.compile(rf"\bnext {_DAY}\b", re.I), lambda m, d: _after(d, m["wd"])),
    (re.compile(rf"\b(?:this(?: coming)?|coming) {_DAY}\b", re.I), lambda m, d: _after(d, m["wd"], same_day=True)),
    (re.compile(rf"\b{_N} days? ago\b", re.I), lambda m, d: d - timedelta(days=_count(m["n"]))),
    (re.compile(rf"\bin {_N} days?\b", re.I), lambda m, d: d + timedelta(days=_count(m["n"]))),
    (re.compile(rf"\b{_N} weeks? ago\b", re.I), lambda m, d: d - timedelta(weeks=_count(m["n"]))),
    (re.compile(rf"\bin {_N} weeks?\b", re.I), lambda m, d: d + timedelta(weeks=_count(m["n"]))),
]


def _count(word: str) -> int:
    return int(word) if word.isdigit() else _NUMBERS[word.lower()]


def _before(d: date, weekday: str) -> date:
    back = (d.weekday() - WEEKDAYS.index(weekday.lower())) % 7 or 7
    return d - timedelta(days=back)


def _after(d: date, weekday: str, same_day: bool = False) -> date:
    ahead = (WEEKDAYS.index(weekday.lower()) - d.weekday()) % 7
    return d + timedelta(days=ahead if ahead or same_day else 7)


def resolve(text: str, said_on: date) -> str:
    """Each relative day in ``text`` followed by its date: "last Friday (2026-11-13)"."""
    taken: list[tuple[int, int, str]] = []
    for pattern, to_date in _PATTERNS:
        for m in pattern.finditer(text):
            if any(s < m.end() and m.start() < e for s, e, _ in taken):
                continue  # "the day before yesterday" already covers "yesterday"
            taken.append((m.start(), m.end(), to_date(m, said_on).isoformat()))
    for start, end, iso in sorted(taken, reverse=True):
        text = f"{text[:end]} ({iso}){text[end:]}"
    return text
