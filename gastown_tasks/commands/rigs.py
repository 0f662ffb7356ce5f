"""Rig database commands: list, init-rig, migrate."""

from __future__ import annotations

import json
import sys

from .runner import Env
from .surface import ANYWHERE, LOCAL, Option, command


@command(
    "list",
    options=(Option("json_", "Print a JSON list of {name, path, served, linked, beads}", flag=True),),
    reach=ANYWHERE,  # what the remote server serves
)
def list_rigs(env: Env, json_: bool = False) -> int:
    """List the rig databases in .dolt-data, whether the server serves them, and whose beads name them.

    Examples:
      gt-dolt list
      gt-dolt list --json
    """
    from ..ops.access import remote
    from ..ops.rigs import riglist

    settings = env.settings()
    if env.remote:
        served = remote.databases(settings)
        if json_:
            print(
                json.dumps([{"name": name, "path": None, "served": True, "remote": True} for name in served], indent=2)
            )
        else:
            for name in served:
                print(f"{name:<24} served by the remote server at {settings.address}")
        return 0
    town, settings = env.located(settings)
    notes: list[str] = []
    rigs = riglist.list_rigs(town, settings, notes)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if json_:
        listed = [
            {"name": r.name, "path": str(r.path), "served": r.served, "linked": r.linked, "beads": r.beads}
            | ({"untextual": True} if r.untextual else {})  # a folder name that is not UTF-8: not a rig
            for r in rigs
        ]
        print(json.dumps(listed, indent=2))
        return 0
    if not rigs:
        from ..ops.errors import Remedy

        print(f"no rig databases in {town.data_dir}; {Remedy.INIT_RIG}")
        return 0
    name_width = max(24, *(len(rig.name) for rig in rigs))
    path_width = max(len(str(rig.path)) for rig in rigs)
    for rig in rigs:
        if rig.linked:
            state = "  SYMLINK: never served by Dolt (move the database itself here)"
        elif rig.untextual:
            state = "  NOT A RIG: its folder name is not UTF-8 text (rename the folder)"
        else:
            state = "" if rig.served is None else ("  served" if rig.served else "  NOT served (restart)")
        named = f"  beads: {', '.join(rig.beads)}" if rig.beads else ""
        print(f"{rig.name:<{name_width}} {str(rig.path):<{path_width}}{state}{named}".rstrip())
    return 0


@command(
    "init-rig",
    options=(Option("name", "Rig name: letters, digits, _ and -, up to 64", positional=True),),
    reach=ANYWHERE,  # CREATE DATABASE through the remote server
)
def init_rig(env: Env, name: str) -> int:
    """Create a rig database (through the server when it runs, so it is served at once).

    Examples:
      gt-dolt init-rig gastown
    """
    from ..ops.access import remote
    from ..ops.rigs import rigadmin

    settings = env.settings()
    if env.remote:
        remote.create_rig(settings, name)
        print(f"created rig {name} on the remote server at {settings.address} (served now)")
        return 0
    town, settings = env.located(settings)
    created = rigadmin.init_rig(town, settings, name)
    for note in created.notes:
        print(f"note: {note}")
    if not created.created:
        print(f"rig {name} already existed at {created.path}; its beads metadata is now in place")
        return 0
    how = "served now by the running server" if created.served else "the server serves it from its next start"
    print(f"created rig {name} at {created.path} ({how})")
    return 0


@command(
    "migrate",
    options=(Option("dry_run", "Show the plan, with sizes; change nothing", flag=True),),
    reach=LOCAL,  # moves this machine's files into its .dolt-data
)
def migrate(env: Env, dry_run: bool = False) -> int:
    """Move databases from the old .beads/dolt/beads layout into .dolt-data/<rig>.

    Examples:
      gt-dolt migrate --dry-run
      gt-dolt stop && gt-dolt migrate && gt-dolt start
    """
    from ..ops.rigs.migrate import migrate_town

    town, settings = env.town_and_settings()
    report = migrate_town(town, settings, dry_run=dry_run)
    done = len(report.planned if dry_run else report.moved)
    if not (done or report.skipped):
        print("nothing to migrate: no beads data outside .dolt-data")
        return 0
    verb = "would move" if dry_run else "moved"
    print(f"summary: {verb} {done}, skipped {len(report.skipped)}")
    return 0
