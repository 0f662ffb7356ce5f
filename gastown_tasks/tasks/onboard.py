"""Onboarding a developer in a town, Makefile-style: each step its own idempotent task.

    onboard <- dolt-installed <- legacy-migrated <- rigs-exist <- server-verified

The rigs a town needs are listed in config, `onboard.rigs` (default: ["hq"]).  A second run
changes nothing and says that everything is in place.
"""

from __future__ import annotations

from typing import Any

from invoke import Context, task

from ..ops import dolt_build, server, sqlclient
from ..ops import migrate as migration
from ..ops.errors import StartFailed
from ..ops.rigadmin import init_rig
from ..ops.rigs import rigs_on_disk, validate_rig_name
from .config import reports_errors, town_and_settings

DEFAULT_RIGS = ("hq",)


def configured_rigs(c: Context) -> list[str]:
    try:
        tree: Any = c.config.get("onboard", None)
        rigs = tree.get("rigs", DEFAULT_RIGS) if tree is not None else DEFAULT_RIGS
    except Exception:
        rigs = DEFAULT_RIGS
    if isinstance(rigs, str):
        rigs = [name.strip() for name in rigs.split(",") if name.strip()]
    return [validate_rig_name(str(name)) for name in rigs]


@task(name="dolt-installed")
@reports_errors
def dolt_installed(c: Context) -> None:
    """Step 1: the pinned Dolt is built (the same build step as the README setup)."""
    result = dolt_build.ensure_dolt()
    print(f"ok: {result.version} ({'built now' if result.built else 'already built'})")


@task(name="legacy-migrated", pre=[dolt_installed])
@reports_errors
def legacy_migrated(c: Context) -> None:
    """Step 2: databases in the old .beads/dolt/beads layout are moved into .dolt-data."""
    town, settings = town_and_settings(c)
    pending = [move for move in migration.find_moves(town) if not move.blocked]
    if not pending:
        print("ok: no old .beads layout to migrate")
        return
    running = server.find_running(town, settings)
    if running is not None:
        server.stop(town, settings)
        print(f"stopped the server (pid {running.pid}) to migrate")
    report = migration.migrate(town, settings)
    print(f"ok: migrated {', '.join(move.rig for move in report.moved)}")


@task(name="rigs-exist", pre=[legacy_migrated])
@reports_errors
def rigs_exist(c: Context) -> None:
    """Step 3: every configured rig database exists (init-rig for each missing one)."""
    town, settings = town_and_settings(c)
    have = {rig.name for rig in rigs_on_disk(town)}
    wanted = configured_rigs(c)
    for name in wanted:
        if name not in have:
            path, _ = init_rig(town, settings, name)
            print(f"created rig {name} at {path}")
    print(f"ok: rigs {', '.join(wanted)} exist")


@task(name="server-verified", pre=[rigs_exist])
@reports_errors
def server_verified(c: Context) -> None:
    """Step 4: the server runs and serves every rig on disk."""
    town, settings = town_and_settings(c)
    result = server.start(town, settings)
    served = sqlclient.served_databases(settings.with_overrides(port=result.port)) or []
    missing = sqlclient.missing([rig.name for rig in rigs_on_disk(town)], served)
    if missing:
        raise StartFailed(
            f"the server runs (pid {result.pid}) but does not serve {', '.join(missing)}; "
            "run: gt-dolt restart, then gt-dolt logs"
        )
    state = "started" if result.started else "already running"
    print(f"ok: server {state} on {result.host}:{result.port}, serving {', '.join(served)}")


@task(pre=[server_verified])
def onboard(c: Context) -> None:
    """Set up this town for development: Dolt, migration, rigs, a verified server."""
    print("onboard: everything is in place")
