"""``clagent rollback``, ``clagent models prune`` and ``clagent history``."""

from __future__ import annotations

import json

import click

from clagent.cli import render
from clagent.cli.client import Client, daemon_url, is_up
from clagent.errors import ClagentError
from clagent.home import Home

home_option = click.option("--home", type=click.Path(file_okay=False), default=None,
                           help="State folder (default: $CLAGENT_HOME, else the user data folder).")
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.command()
@click.argument("version", type=int, required=False)
@click.option("--reason", default="", help="Why, for the history.")
@home_option
@json_option
def rollback(version, reason, home, as_json):
    """Serve the parent of the served version again (or VERSION), at once."""
    h = Home.open(home, create=False)
    url = daemon_url(h.path)
    if is_up(url):
        body = {"reason": reason, **({"version": version} if version is not None else {})}
        out = Client(url, timeout=120, home_path=h.path).request("POST", "/v1/clagent/rollback", json=body)
        out["daemon"] = "now serving it"
    else:
        from clagent.updater import rollback as rb

        served, target = rb.choose_target(h.registry, version)
        out = {"rolled_back": True, "served_version": target.id, **rb.record(h.registry, served, target, reason).to_dict(),
               "daemon": "not running: serves it when it starts"}
    if as_json:
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(f"rolled back from v{out['from']} to v{out['to']} ({out['daemon']})")
    if out["memories_pending_again"]:
        click.echo(f"{out['memories_pending_again']} memories learned by the rolled-back versions will be "
                   f"learned again at the next consolidation")


@click.command()
@click.option("--keep", type=int, default=None, help="Versions whose files to keep (default: keep_versions).")
@click.option("--dry-run", is_flag=True, help="Show what would be deleted.")
@home_option
@json_option
def prune(keep, dry_run, home, as_json):
    """Delete the model files of all but the newest versions (their records stay)."""
    h = Home.open(home, create=False)
    keep = h.settings.keep_versions if keep is None else keep
    if keep < 1:
        raise ClagentError(f"--keep must be at least 1, got {keep}")
    url = daemon_url(h.path)
    if is_up(url):
        ids = Client(url, timeout=60, home_path=h.path).request("POST", "/v1/clagent/prune",
                                              json={"keep": keep, "dry_run": dry_run})["pruned"]
    else:
        ids = [v.id for v in h.registry.prune(keep, dry_run=dry_run)]
    if as_json:
        click.echo(json.dumps({"keep": keep, "dry_run": dry_run, "pruned": ids}))
    elif not ids:
        click.echo(f"nothing to prune: at most {keep} versions have files (besides the served one)")
    else:
        verb = "would delete" if dry_run else "deleted"
        click.echo(f"{verb} the files of {', '.join(f'v{i}' for i in ids)}; their records stay "
                   f"(clagent models --show N)")


@click.command()
@click.option("-n", "count", type=click.IntRange(1, 10000), default=30, show_default=True)
@home_option
@json_option
def history(count, home, as_json):
    """The timeline: consolidations, skips, gate failures, rollbacks (newest first)."""
    from clagent.history import history as timeline

    h = Home.open(home, create=False)
    rows = timeline(h.db, count)
    click.echo(json.dumps(rows, indent=2) if as_json else render.history(rows))
