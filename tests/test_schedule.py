"""The consolidation schedule: cron validation and next runs, missed runs made up once (with a
controllable clock), skips recorded, persistence across daemon restarts, the CLI and the API."""

import json
import sqlite3
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from clagent.daemon.scheduler import Scheduler
from clagent.errors import ClagentError
from clagent.home import Home
from clagent.updater import schedule as sched
from clagent.updater.pipeline import is_running
from tests.conftest import run_cli, start_daemon

UTC = timezone.utc


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def test_next_runs_of_the_default_nightly_schedule():
    runs = sched.next_runs("0 3 * * *", at(23, 10, 30))
    assert runs == [at(24, 3), at(25, 3), at(26, 3)]
    assert sched.next_runs("0 3 * * *", at(23, 2, 59), 1) == [at(23, 3)]
    assert sched.next_runs("0 3 * * *", at(23, 3), 1) == [at(24, 3)]  # strictly after now
    weekdays = sched.next_runs("30 1 * * 1-5", at(27, 12))  # Friday the 27th
    assert [r.strftime("%a %H:%M") for r in weekdays] == ["Mon 01:30", "Tue 01:30", "Wed 01:30"]


def test_cron_weekdays_count_from_sunday_as_in_crontab():
    assert sched.crontab_weekdays("0") == sched.crontab_weekdays("7") == sched.crontab_weekdays("sun") == "sun"
    assert sched.crontab_weekdays("1-5") == "mon,tue,wed,thu,fri"
    assert sched.crontab_weekdays("*/2") == "sun,tue,thu,sat"
    assert sched.crontab_weekdays("sat,0") == "sun,sat"
    sunday = sched.next_runs("0 9 * * 0", at(23, 12), 1)[0]  # the 23rd is a Monday
    assert sunday.strftime("%a %d") == "Sun 29"


@pytest.mark.parametrize("cron, says", [
    ("0 3 * *", "expected 5 fields"), ("0 3 * * * *", "expected 5 fields"), ("61 3 * * *", "59"),
    ("0 25 * * *", "23"), ("every night", "expected 5 fields"), ("a b c d e", "invalid"), ("", "cron expression"),
])
def test_invalid_cron_expressions_are_clear_errors(cron, says):
    with pytest.raises(ClagentError) as e:
        sched.validate(cron)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_missed_runs_are_coalesced_and_bounded_by_the_grace_window():
    grace = timedelta(hours=12)
    # down from the 21st 02:00 to the 23rd 08:00: three nightly runs missed, the latest 5 h ago
    m = sched.missed_run("0 3 * * *", at(21, 2), at(23, 8), grace)
    assert (m.fire_time, m.count, m.run) == (at(23, 3), 3, True)
    late = sched.missed_run("0 3 * * *", at(21, 2), at(23, 20), grace)
    assert late.fire_time == at(23, 3) and not late.run and late.age == timedelta(hours=17)
    assert sched.missed_run("0 3 * * *", at(23, 4), at(23, 20), grace) is None  # none due meanwhile
    assert sched.missed_run("0 3 * * *", None, at(23, 20), grace) is None  # first start ever


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def events(home_path, kind):
    con = sqlite3.connect(home_path / "clagent.db")
    try:
        return [json.loads(d) for (d,) in con.execute("SELECT detail FROM events WHERE kind = ? ORDER BY id", [kind])]
    finally:
        con.close()


def wait_until_idle(home_path, timeout=300):
    from clagent.updater import pipeline

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pipeline._started is not None and pipeline._started.poll() is None or is_running(home_path):
            time.sleep(0.2)
            continue
        return
    raise AssertionError("the consolidation did not finish")


def test_a_missed_run_starts_once_and_a_run_without_data_is_recorded_as_skipped(tiny_home):
    home = Home.open(tiny_home)
    clock = Clock(at(21, 12))
    s = Scheduler(home, clock=clock)
    assert s.catch_up() is None  # first start: nothing was due before it
    assert sched.handled_until(home.db) == at(21, 12)

    clock.now = at(23, 9)  # the daemon was down two nights
    missed = s.catch_up()
    assert missed.count == 2 and missed.run
    assert s.last_start["started"] and s.last_start["trigger"] == "missed"
    wait_until_idle(tiny_home)
    skipped = events(tiny_home, "consolidation_skipped")
    assert len(skipped) == 1 and skipped[0]["trigger"] == "missed" and "nothing to consolidate" in skipped[0]["reason"]

    assert s.catch_up() is None  # coalesced: the two missed runs made one
    assert len(events(tiny_home, "consolidation_skipped")) == 1
    h = run_cli("history", "--home", str(tiny_home))
    assert h.returncode == 0 and "skipped: nothing to consolidate" in h.stdout and "[missed]" in h.stdout
    home.close()


def test_a_run_missed_beyond_the_grace_window_is_recorded_not_run(tiny_home):
    home = Home.open(tiny_home)
    clock = Clock(at(21, 12))
    s = Scheduler(home, clock=clock)
    s.catch_up()
    clock.now = at(23, 20)  # 17 h after the last 03:00: beyond the 12 h grace
    missed = s.catch_up()
    assert missed is not None and not missed.run and s.last_start is None
    recorded = events(tiny_home, "schedule_missed")
    assert len(recorded) == 1 and recorded[0]["missed"] == 2 and "grace" in recorded[0]["reason"]
    assert events(tiny_home, "consolidation_skipped") == []
    home.close()


def test_a_disabled_schedule_makes_up_nothing(tiny_home):
    home = Home.open(tiny_home)
    clock = Clock(at(21, 12))
    s = Scheduler(home, clock=clock)
    s.update(enabled=False)
    clock.now = at(23, 9)
    assert s.catch_up() is None and s.last_start is None
    assert s.update(enabled=True)["next_runs"][0] == at(24, 3).isoformat()
    clock.now = at(23, 9, 30)
    assert s.catch_up() is None  # turning it on does not replay the runs it was off for
    home.close()


def test_schedule_cli_without_a_daemon_persists_in_the_home(tiny_home):
    shown = run_cli("schedule", "show", "--home", str(tiny_home), "--json")
    d = json.loads(shown.stdout)
    assert d["cron"] == "0 3 * * *" and d["enabled"] and len(d["next_runs"]) == 3
    assert all(datetime.fromisoformat(r).strftime("%H:%M") == "03:00" for r in d["next_runs"])

    bad = run_cli("schedule", "set", "0 3 * *", "--home", str(tiny_home))
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "expected 5 fields" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert json.loads(run_cli("schedule", "show", "--home", str(tiny_home), "--json").stdout)["cron"] == "0 3 * * *"

    ok = run_cli("schedule", "set", "15 4 * * 6", "--home", str(tiny_home))
    assert ok.returncode == 0 and "next runs:" in ok.stdout and ok.stdout.count("Sat ") == 3
    off = run_cli("schedule", "off", "--home", str(tiny_home))
    assert off.returncode == 0 and "off" in off.stdout
    d = json.loads(run_cli("schedule", "show", "--home", str(tiny_home), "--json").stdout)
    assert d == {**d, "cron": "15 4 * * 6", "enabled": False, "next_runs": []}


def test_schedule_over_the_api_survives_a_restart_and_fires(tiny_home):
    daemon = start_daemon(tiny_home)
    try:
        url = f"{daemon.url}/v1/clagent/schedule"
        assert httpx.get(url).json()["cron"] == "0 3 * * *"
        bad = httpx.put(url, json={"cron": "0 3 * * 8"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "cron" and "0-7" in bad.json()["error"]["message"]
        assert httpx.put(url, json={"enabled": "yes"}).status_code == 400
        assert httpx.put(url, content=b"{not json", headers={"content-type": "application/json"}).status_code == 400
        r = run_cli("schedule", "set", "* * * * *", "--home", str(tiny_home))  # through the daemon
        assert r.returncode == 0, r.stderr
        assert httpx.get(url).json()["cron"] == "* * * * *"
    finally:
        assert daemon.stop() == 0

    daemon = start_daemon(tiny_home)
    try:
        d = httpx.get(f"{daemon.url}/v1/clagent/schedule").json()
        assert d["cron"] == "* * * * *" and d["enabled"]
        first = datetime.fromisoformat(d["next_runs"][0])
        assert 0 < (first - datetime.now(first.tzinfo)).total_seconds() <= 60
        # APScheduler fires at the next minute: a consolidation process starts, finds nothing to
        # learn (no data) and records the skip; chat is served meanwhile.
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and not events(tiny_home, "consolidation_skipped"):
            time.sleep(1)
        skipped = events(tiny_home, "consolidation_skipped")
        assert skipped and skipped[0]["trigger"] == "schedule", daemon.output()[-2000:]
        st = httpx.get(f"{daemon.url}/v1/clagent/status").json()
        assert st["schedule"]["last_start"]["trigger"] == "schedule"
        assert st["consolidation"]["last"]["outcome"] == "skipped"
    finally:
        daemon.stop()


def test_the_daemon_makes_up_a_run_missed_while_it_was_down(tiny_home):
    home = Home.open(tiny_home)
    now = datetime.now(sched.local_zone())
    sched.save(home.db, sched.Schedule("0 * * * *", True), now - timedelta(hours=3))  # hourly, down for 3 h
    home.close()
    daemon = start_daemon(tiny_home)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not events(tiny_home, "consolidation_skipped"):
            time.sleep(0.5)
        skipped = events(tiny_home, "consolidation_skipped")
        assert len(skipped) == 1 and skipped[0]["trigger"] == "missed", daemon.output()[-2000:]
    finally:
        daemon.stop()
