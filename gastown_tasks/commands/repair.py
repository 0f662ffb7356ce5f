"""Repairing a town: cleanup (orphan databases), rollback (undo a migrate), init (missing databases)."""

from __future__ import annotations

import json

from .runner import Env
from .surface import LOCAL, Option, command


@command(
    "cleanup",
    options=(
        Option("yes", "Do it (without it, only say what would be done)", flag=True),
        Option("dry_run", "Say what would be done and why; change nothing", flag=True),
        Option("json_", "Print one JSON object: {done, orphans: [{name, action, why, destination}]}", flag=True),
    ),
    reach=LOCAL,
)
def cleanup(env: Env, yes: bool = False, dry_run: bool = False, json_: bool = False) -> int:
    """Set aside databases in .dolt-data that no rig's beads name: never deletes data (--yes to act).

    An orphan as dolt init left it is removed; any other is moved to .dolt-backup/orphans/,
    from where restore serves it again.  Needs the server stopped.  Examples:
      gt-dolt cleanup --dry-run
      gt-dolt stop && gt-dolt cleanup --yes && gt-dolt start
    """
    from ..ops.rigs.orphans import cleanup as run_cleanup
    from ..ops.rigs.orphans import restore_hint

    town, settings = env.town_and_settings()
    acting = yes and not dry_run
    plan = run_cleanup(town, settings, yes=yes, dry_run=dry_run, echo=(lambda _: None) if json_ else print)
    if json_:
        print(json.dumps({"done": acting, "orphans": [o.as_dict() for o in plan]}, indent=2))
        return 0
    if not plan:
        print(f"no orphan databases in {town.data_dir}: every one is named by a rig's beads")
        return 0
    if acting:
        kept = sum(1 for o in plan if o.action == "move")
        print(f"summary: removed {len(plan) - kept} empty orphan(s), moved {kept} to {town.backup_dir / 'orphans'}")
        return 0
    for orphan in plan:
        if orphan.action == "remove":
            print(f"would remove {orphan.path} ({orphan.size:,} bytes): {orphan.why}")
        else:
            print(f"would move {orphan.path} ({orphan.size:,} bytes) -> {orphan.destination}: {orphan.why}")
            print(f"  (afterwards, to serve it again: {restore_hint(orphan)})")
    if not dry_run:
        print("nothing was changed: run again with --yes to do this")
    return 0


@command(
    "init",
    options=(
        Option("dry_run", "Say what would be repaired and how; change nothing", flag=True),
        Option("json_", "Print one JSON object: {done, rigs: [{rig, database, action}]}", flag=True),
    ),
    reach=LOCAL,
)
def init(env: Env, dry_run: bool = False, json_: bool = False) -> int:
    """Repair rigs whose beads use the server but whose database is missing: migrate or create it.

    Migrates the rig's data where its beads dir still holds it, else creates the database;
    rigs that have theirs are not touched (running it twice changes nothing).  Examples:
      gt-dolt init --dry-run
      gt-dolt init
    """
    from ..ops.rigs.repair import repair

    town, settings = env.town_and_settings()
    found = repair(town, settings, dry_run=dry_run, echo=(lambda _: None) if json_ else print)
    failed = [b for b in found if b.action.startswith("failed")]
    if json_:
        print(json.dumps({"done": not dry_run, "rigs": [b.as_dict() for b in found]}, indent=2))
        return 1 if failed else 0
    if not found:
        print("nothing to repair: every rig whose beads use the server has its database in .dolt-data")
        return 0
    for b in found:
        what = f"migrate {b.local} into .dolt-data" if b.local else f"create database {b.database}"
        if dry_run:
            print(f"would {what}: {b.metadata} names database {b.database}, missing from {town.data_dir}")
        elif b in failed:
            print(f"rig {b.rig}: {b.action}")
        else:
            print(f"rig {b.rig}: done: {what}")
    if failed:
        print(f"summary: {len(failed)} of {len(found)} rig(s) not repaired (said above)")
    return 1 if failed else 0


@command(
    "rollback",
    options=(
        Option("backup", "The backup (a folder name in .dolt-backup/migrations; default: the newest)"),
        Option("force", "Roll back even rigs changed since (their changes stay in the set-aside copy)", flag=True),
        Option("dry_run", "Say what would be put back; change nothing", flag=True),
        Option("list_", "List the migration backups, newest first", flag=True),
        Option("json_", "Print one JSON object", flag=True),
    ),
    reach=LOCAL,
)
def rollback(
    env: Env,
    backup: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    list_: bool = False,
    json_: bool = False,
) -> int:
    """Undo a migrate from the dated backup it kept (the newest, or --backup): bd reads its data again.

    Stops the server, puts each rig's database back in its beads dir, restores the beads
    metadata, sets the migrated copies aside in .dolt-backup/orphans/ and checks each rig as
    bd reads it.  Refuses when a rig changed since the migration, unless --force.  Examples:
      gt-dolt rollback --list
      gt-dolt rollback --dry-run
      gt-dolt rollback --backup 20261202T180140Z
    """
    from ..ops.rigs.dbfiles import tree_size
    from ..ops.rigs.migrationbackup import list_backups
    from ..ops.rigs.rollback import rollback as run_rollback

    town, settings = env.town_and_settings()
    if list_:
        found = [
            {
                "name": b.name,
                "path": str(b.path),
                "created": b.record.get("created"),
                "size": tree_size(b.path),
                "rigs": [str(r.get("rig")) for r in b.record["rigs"] if isinstance(r, dict)],
            }
            for b in list_backups(town)
        ]
        if json_:
            print(json.dumps(found, indent=2))
        for b in [] if json_ else list_backups(town):
            rigs = ", ".join(str(r.get("rig")) for r in b.record["rigs"] if isinstance(r, dict))
            print(f"{b.name}  {tree_size(b.path):,} bytes  rigs: {rigs}  ({b.path})")
        if not found and not json_:
            print("no migration backups: only a migrate made by gt-dolt keeps one")
        return 0
    report = run_rollback(
        town, settings, backup, force=force, dry_run=dry_run, echo=(lambda _: None) if json_ else print
    )
    bad = [r for r in report.rigs if r.check.startswith("NOT")]
    if report.already and not json_:
        print(f"nothing to do: the migration kept in {report.backup} is rolled back already")
        return 0
    if json_:
        entries = [
            {"rig": r.rig, "source": str(r.source), "set_aside": str(r.set_aside) if r.set_aside else None}
            | {"check": r.check}
            for r in report.rigs
        ]
        summary = {"backup": str(report.backup), "already": report.already, "planned": report.planned}
        print(json.dumps(summary | {"rigs": entries}, indent=2))
        return 1 if bad else 0
    for line in report.planned:
        print(f"would {line}")
    for r in report.rigs:
        print(f"rig {r.rig}: {r.check}")
    if not dry_run:
        print(f"rolled back the migration kept in {report.backup}" + ("; the server was stopped" * report.stopped))
    return 1 if bad else 0
