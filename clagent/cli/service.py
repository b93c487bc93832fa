"""``clagent service install|uninstall|status``: the daemon as a systemd user service.

The unit is systemd/clagent.service (shipped in the package as clagent/data/clagent.service) with
this installation's Python and the home filled in.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import click

from clagent.config import atomic_write_text
from clagent.errors import ClagentError
from clagent.home import Home

UNIT = "clagent.service"
home_option = click.option("--home", type=click.Path(file_okay=False), default=None,
                           help="State folder (default: $CLAGENT_HOME, else the user data folder).")


def unit_dir() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "systemd" / "user"


def _quote(value: str) -> str:
    """A path as one systemd word (quoted when it holds spaces or quotes)."""
    if all(c.isalnum() or c in "/._-+:@" for c in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_unit(python: str, home: Path) -> str:
    template = resources.files("clagent").joinpath("data", UNIT).read_text()
    home_s = str(home)
    if "%" in home_s or "\n" in home_s:
        raise ClagentError(f"the home path {home_s!r} cannot be written into a systemd unit (% or newline)")
    return template.replace("@PYTHON@", _quote(python)).replace("@HOME_DIR@", _quote(home_s))


def systemd_running() -> bool:
    """A systemd system manager is running (so there is a user manager to talk to)."""
    return shutil.which("systemctl") is not None and Path("/run/systemd/system").is_dir()


def _systemctl(*args: str) -> tuple[int, str]:
    cmd = ["systemctl", "--user", *args]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 1, str(e)
    return r.returncode, (r.stdout + r.stderr).strip()


@click.group()
def service():
    """Run the daemon as a systemd user service (starts at login, restarts on failure)."""


@service.command()
@home_option
@click.option("--print", "print_only", is_flag=True, help="Print the unit instead of installing it.")
@click.option("--no-start", is_flag=True, help="Write and enable the unit, but do not start it now.")
def install(home, print_only, no_start):
    """Write the user unit for this installation and home, enable and start it."""
    h = Home.open(home)
    text = render_unit(sys.executable, h.path.resolve())
    target = unit_dir() / UNIT
    if print_only:
        click.echo(f"# {target}")
        click.echo(text, nl=False)
        return
    if not systemd_running():
        raise ClagentError("systemd is not running on this machine (no /run/systemd/system), so there is no "
                           "user service to install; run `clagent serve` under your own supervisor instead "
                           "(`clagent service install --print` shows the unit)")
    target.parent.mkdir(parents=True, exist_ok=True)
    existed = target.exists()
    atomic_write_text(target, text)
    click.echo(f"{'updated' if existed else 'wrote'} {target}")
    commands = [["daemon-reload"], ["enable", UNIT] if no_start else ["enable", "--now", UNIT]]
    for args in commands:
        click.echo("$ systemctl --user " + " ".join(args))
        rc, out = _systemctl(*args)
        if out:
            click.echo(out)
        if rc != 0:
            raise ClagentError(f"systemctl --user {' '.join(args)} failed (exit {rc}); the unit is written, "
                               f"fix the cause and run that command again")
    click.echo("logs: journalctl --user -u clagent -f    status: clagent service status")


@service.command()
def uninstall():
    """Stop and disable the service and remove its unit (the home is kept)."""
    target = unit_dir() / UNIT
    if not target.exists():
        raise ClagentError(f"the service is not installed ({target} does not exist)")
    if systemd_running():
        click.echo(f"$ systemctl --user disable --now {UNIT}")
        rc, out = _systemctl("disable", "--now", UNIT)
        if out:
            click.echo(out)
        if rc != 0:
            raise ClagentError(f"systemctl --user disable --now {UNIT} failed (exit {rc}); nothing removed")
    target.unlink()
    click.echo(f"removed {target}")
    if systemd_running():
        _systemctl("daemon-reload")
        click.echo("$ systemctl --user daemon-reload")


@service.command()
def status():
    """Whether the unit is installed, for which installation, and what systemd says of it."""
    target = unit_dir() / UNIT
    if not target.exists():
        click.echo(f"not installed ({target} does not exist; clagent service install)")
    else:
        exec_line = next((ln for ln in target.read_text().splitlines() if ln.startswith("ExecStart=")), "")
        click.echo(f"installed: {target}")
        click.echo(f"  {exec_line}")
        if sys.executable not in exec_line:
            click.echo(f"  (another installation than this one, {sys.executable}; install again to switch)")
    if not systemd_running():
        click.echo("systemd:   not running on this machine")
        return
    for args in (["is-enabled", UNIT], ["is-active", UNIT]):
        _, out = _systemctl(*args)
        click.echo(f"{args[0]}: {out or 'unknown'}")
