"""Beads commands: point every rig's beads at the town's server, stop rogue servers."""

from __future__ import annotations

from ..ops.errors import ConfigError, MigrationError
from .runner import Env
from .surface import ANYWHERE, LOCAL, Option, command


@command(
    "fix-metadata",
    options=(Option("dry_run", "Print what would change; write nothing", flag=True),),
    reach=LOCAL,  # reads the rigs from this machine's .dolt-data and its running server
)
def fix_metadata(env: Env, dry_run: bool = False) -> int:
    """Point every rig's beads (metadata.json, dolt-server.port) at the town's server.

    Examples:
      gt-dolt fix-metadata --dry-run
      gt-dolt fix-metadata
    """
    from ..ops.beads import beads
    from ..ops.files.datadir import scan_data_dir
    from ..ops.files.locking import town_lock
    from ..ops.server.discovery import find_running
    from ..ops.sql import sqlclient

    town, settings = env.town_and_settings()
    with town_lock(town, wait=settings.lock_wait):
        running = find_running(town, settings)[0]
        port = running.port if running is not None else settings.port
        served = sqlclient.served_databases(settings.with_overrides(port=port)) if running is not None else None
        databases = served if served is not None else scan_data_dir(town).names
        plan = beads.plan_metadata(town, settings, port, databases)
        if not dry_run:
            beads.apply(town, plan)
    verb = "would change" if dry_run else "changed"
    for change in plan.changes:
        print(f"{verb}: rig {change.rig}: {change.what} ({change.path})")
    for refusal in plan.refused:
        print(f"note: {refusal}")
    if plan.held:
        raise MigrationError(f"not pointed at the server: {'; '.join(plan.held)}")
    if not plan.changes:
        print(f"every rig's beads already point at {settings.url_host}:{port}")
    return 0


@command(
    "stop-rogue",
    options=(Option("pid", "Only this process (it must be a rogue server of this town)"),),
    reach=ANYWHERE,  # local processes serving the town's folders, whichever server the town uses
)
def stop_rogue(env: Env, pid: str | None = None) -> int:
    """Stop Dolt servers that serve a folder inside this town other than .dolt-data (never data).

    Examples:
      gt-dolt stop-rogue            # every rogue server of this town
      gt-dolt stop-rogue --pid 4242
    """
    from ..ops.files.runfiles import parse_pid
    from ..ops.server.rogues import stop_rogues

    target = None
    if pid is not None:
        target = parse_pid(str(pid).strip())
        if target is None:
            raise ConfigError(f"invalid --pid {pid!r}: give the pid gt-dolt doctor names")
    town, settings = env.town_and_settings()
    stopped = stop_rogues(town, target, settings.stop_timeout)
    for rogue in stopped:
        print(f"stopped rogue dolt sql-server {rogue.describe()} (its data was not touched)")
    if not stopped:
        print("no rogue Dolt server serves a folder of this town")
    return 0
