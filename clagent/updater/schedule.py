"""When consolidation runs: a 5-field cron expression in local time, kept in the home's database
so that it survives restarts. The decisions are functions of an explicit ``now``, so that they can
be checked with any clock; the daemon's scheduler (clagent.daemon.scheduler) applies them.

A run missed while the daemon was down is made up once at the next start (however many were
missed), if the latest missed one is no older than the grace window; older ones are recorded as
missed and not run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, tzinfo

import sqlite_utils

from clagent.errors import ClagentError
from clagent.memory.db import transaction

SCHEDULE_KEY = "schedule"
HANDLED_KEY = "schedule_handled_until"  # every fire time up to this instant has been dealt with


@dataclass
class Schedule:
    cron: str
    enabled: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def local_zone() -> tzinfo:
    import tzlocal

    return tzlocal.get_localzone()


def trigger(cron: str, tz: tzinfo | None = None):
    """An APScheduler cron trigger, or a ClagentError saying what is wrong with the expression."""
    from apscheduler.triggers.cron import CronTrigger

    if not isinstance(cron, str) or not cron.strip():
        raise ClagentError("the schedule must be a cron expression such as \"0 3 * * *\"")
    fields = cron.split()
    if len(fields) != 5:
        raise ClagentError(f"invalid cron expression {cron!r}: expected 5 fields (minute hour day month "
                           f"weekday), got {len(fields)}")
    minute, hour, day, month, weekday = fields
    try:
        return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=crontab_weekdays(weekday),
                           timezone=tz or local_zone())
    except ValueError as e:
        raise ClagentError(f"invalid cron expression {cron!r}: {e}") from None


_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def crontab_weekdays(text: str) -> str:
    """Cron's weekday field (0 or 7 = Sunday, 1 = Monday; names; ranges and steps) as the list of
    day names APScheduler takes: its own numbers start at Monday = 0, so they cannot be passed on."""
    if text == "*":
        return "*"
    days: set[int] = set()

    def number(token: str) -> int:
        t = token.lower()
        if t[:3] in _DAYS and t.isalpha():
            return _DAYS.index(t[:3])
        if not t.isdigit() or int(t) > 7:
            raise ValueError(f"weekday {token!r} must be 0-7 (0 and 7 are Sunday) or a day name")
        return int(t)

    for item in text.split(","):
        span, _, step_text = item.partition("/")
        if step_text and (not step_text.isdigit() or int(step_text) == 0):
            raise ValueError(f"weekday step {step_text!r} must be a positive number")
        step = int(step_text) if step_text else 1
        if span == "*":
            lo, hi = 0, 6
        elif "-" in span:
            a, b = span.split("-", 1)
            lo, hi = number(a), number(b)
            if lo > hi:
                raise ValueError(f"weekday range {span!r} runs backwards")
        else:
            lo = hi = number(span)
            if step_text:
                hi = 6
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(_DAYS[d] for d in sorted(days))


def validate(cron: str) -> str:
    trigger(cron)
    return " ".join(cron.split())


def next_runs(cron: str, now: datetime, count: int = 3) -> list[datetime]:
    """The next ``count`` fire times strictly after ``now``."""
    t = trigger(cron, now.tzinfo)
    out: list[datetime] = []
    previous = None
    at = now + timedelta(microseconds=1)
    for _ in range(count):
        nxt = t.get_next_fire_time(previous, at)
        if nxt is None:
            break
        out.append(nxt)
        previous, at = nxt, nxt + timedelta(seconds=1)
    return out


def last_fire(cron: str, after: datetime, now: datetime) -> tuple[datetime | None, int]:
    """The latest fire time in (after, now], and how many there were (capped at 1000)."""
    latest, count = None, 0
    for at in _fires(cron, after, now):
        latest, count = at, count + 1
        if count >= 1000:
            break
    return latest, count


def _fires(cron: str, after: datetime, until: datetime):
    t = trigger(cron, until.tzinfo)
    previous, at = None, after + timedelta(seconds=1)
    while True:
        nxt = t.get_next_fire_time(previous, at)
        if nxt is None or nxt > until:
            return
        yield nxt
        previous, at = nxt, nxt + timedelta(seconds=1)


@dataclass
class Missed:
    fire_time: datetime  # the latest one missed
    count: int  # how many fire times were missed in all
    run: bool  # within the grace window: run it now
    age: timedelta


def missed_run(cron: str, handled_until: datetime | None, now: datetime, grace: timedelta) -> Missed | None:
    """What to do at start about fire times that passed while the daemon was down."""
    if handled_until is None or handled_until >= now:
        return None
    latest, count = last_fire(cron, handled_until, now)
    if latest is None:
        return None
    age = now - latest
    return Missed(latest, count, age <= grace, age)


# -- persistence ------------------------------------------------------------------------------------
def load(db: sqlite_utils.Database, default_cron: str) -> Schedule:
    rows = list(db.query("SELECT value FROM state WHERE key = ?", [SCHEDULE_KEY]))
    if not rows:
        return Schedule(default_cron, True)
    data = json.loads(rows[0]["value"])
    return Schedule(data.get("cron") or default_cron, bool(data.get("enabled", True)))


def save(db: sqlite_utils.Database, schedule: Schedule, now: datetime) -> None:
    """Store the schedule; fire times before ``now`` count as handled (a new schedule does not
    make up runs its predecessor would have had)."""
    with transaction(db):
        _put(db, SCHEDULE_KEY, json.dumps(schedule.to_dict()))
        _put(db, HANDLED_KEY, now.isoformat())


def handled_until(db: sqlite_utils.Database) -> datetime | None:
    rows = list(db.query("SELECT value FROM state WHERE key = ?", [HANDLED_KEY]))
    return datetime.fromisoformat(rows[0]["value"]) if rows else None


def mark_handled(db: sqlite_utils.Database, until: datetime) -> None:
    with transaction(db):
        current = handled_until(db)
        if current is None or until > current:
            _put(db, HANDLED_KEY, until.isoformat())


def _put(db: sqlite_utils.Database, key: str, value: str) -> None:
    db.execute("INSERT INTO state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
               [key, value])


def describe(schedule: Schedule, now: datetime, count: int = 3) -> dict:
    """What ``clagent schedule show`` and the API report."""
    runs = next_runs(schedule.cron, now, count) if schedule.enabled else []
    return {"cron": schedule.cron, "enabled": schedule.enabled, "timezone": str(now.tzinfo),
            "next_runs": [r.isoformat() for r in runs]}
