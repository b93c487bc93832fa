"""The daemon's consolidation schedule: APScheduler fires the cron trigger, and each firing starts
``clagent consolidate`` in its own low-priority process (clagent.updater.pipeline), so that chat is
served while it trains; the consolidation hot-swaps the daemon when it commits."""

from __future__ import annotations

import sys
import threading
from datetime import datetime, timedelta
from typing import Callable

from clagent.errors import ClagentError
from clagent.home import Home
from clagent.updater import schedule as sched

JOB_ID = "consolidate"


class Scheduler:
    def __init__(self, home: Home, clock: Callable[[], datetime] | None = None):
        self.home = home
        self.tz = sched.local_zone()
        self.clock = clock or (lambda: datetime.now(self.tz))
        self._lock = threading.Lock()
        self._aps = None
        self.schedule = sched.load(home.db, home.settings.schedule)
        self.last_start: dict | None = None  # what the last firing did

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Make up a missed run if there is one, then start firing on the schedule."""
        from apscheduler.schedulers.background import BackgroundScheduler

        self.catch_up()
        self._aps = BackgroundScheduler(timezone=self.tz, job_defaults={"coalesce": True, "max_instances": 1})
        self._aps.start()
        self._apply()

    def shutdown(self) -> None:
        if self._aps is not None:
            self._aps.shutdown(wait=False)
            self._aps = None

    def catch_up(self) -> sched.Missed | None:
        now = self.clock()
        db = self.home.db
        if not self.schedule.enabled:
            sched.mark_handled(db, now)
            return None
        missed = sched.missed_run(self.schedule.cron, sched.handled_until(db), now, self.grace)
        if missed is None:
            sched.mark_handled(db, now)
            return None
        if missed.run:
            self.fire(missed.fire_time, trigger="missed", missed=missed.count)
        else:
            from clagent.updater.pipeline import record_event

            record_event(self.home, "schedule_missed", None, {
                "fire_time": missed.fire_time.isoformat(), "missed": missed.count,
                "reason": f"the daemon was down; the latest run was due {_ago(missed.age)} ago, beyond the "
                          f"{self.home.settings.schedule_grace_hours:g} h grace window"})
        sched.mark_handled(db, now)
        return missed

    @property
    def grace(self) -> timedelta:
        return timedelta(hours=self.home.settings.schedule_grace_hours)

    # -- changing it -------------------------------------------------------------------------------
    def update(self, cron: str | None = None, enabled: bool | None = None) -> dict:
        with self._lock:
            new = sched.Schedule(sched.validate(cron) if cron is not None else self.schedule.cron,
                                 self.schedule.enabled if enabled is None else enabled)
            sched.save(self.home.db, new, self.clock())
            self.schedule = new
            self._apply()
        return self.describe()

    def _apply(self) -> None:
        if self._aps is None:
            return
        if self._aps.get_job(JOB_ID):
            self._aps.remove_job(JOB_ID)
        if self.schedule.enabled:
            self._aps.add_job(self._on_fire, sched.trigger(self.schedule.cron, self.tz), id=JOB_ID,
                              misfire_grace_time=int(self.grace.total_seconds()) or None)

    def _on_fire(self) -> None:
        self.fire(self.clock(), trigger="schedule")

    # -- firing ---------------------------------------------------------------------------------
    def fire(self, fire_time: datetime, trigger: str, missed: int = 0) -> dict:
        """Start a consolidation in the background, or record why not."""
        from clagent.updater.pipeline import record_event, start_in_background

        sched.mark_handled(self.home.db, fire_time)
        try:
            started = start_in_background(self.home.path, trigger=trigger)
            self.last_start = {"at": fire_time.isoformat(), "trigger": trigger, "started": True, **started}
        except ClagentError as e:
            record_event(self.home, "consolidation_skipped", None, {"reason": str(e), "trigger": trigger})
            self.last_start = {"at": fire_time.isoformat(), "trigger": trigger, "started": False, "reason": str(e)}
        except Exception as e:  # noqa: BLE001 - the daemon keeps serving whatever happens here
            print(f"clagent: scheduled consolidation could not start: {e}", file=sys.stderr)
            self.last_start = {"at": fire_time.isoformat(), "trigger": trigger, "started": False, "reason": str(e)}
        if missed:
            self.last_start["missed"] = missed
        return self.last_start

    def describe(self) -> dict:
        out = sched.describe(self.schedule, self.clock())
        out["grace_hours"] = self.home.settings.schedule_grace_hours
        out["last_start"] = self.last_start
        return out

    def next_run(self) -> str | None:
        runs = sched.next_runs(self.schedule.cron, self.clock(), 1) if self.schedule.enabled else []
        return runs[0].isoformat() if runs else None


def _ago(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"
