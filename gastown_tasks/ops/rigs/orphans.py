"""`cleanup`: databases in .dolt-data that no rig's beads name, set aside without losing a row.

An orphan, as gt v1.0 defines it: a database in .dolt-data that no rig's beads metadata names
(`dolt_database`; a beads dir in server mode without one names its rig, as gt reads it), and,
as gt's safety net, no rig or beads prefix in mayor/rigs.json names either.  gt drops orphans
(with --force even those holding data); here nothing is deleted that holds anything:

- an orphan as `dolt init` left it (one commit, one branch, no tag, no uncommitted change) is
  removed: renamed away in one step, then deleted (ops/staging.py's discard);
- any other is moved whole, in one rename, to `.dolt-backup/orphans/<name>-<UTC time>/`, from
  where `gt-dolt restore --rig <name> --from file://…` serves it again.

The moves need `--yes`; `--dry-run` says what would happen and why.  They happen only with the
server stopped: a running Dolt holds the database's files open (its chunk journal among them), so
a folder moved under it would go on being written where it was moved.  gt drops through SQL
instead, which parks the database in Dolt's dropped-databases folder; we ask for one `stop` rather
than DROP under load (gt's notes record DROP turning a busy server read-only, gt-r1cyd).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from ..beads import beads, beadslayout
from ..build.binary import find_dolt
from ..errors import GastownError, MigrationError, Remedy, RigError
from ..files import safefs, staging
from ..files.datadir import scan_data_dir
from ..files.locking import town_lock
from ..server.discovery import find_running
from ..settings import DoltSettings
from ..town import Town
from . import dbstate
from .dbfiles import counting_env, tree_size
from .migrationbackup import copy_checked

Echo = Callable[[str], None]
ORPHANS = "orphans"
RIGS_JSON = "rigs.json"


class Orphan(NamedTuple):
    name: str
    path: Path
    size: int
    action: str  # "remove" (as dolt init left it) or "move" (to the orphans backup)
    why: str
    destination: Path | None = None  # where "move" puts it

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "path": str(self.path),
            "size": self.size,
            "action": self.action,
            "why": self.why,
            "destination": str(self.destination) if self.destination else None,
        }


def _rigs_json_names(town: Town) -> set[str]:
    """Rig names and beads prefixes in mayor/rigs.json (gt's safety net: a database named by a
    prefix is some rig's even when its metadata is missing)."""
    try:
        raw = safefs.read_bytes(town.root / "mayor" / RIGS_JSON, 4 * 1024 * 1024, root=town.root)
        data = json.loads(raw) if raw else {}
    except (GastownError, ValueError, RecursionError):
        return set()
    rigs = data.get("rigs") if isinstance(data, dict) else None
    names: set[str] = set()
    for name, entry in rigs.items() if isinstance(rigs, dict) else ():
        names.add(str(name).lower())
        config = entry.get("beads") if isinstance(entry, dict) else None
        prefix = config.get("prefix") if isinstance(config, dict) else None
        if isinstance(prefix, str) and prefix.strip("-"):
            names.add(prefix.removesuffix("-").lower())
    return names


def referenced(town: Town) -> dict[str, str]:
    """Database (lowercase) -> who names it: every rig folder's beads metadata, then rigs.json."""
    found: dict[str, str] = {}
    for rig in beadslayout.rig_folders(town):
        read = beads.read_beads(town, rig)
        if read.problem is not None:  # unreadable: the rig's own name is taken as named
            found.setdefault(rig.lower(), f"rig {rig} (its beads could not be read: {read.problem})")
            continue
        if read.metadata is None:
            continue
        name = read.database or (rig if read.mode == "server" else None)
        if name:
            found.setdefault(name.lower(), f"the beads of rig {rig} ({read.dir / beads.METADATA})")
    for name in _rigs_json_names(town):
        found.setdefault(name, f"mayor/{RIGS_JSON}")
    return found


def stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def orphans_dir(town: Town) -> Path:
    return town.backup_dir / ORPHANS


def destination(town: Town, name: str, stamp: str) -> Path:
    base = orphans_dir(town) / f"{name}-{stamp}"
    n = 1
    while os.path.lexists(base):
        n += 1
        base = orphans_dir(town) / f"{name}-{stamp}-{n}"
    return base


def plan_cleanup(town: Town, settings: DoltSettings) -> list[Orphan]:
    """Every orphan and what cleanup does with it; the state of each is read by the running
    server when there is one, else by the Dolt CLI on disk."""
    named = referenced(town)
    rigs = [rig for rig in scan_data_dir(town).rigs if rig.name.lower() not in named]
    if not rigs:
        return []
    running = find_running(town, settings)[0]
    if running is None:
        dolt = find_dolt(settings.binary)
        env = counting_env(town, dolt)
    when = stamp()
    plan = []
    for rig in rigs:
        if running is not None:
            state = dbstate.read_state_served(settings.with_overrides(port=running.port), rig.name)
        else:
            state = dbstate.read_state(dolt, rig.path, env)
        unnamed = "no rig's beads metadata names it"
        if state.pristine:
            why = f"{unnamed}, and it is as dolt init left it (one commit, no change)"
            plan.append(Orphan(rig.name, rig.path, tree_size(rig.path), "remove", why))
        else:
            held = f"{state.commits} commits, {len(state.heads)} branch(es), {state.changes} uncommitted change(s)"
            why = f"{unnamed}, but it holds data ({held}): kept, restorable"
            target = destination(town, rig.name, when)
            plan.append(Orphan(rig.name, rig.path, tree_size(rig.path), "move", why, target))
    return plan


def restore_hint(orphan: Orphan) -> str:
    assert orphan.destination is not None
    return f"gt-dolt restore --rig {orphan.name} --from {orphan.destination.as_uri()}"


def set_aside(town: Town, name: str, destination: Path, data_fd: int) -> None:
    """Move `.dolt-data/<name>` (of the folder `data_fd` holds) to `destination` in the orphans
    backup: one rename; across file systems a checked copy, then the source goes."""
    safefs.ensure_private_dir(town.backup_dir, root=town.root)
    safefs.ensure_private_dir(orphans_dir(town), root=town.root)
    with safefs.open_dir(orphans_dir(town), root=town.root) as dst_fd:
        try:
            staging.rename_noreplace(data_fd, name, dst_fd, destination.name)
            os.fsync(dst_fd)
            return
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise safefs.failure(exc, destination, f"move {town.rig_dir(name)} to") from None
    source = Path(f"/proc/self/fd/{data_fd}") / name
    with staging.staged(orphans_dir(town), destination.name, root=town.root) as stage:
        try:
            copy_checked(source, stage.path)
        except MigrationError as exc:
            raise RigError(str(exc)) from None
        stage.commit()
    staging.discard(data_fd, name)


def cleanup(
    town: Town, settings: DoltSettings, *, yes: bool = False, dry_run: bool = False, echo: Echo = print
) -> list[Orphan]:
    """Plan; with `yes` (and not `dry_run`) carry the plan out under the town lock, server stopped."""
    if dry_run or not yes:
        return plan_cleanup(town, settings)
    with town_lock(town, wait=settings.lock_wait):
        running = find_running(town, settings)[0]
        plan = plan_cleanup(town, settings)
        if plan and running is not None:
            raise RigError(
                f"the server (pid {running.pid}) holds the orphans' files open; nothing was changed; "
                f"{Remedy.STOP_FIRST}, run cleanup --yes, then start it again"
            )
        for leftover in staging.sweep(town.data_dir, root=town.root) + staging.sweep(orphans_dir(town), root=town.root):
            echo(f"removed {leftover} (left by an interrupted command; never the only copy of anything)")
        if any(orphan.action == "move" for orphan in plan):  # before anything is removed: a planted link stops all
            safefs.ensure_private_dir(town.backup_dir, root=town.root)
            safefs.ensure_private_dir(orphans_dir(town), root=town.root)
        with safefs.open_dir(town.data_dir, root=town.root) as data_fd:
            for orphan in plan:
                st = os.stat(orphan.name, dir_fd=data_fd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
                    raise safefs.unsafe(orphan.path, "no longer a folder of yours")
                if orphan.action == "remove":
                    staging.discard(data_fd, orphan.name)
                    echo(f"removed {orphan.path} ({orphan.why})")
                else:
                    assert orphan.destination is not None
                    set_aside(town, orphan.name, orphan.destination, data_fd)
                    echo(f"moved {orphan.path} -> {orphan.destination}; to serve it again: {restore_hint(orphan)}")
            os.fsync(data_fd)
        return plan
