"""Sharing rigs between towns through Dolt remotes: sync, pull, remote-add/list/remove."""

from __future__ import annotations

import json
import sys
from typing import Any

from ..ops.errors import ConfigError
from .runner import Env


def _located(env: Env, what: str) -> tuple[Any, Any]:
    from ..ops.remote import refuse_if_remote

    town, settings = env.town_and_settings()
    refuse_if_remote(settings, what)  # the local .dolt-data is not what a remote server serves
    return town, settings


def _say(report: Any, as_json: bool) -> int:
    if as_json:
        print(
            json.dumps(
                {
                    "direction": report.direction,
                    "through": report.through,
                    "dry_run": report.dry_run,
                    "results": [o.to_json() for o in report.outcomes],
                    "failed": report.failed,
                },
                indent=2,
            )
        )
    elif not report.outcomes:
        print("no rig databases to " + ("sync" if report.direction == "push" else "pull"))
    else:
        rows = [("RIG", "REMOTE", "RESULT", "DETAIL")]
        rows += [
            (o.rig, o.remote or "-", o.result, " ".join(x for x in (o.url, o.detail) if x)) for o in report.outcomes
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            print("  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3])
        verb = "pushed" if report.direction == "push" else "pulled"
        done = sum(o.result == verb for o in report.outcomes)
        print(
            f"{done} {verb}, {report.failed} failed (through {report.through}{', dry run' if report.dry_run else ''})"
        )
    if report.failed:
        print(f"error: {report.failed} rig remote(s) failed: see the table", file=sys.stderr)
    return 1 if report.failed else 0


def _run(env: Env, direction: str, rig: str | None, dry_run: bool, force: bool, json_: bool) -> int:
    from ..ops import sync

    town, settings = _located(env, "sync" if direction == "push" else "pull")
    echo = (lambda line: print(line, file=sys.stderr)) if not json_ else (lambda _: None)
    report = sync.run(town, settings, direction, rig=rig, dry_run=dry_run, force=force, echo=echo)  # type: ignore[arg-type]
    return _say(report, json_)


def sync(env: Env, rig: str | None = None, dry_run: bool = False, force: bool = False, json_: bool = False) -> int:
    return _run(env, "push", rig, dry_run, force, json_)


def pull(env: Env, rig: str | None = None, dry_run: bool = False, json_: bool = False) -> int:
    return _run(env, "pull", rig, dry_run, False, json_)


def _access(town: Any, settings: Any) -> Any:
    """How to reach the town's rigs (call under the town lock: no server starts or stops meanwhile)."""
    from ..ops import privilege
    from ..ops.discovery import find_running
    from ..ops.remotes import Access

    privilege.check_town(town)
    running = find_running(town, settings)[0]
    return Access(town, settings, running.port if running is not None else None)


def _needs_rig(rig: str | None, what: str) -> str:
    if rig is None:
        raise ConfigError(f"{what} needs --rig NAME: a remote URL holds one database")
    return rig


def remote_add(env: Env, name: str, url: str, rig: str | None = None) -> int:
    from ..ops import remotes
    from ..ops.locking import town_lock

    rig = _needs_rig(rig, "remote-add")
    remotes.check_name(name)
    town, settings = _located(env, "remote-add")
    text = remotes.check_url(town, url)
    with town_lock(town, wait=settings.lock_wait):
        access = _access(town, settings)
        added = remotes.add(access, remotes.named_rig(town, rig), name, text)
    print(f"added remote {added.name} ({added.shown}) to rig {rig}; gt-dolt sync --rig {rig} pushes to it")
    return 0


def remote_remove(env: Env, name: str, rig: str | None = None) -> int:
    from ..ops import remotes
    from ..ops.locking import town_lock

    rig = _needs_rig(rig, "remote-remove")
    remotes.check_name(name)
    town, settings = _located(env, "remote-remove")
    with town_lock(town, wait=settings.lock_wait):
        access = _access(town, settings)
        gone = remotes.remove(access, remotes.named_rig(town, rig), name)
    print(f"removed remote {gone.name} ({gone.shown}) from rig {rig} (the remote's own data is untouched)")
    return 0


def remote_list(env: Env, rig: str | None = None, json_: bool = False) -> int:
    from ..ops import remotes
    from ..ops.locking import town_lock
    from ..ops.rigs import scan_data_dir

    town, settings = _located(env, "remote-list")
    with town_lock(town, wait=settings.lock_wait):
        access = _access(town, settings)
        names = [remotes.named_rig(town, rig)] if rig is not None else scan_data_dir(town).names
        found = [(name, remotes.remotes_of(access, name)) for name in names]
    if json_:
        listed = [{"rig": r.rig, "name": r.name, "url": r.shown, "branch": r.branch} for _, rs in found for r in rs]
        print(json.dumps(listed, indent=2))
        return 0
    for name, rs in found:
        if not rs:
            print(f"{name}: no remote")
        for r in rs:
            print(f"{name}: {r.name} {r.shown} (branch {r.branch})")
    if not found:
        print(f"no rig databases in {town.data_dir}")
    return 0
