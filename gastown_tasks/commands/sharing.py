"""Sharing rigs between towns through Dolt remotes: sync, pull, remote-add/list/remove."""

from __future__ import annotations

import json
import sys
from typing import Any

from ..ops.errors import ConfigError
from .runner import Env
from .surface import LOCAL, Option, command


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
    from ..ops.rigs import sync

    town, settings = env.town_and_settings()
    echo = (lambda line: print(line, file=sys.stderr)) if not json_ else (lambda _: None)
    report = sync.run(town, settings, direction, rig=rig, dry_run=dry_run, force=force, echo=echo)  # type: ignore[arg-type]
    return _say(report, json_)


@command(
    "sync",
    options=(
        Option("rig", "Only this rig"),
        Option("dry_run", "Show what would be pushed; push nothing", flag=True),
        Option("force", "Force-push: first fetch and name the remote's commits it overwrites", flag=True),
        Option("json_", "Print one JSON object", flag=True),
    ),
    reach=LOCAL,
)
def sync(env: Env, rig: str | None = None, dry_run: bool = False, force: bool = False, json_: bool = False) -> int:
    """Push every rig (or one) to each of its Dolt remotes; a table of what happened to each.

    Through the server when it runs, else the Dolt CLI; working changes are committed first.
    Exit 1 when any rig failed (the others are still pushed).  Examples:
      gt-dolt sync --dry-run
      gt-dolt sync --rig hq --force   # overwrite the remote's branch (names what it overwrites)
    """
    return _run(env, "push", rig, dry_run, force, json_)


@command(
    "pull",
    options=(
        Option("rig", "Only this rig"),
        Option("dry_run", "Show what would be pulled; pull nothing", flag=True),
        Option("json_", "Print one JSON object", flag=True),
    ),
    reach=LOCAL,
)
def pull(env: Env, rig: str | None = None, dry_run: bool = False, json_: bool = False) -> int:
    """Pull every rig (or one) from each of its Dolt remotes; a table of what happened to each.

    Examples:
      gt-dolt pull
      gt-dolt pull --rig hq --json
    """
    return _run(env, "pull", rig, dry_run, False, json_)


def _access(town: Any, settings: Any) -> Any:
    """How to reach the town's rigs (call under the town lock: no server starts or stops meanwhile)."""
    from ..ops.files import privilege
    from ..ops.rigs.remotes import Access
    from ..ops.server.discovery import find_running

    privilege.check_town(town)
    running = find_running(town, settings)[0]
    return Access(town, settings, running.port if running is not None else None)


def _needs_rig(rig: str | None, what: str) -> str:
    if rig is None:
        raise ConfigError(f"{what} needs --rig NAME: a remote URL holds one database")
    return rig


@command(
    "remote-add",
    options=(
        Option("name", "The remote's name, e.g. origin", positional=True),
        Option("url", "file:///…, https://…, aws://…, gs://…, or a DoltHub org/repo", positional=True),
        Option("rig", "The rig whose remote it is"),
    ),
    reach=LOCAL,
)
def remote_add(env: Env, name: str, url: str, rig: str | None = None) -> int:
    """Add a Dolt remote to a rig (also: gt-dolt remote add); any URL Dolt accepts.

    Examples:
      gt-dolt remote add --rig hq origin file:///srv/dolt-remotes/hq
      gt-dolt remote add --rig hq origin https://doltremoteapi.dolthub.com/org/hq
    """
    from ..ops.files.locking import town_lock
    from ..ops.rigs import remotes

    rig = _needs_rig(rig, "remote-add")
    remotes.check_name(name)
    town, settings = env.town_and_settings()
    text = remotes.check_url(town, url)
    with town_lock(town, wait=settings.lock_wait):
        access = _access(town, settings)
        added = remotes.add(access, remotes.named_rig(town, rig), name, text)
    print(f"added remote {added.name} ({added.shown}) to rig {rig}; gt-dolt sync --rig {rig} pushes to it")
    return 0


@command(
    "remote-remove",
    options=(Option("name", "The remote's name", positional=True), Option("rig", "The rig whose remote it is")),
    reach=LOCAL,
)
def remote_remove(env: Env, name: str, rig: str | None = None) -> int:
    """Remove a Dolt remote from a rig; the remote's own data is untouched (also: gt-dolt remote remove).

    Examples:
      gt-dolt remote remove --rig hq origin
    """
    from ..ops.files.locking import town_lock
    from ..ops.rigs import remotes

    rig = _needs_rig(rig, "remote-remove")
    remotes.check_name(name)
    town, settings = env.town_and_settings()
    with town_lock(town, wait=settings.lock_wait):
        access = _access(town, settings)
        gone = remotes.remove(access, remotes.named_rig(town, rig), name)
    print(f"removed remote {gone.name} ({gone.shown}) from rig {rig} (the remote's own data is untouched)")
    return 0


@command(
    "remote-list",
    options=(
        Option("rig", "Only this rig"),
        Option("json_", "Print a JSON list of {rig, name, url, branch}", flag=True),
    ),
    reach=LOCAL,
)
def remote_list(env: Env, rig: str | None = None, json_: bool = False) -> int:
    """List the Dolt remotes of every rig (or one); credentials in URLs are masked (also: gt-dolt remote list).

    Examples:
      gt-dolt remote list
      gt-dolt remote list --rig hq --json
    """
    from ..ops.files.datadir import scan_data_dir
    from ..ops.files.locking import town_lock
    from ..ops.rigs import remotes

    town, settings = env.town_and_settings()
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
