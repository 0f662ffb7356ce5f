"""`rollback [BACKUP]`: undo a migrate from the backup it kept (ops/rigs/migrationbackup.py).

For each rig the migration moved: its database is copied back where bd kept it (staged beside it,
checked file by file, renamed into place: old state or new), its beads files are put back as they
were (atomic writes), and the migrated database in .dolt-data is set aside whole in
`.dolt-backup/orphans/` (never deleted: whatever it got since stays restorable).  Then each rig is
checked the way bd will read it: its beads metadata, and the database there opened by Dolt with
the row counts it had when it was migrated.

It refuses, before changing anything, when a migrated database has moved on since (new commits,
branches, uncommitted changes), naming the rigs: rolling back would take those changes out of
bd's sight.  `--force` rolls back anyway (they stay in the set-aside copy).  The server is stopped
first when it runs (Dolt must let go of the databases).  A rollback cut short is finished by the
next: a rig whose database is back and whose migrated copy is gone is done.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any, NamedTuple

from ..beads import beads, beadslayout
from ..build.binary import find_dolt
from ..errors import GastownError, MigrationError, RigError
from ..files import safefs, staging
from ..files.datadir import is_valid_rig_name
from ..files.locking import town_lock
from ..server.discovery import find_running
from ..server.server import stop
from ..settings import DoltSettings
from ..town import Town
from . import dbstate, orphans
from .dbfiles import counting_env, listing, table_counts
from .migrationbackup import Backup, copy_checked, find_backup

Echo = Callable[[str], None]


class RigBack(NamedTuple):
    rig: str
    source: Path  # where bd keeps it again
    target: Path  # the migrated copy, set aside
    set_aside: Path | None  # where that copy went (None: nothing was there)
    check: str  # how bd will read it


class RollbackReport(NamedTuple):
    backup: Path
    rigs: list[RigBack]
    planned: list[str]  # dry run: what would happen
    stopped: bool
    already: bool = False  # rolled back before: nothing was done


def _entries(town: Town, backup: Backup) -> list[dict[str, Any]]:
    """The backup's rigs, each checked: a rig name, paths inside the town, a copy inside the backup."""
    found = []
    for entry in backup.record["rigs"]:
        if not isinstance(entry, dict) or not is_valid_rig_name(entry.get("rig")):
            raise RigError(f"{backup.path} holds a rig entry that is not valid; it was not used")
        for key in ("source", "target"):
            path = Path(os.path.normpath(str(entry.get(key))))
            if not beadslayout.inside(town, path.parent):
                raise RigError(f"{backup.path} names {path}, outside the town or through a link; it was not used")
        if Path(str(entry.get("target"))) != town.rig_dir(str(entry["rig"])):
            raise RigError(f"{backup.path} names a target other than .dolt-data/{entry['rig']}; it was not used")
        copy = backup.path / str(entry.get("copy"))
        if ".." in Path(str(entry.get("copy"))).parts or not os.path.isdir(copy / ".dolt"):
            raise RigError(f"{backup.path} lacks its copy of rig {entry['rig']}; it was not used")
        found.append(entry)
    return found


def _state_now(town: Town, settings: DoltSettings, rig: str, dolt: Path | None, env: dict[str, str]) -> Any:
    running = find_running(town, settings)[0]
    if running is not None:
        return dbstate.read_state_served(settings.with_overrides(port=running.port), rig)
    assert dolt is not None
    return dbstate.read_state(dolt, town.rig_dir(rig), env)


def _changed(
    town: Town, settings: DoltSettings, entries: list[dict[str, Any]], dolt: Path, env: dict[str, str]
) -> list[str]:
    changed = []
    for entry in entries:
        rig = str(entry["rig"])
        if not os.path.isdir(town.rig_dir(rig) / ".dolt"):
            continue
        recorded = entry.get("heads")
        heads = {str(k): str(v) for k, v in recorded.items()} if isinstance(recorded, dict) else {}
        how = dbstate.moved_on(heads, _state_now(town, settings, rig, dolt, env))
        if how is not None:
            changed.append(f"{rig} ({how})")
    return changed


def _put_back(town: Town, backup: Backup, entry: dict[str, Any], echo: Echo) -> None:
    """The kept copy, where bd kept the database: staged beside it, renamed into place."""
    source = Path(str(entry["source"]))
    copy = backup.path / str(entry["copy"])
    if os.path.isdir(source.parent):
        staging.sweep(source.parent, root=town.root)  # what a rollback cut short left staged there
        with suppress(OSError, GastownError), safefs.open_dir(source.parent, root=town.root) as fd:
            os.rmdir(staging.STAGING, dir_fd=fd)  # only when empty: bd's folder as it was
    if os.path.lexists(source):
        if listing(source) != listing(copy):
            raise RigError(
                f"{source} exists and is not the database the migration moved; nothing more was changed: "
                "move it aside, then roll back again"
            )
        return  # put back by a rollback cut short
    safefs.ensure_dir(source.parent, root=town.root, mode=0o700)
    with staging.staged(source.parent, source.name, root=town.root) as stage:
        copy_checked(copy, stage.path)
        try:
            stage.commit()
        except FileExistsError:
            raise RigError(f"{source} appeared meanwhile; nothing more was changed") from None
    echo(f"put back {source} (from {copy})")


def _restore_beads(town: Town, backup: Backup, echo: Echo) -> None:
    for entry in backup.record["beads"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("files"), dict):
            continue
        folder = Path(os.path.normpath(str(entry.get("dir"))))
        if not beadslayout.inside(town, folder):
            echo(f"skipped {folder}: outside the town or through a link")
            continue
        for name, saved in entry["files"].items():
            if name not in (beads.METADATA, beads.PORT_FILE) or ".." in Path(str(saved)).parts:
                continue
            data = safefs.read_bytes(backup.path / str(saved), beads.METADATA_LIMIT, root=town.root)
            if data is None:
                continue
            if safefs.read_bytes(folder / name, beads.METADATA_LIMIT, root=town.root) != data:
                safefs.write_atomic(folder / name, data, mode=0o600, root=town.root)
                echo(f"restored {folder / name} as it was before the migration")


def _bd_check(town: Town, entry: dict[str, Any], dolt: Path, env: dict[str, str]) -> str:
    """What bd will read for the rig now: its metadata's mode, the database there, the rows."""
    rig, source = str(entry["rig"]), Path(str(entry["source"]))
    read = beads.read_beads(town, rig)
    where = [db.path for b in beadslayout.rig_beads(town, rig) for db in b.databases]
    if read.mode == "server" or source not in where:
        return f"NOT as before: bd reads mode {read.mode!r} from {read.dir / beads.METADATA}, databases {where}"
    counts = table_counts(dolt, source, env)
    if counts != entry.get("tables"):
        return f"NOT as before: {source} holds {sum(counts.values())} rows in {len(counts)} tables"
    return f"bd reads {source} ({read.mode}): {len(counts)} tables, {sum(counts.values()):,} rows, as migrated"


def rollback(
    town: Town,
    settings: DoltSettings,
    name: str | None = None,
    *,
    force: bool = False,
    dry_run: bool = False,
    echo: Echo = print,
) -> RollbackReport:
    backup = find_backup(town, name)
    entries = _entries(town, backup)
    done_before = [e for e in entries if os.path.lexists(str(e["source"])) and not os.path.lexists(str(e["target"]))]
    if len(done_before) == len(entries):
        return RollbackReport(backup.path, [], [], False, already=True)
    dolt = find_dolt(settings.binary)
    env = counting_env(town, dolt)
    changed = _changed(town, settings, entries, dolt, env)
    if changed and not force:
        raise RigError(
            f"rig(s) changed since the migration of {backup.name}: {'; '.join(changed)}; nothing was changed "
            "(rolling back would hide those changes from bd): roll back with --force to keep them only in "
            ".dolt-backup/orphans/"
        )
    if dry_run:
        planned = [f"put back {e['source']} and set aside {e['target']}" for e in entries]
        planned += [f"restore {e.get('dir')}/{n}" for e in backup.record["beads"] for n in e.get("files", {})]
        planned += [f"(--force) lose from bd's sight: {c}" for c in changed]
        return RollbackReport(backup.path, [], planned, False)
    running = find_running(town, settings)[0]
    if running is not None:
        echo(f"stopping the server (pid {running.pid}): Dolt must let go of the databases")
        stop(town, settings, echo=echo)
    done = []
    with town_lock(town, wait=settings.lock_wait):
        if find_running(town, settings)[0] is not None:
            raise RigError("the server was started again meanwhile; nothing was changed: stop it, then retry")
        again = _changed(town, settings, entries, dolt, env)
        if again and not force:
            raise RigError(f"rig(s) changed since the migration: {'; '.join(again)}; nothing was changed")
        when = orphans.stamp()
        for entry in entries:
            _put_back(town, backup, entry, echo)
        _restore_beads(town, backup, echo)
        for entry in entries:
            rig = str(entry["rig"])
            aside = None
            if os.path.lexists(town.rig_dir(rig)):
                aside = orphans.destination(town, rig, when)
                try:
                    with safefs.open_dir(town.data_dir, root=town.root) as data_fd:
                        orphans.set_aside(town, rig, aside, data_fd)
                except (GastownError, MigrationError, OSError) as exc:
                    raise RigError(f"setting aside {town.rig_dir(rig)} failed: {exc}") from None
                echo(f"set aside the migrated {town.rig_dir(rig)} in {aside}")
            check = _bd_check(town, entry, dolt, env)
            done.append(RigBack(rig, Path(str(entry["source"])), town.rig_dir(rig), aside, check))
    return RollbackReport(backup.path, done, [], running is not None)
