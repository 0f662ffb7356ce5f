"""Repairing a town: cleanup (orphan databases), rollback (undo a migrate), init (missing databases)."""

from __future__ import annotations

import json

from .runner import Env


def cleanup(env: Env, yes: bool = False, dry_run: bool = False, json_: bool = False) -> int:
    from ..ops.orphans import cleanup as run_cleanup
    from ..ops.orphans import restore_hint
    from ..ops.remote import refuse_if_remote

    town, settings = env.town_and_settings()
    refuse_if_remote(settings, "cleanup")
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


def init(env: Env, dry_run: bool = False, json_: bool = False) -> int:
    from ..ops.remote import refuse_if_remote
    from ..ops.repair import repair

    town, settings = env.town_and_settings()
    refuse_if_remote(settings, "init")
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
