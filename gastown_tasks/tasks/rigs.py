"""Rig database tasks: list, init-rig, migrate."""

from __future__ import annotations

import json

from invoke import Context, task

from ..ops import migrate as migration
from ..ops.rigadmin import init_rig as create_rig
from ..ops.rigadmin import list_rigs
from .config import reports_errors, town_and_settings


@task(name="list", help={"json": "Print a JSON list of {name, path, served}"})
@reports_errors
def list_(c: Context, json_: bool = False) -> None:
    """List the rig databases in .dolt-data and whether the server serves them."""
    town, settings = town_and_settings(c)
    rigs = list_rigs(town, settings)
    if json_:
        print(json.dumps([{"name": r.name, "path": str(r.path), "served": r.served} for r in rigs], indent=2))
        return
    if not rigs:
        print(f"no rig databases in {town.data_dir}; create one: gt-dolt init-rig <name>")
        return
    for rig in rigs:
        served = "" if rig.served is None else ("  served" if rig.served else "  NOT served (restart)")
        print(f"{rig.name:<24} {rig.path}{served}")


@task(name="init-rig", help={"name": "Rig name: letters, digits, _ and -, up to 64"})
@reports_errors
def init_rig(c: Context, name: str) -> None:
    """Create a rig database (through the server when it runs, so it is served at once)."""
    town, settings = town_and_settings(c)
    path, served = create_rig(town, settings, name)
    how = "served now by the running server" if served else "the server serves it from its next start"
    print(f"created rig {name} at {path} ({how})")


@task(help={"dry_run": "Show what would move, with sizes; change nothing"})
@reports_errors
def migrate(c: Context, dry_run: bool = False) -> None:
    """Move databases from the old .beads/dolt/beads layout into .dolt-data/<rig>."""
    town, settings = town_and_settings(c)
    report = migration.migrate(town, settings, dry_run=dry_run)
    done = len(report.planned if dry_run else report.moved)
    if not (done or report.skipped):
        print("nothing to migrate: no old .beads/dolt/beads databases left")
        return
    verb = "would move" if dry_run else "moved"
    print(f"summary: {verb} {done}, skipped {len(report.skipped)} (target exists)")
