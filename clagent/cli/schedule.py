"""``clagent schedule show|set|off|on``: through the daemon when it runs (it reschedules at once),
else straight in the home (the daemon reads it when it starts)."""

from __future__ import annotations

import json
from datetime import datetime

import click

from clagent.cli.client import Client, daemon_url, is_up
from clagent.home import Home
from clagent.updater import schedule as sched

home_option = click.option("--home", type=click.Path(file_okay=False), default=None,
                           help="State folder (default: $CLAGENT_HOME, else the user data folder).")
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def _change(home: str | None, cron: str | None = None, enabled: bool | None = None) -> dict:
    h = Home.open(home, create=False)
    url = daemon_url(h.path)
    if cron is not None:
        cron = sched.validate(cron)  # the same one-line error with or without a daemon
    if is_up(url):
        body = {k: v for k, v in (("cron", cron), ("enabled", enabled)) if v is not None}
        if not body:
            return Client(url, timeout=10, home_path=h.path).request("GET", "/v1/clagent/schedule")
        return Client(url, timeout=10, home_path=h.path).request("PUT", "/v1/clagent/schedule", json=body)
    current = sched.load(h.db, h.settings.schedule)
    now = datetime.now(sched.local_zone())
    if cron is not None or enabled is not None:
        current = sched.Schedule(cron or current.cron, current.enabled if enabled is None else enabled)
        sched.save(h.db, current, now)
    out = sched.describe(current, now)
    out["grace_hours"] = h.settings.schedule_grace_hours
    out["daemon"] = "not running: the schedule applies when it starts"
    return out


def render(d: dict) -> str:
    state = "on" if d["enabled"] else "off (clagent schedule on)"
    lines = [f"schedule:  \"{d['cron']}\" ({d.get('timezone', 'local time')}), {state}"]
    if d["enabled"]:
        runs = d.get("next_runs") or []
        lines.append("next runs: " + (", ".join(_when(r) for r in runs) if runs else "none"))
    if d.get("grace_hours") is not None:
        lines.append(f"missed:    a run missed while down is made up at start within {d['grace_hours']:g} h")
    if d.get("daemon"):
        lines.append(f"daemon:    {d['daemon']}")
    return "\n".join(lines)


def _show(d: dict, as_json: bool) -> None:
    click.echo(json.dumps(d, indent=2) if as_json else render(d))


def _when(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%a %Y-%m-%d %H:%M")


@click.group()
def schedule():
    """When consolidation runs (cron, local time; nightly at 03:00 by default)."""


@schedule.command()
@home_option
@json_option
def show(home, as_json):
    """The schedule and its next three runs."""
    _show(_change(home), as_json)


@schedule.command("set")
@click.argument("cron")
@home_option
@json_option
def set_(cron, home, as_json):
    """Set the 5-field cron expression, e.g. "0 3 * * *" (03:00 daily) or "30 1 * * 1-5"."""
    _show(_change(home, cron=cron, enabled=True), as_json)


@schedule.command()
@home_option
@json_option
def off(home, as_json):
    """Stop scheduled consolidations (clagent consolidate still works)."""
    _show(_change(home, enabled=False), as_json)


@schedule.command()
@home_option
@json_option
def on(home, as_json):
    """Resume scheduled consolidations."""
    _show(_change(home, enabled=True), as_json)
