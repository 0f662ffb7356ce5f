"""The dated backup a migration keeps, so that `rollback` can undo it.

Before a migration moves anything it copies, into `.dolt-backup/migrations/<UTC time>/`:

    databases/<rig>/             each database it is about to move, byte for byte (checked)
    beads/<n>/metadata.json      every rig's beads metadata (and dolt-server.port) as it was
    migration.json               what came from where: source, target, layout, each database's
                                 branch heads and row counts, each beads file's original path

The folder is built in `.staging` and renamed into place whole, the record last in, so a backup
that exists is complete (ops/staging.py).  gt v1.0 keeps its backups as `migration-backup-<time>/`
in the town root, with whole `.beads` copies; ours lives with the town's other backups, holds what
a migration changes and no more, and says how big it is.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from ..beads import beads, beadslayout
from ..errors import ConfigError, FileFailure, MigrationError, UnsafeFile
from ..files import safefs, staging
from ..files.runfiles import iso_time
from ..town import Town
from .dbfiles import bd_lock, listing, table_counts, tree_size
from .dbstate import read_state

Echo = Callable[[str], None]
MIGRATIONS = "migrations"
RECORD = "migration.json"
KIND = "gastown-tasks migration backup"
RECORD_LIMIT = 4 * 1024 * 1024
BEADS_FILES = (beads.METADATA, beads.PORT_FILE)


def backups_dir(town: Town) -> Path:
    return town.backup_dir / MIGRATIONS


class Kept(NamedTuple):
    path: Path
    size: int


def copy_checked(source: Path, target: Path) -> None:
    """Copy a folder (links as links) and check the copy has every file at its size."""
    try:
        shutil.copytree(source, target, symlinks=True)
    except (OSError, shutil.Error) as exc:
        raise MigrationError(
            f"copying {source} to {target} failed ({str(exc)[:300]}); nothing was changed: free space "
            "or fix permissions, then retry"
        ) from None
    if listing(source) != listing(target):
        raise MigrationError(f"the copy of {source} at {target} differs from it; nothing was changed")


def _beads_files(town: Town) -> list[tuple[str, Path, dict[str, bytes]]]:
    """(rig, beads dir, file name -> bytes) of every rig whose beads dir holds metadata."""
    found = []
    for rig in beadslayout.rig_folders(town):
        read = beads.read_beads(town, rig)
        if read.metadata is None:
            continue
        files = {}
        for name in BEADS_FILES:
            data = safefs.read_bytes(read.dir / name, beads.METADATA_LIMIT, root=town.root)
            if data is not None:
                files[name] = data
        found.append((rig, read.dir, files))
    return found


def keep(town: Town, moves: list[Any], dolt: Path, env: dict[str, str], echo: Echo) -> Kept:
    """Copy what `moves` (migrate.Move) will move, and every beads metadata, into a new dated backup."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base, n = stamp, 1
    while os.path.lexists(backups_dir(town) / stamp):  # a second migration within the same second
        n += 1
        stamp = f"{base}-{n}"
    safefs.ensure_private_dir(town.backup_dir, root=town.root)
    safefs.ensure_private_dir(backups_dir(town), root=town.root)
    staging.sweep(backups_dir(town), root=town.root)  # what a migration killed while keeping left
    with staging.staged(backups_dir(town), stamp, root=town.root) as stage:
        os.mkdir(stage.path, 0o700)
        record: dict[str, Any] = {"kind": KIND, "version": 1, "created": iso_time(), "rigs": [], "beads": []}
        for move in moves:
            copy = Path("databases") / move.rig
            (stage.path / "databases").mkdir(mode=0o700, exist_ok=True)
            with bd_lock(town, move):  # no bd writes to it while it is copied
                copy_checked(move.source, stage.path / copy)
            state = read_state(dolt, stage.path / copy, env)
            record["rigs"].append(
                {
                    "rig": move.rig,
                    "source": str(move.source),
                    "target": str(move.target),
                    "layout": move.layout,
                    "copy": str(copy),
                    "heads": state.heads,
                    "tables": table_counts(dolt, stage.path / copy, env),
                }
            )
        for n, (rig, folder, files) in enumerate(_beads_files(town)):
            saved = {}
            for name, data in files.items():
                where = Path("beads") / str(n) / name
                safefs.ensure_dir((stage.path / where).parent, root=town.root, mode=0o700)
                safefs.write_atomic(stage.path / where, data, root=town.root)
                saved[name] = str(where)
            record["beads"].append({"rig": rig, "dir": str(folder), "files": saved})
        safefs.write_atomic(stage.path / RECORD, (json.dumps(record, indent=2) + "\n").encode(), root=town.root)
        try:
            stage.commit()
        except FileExistsError:
            raise MigrationError(f"{backups_dir(town) / stamp} appeared meanwhile; nothing was moved") from None
    kept = Kept(backups_dir(town) / stamp, tree_size(backups_dir(town) / stamp))
    echo(f"kept what this migration moves in {kept.path} ({kept.size:,} bytes); undo it with: gt-dolt rollback")
    return kept


# --- reading them back -----------------------------------------------------------------------------


class Backup(NamedTuple):
    path: Path
    record: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.name


def _read(town: Town, folder: Path) -> Backup | None:
    try:
        raw = safefs.read_bytes(folder / RECORD, RECORD_LIMIT, root=town.root)
        record = json.loads(raw) if raw else None
    except (ValueError, RecursionError, UnicodeDecodeError, UnsafeFile, FileFailure):
        return None
    if not isinstance(record, dict) or record.get("kind") != KIND:
        return None
    if not isinstance(record.get("rigs"), list) or not isinstance(record.get("beads"), list):
        return None
    return Backup(folder, record)


def list_backups(town: Town) -> list[Backup]:
    """Every migration backup of the town, newest first (names sort as their times)."""
    try:
        entries = [e for e in os.scandir(backups_dir(town)) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    found = [_read(town, Path(entry.path)) for entry in sorted(entries, key=lambda e: e.name, reverse=True)]
    return [backup for backup in found if backup is not None]


def find_backup(town: Town, name: str | None) -> Backup:
    """The newest backup, or the one named (its folder name, or its path)."""
    backups = list_backups(town)
    if name is None:
        if not backups:
            raise ConfigError(f"no migration backups in {backups_dir(town)}: only a migrate made by gt-dolt keeps one")
        return backups[0]
    wanted = os.path.basename(os.path.normpath(name))
    if os.sep in name and Path(os.path.abspath(name)).parent != backups_dir(town):
        raise ConfigError(f"{name} is not a migration backup: they are the folders of {backups_dir(town)}")
    for backup in backups:
        if backup.name == wanted:
            return backup
    raise ConfigError(
        f"{name} is not a migration backup (a folder of {backups_dir(town)} holding {RECORD}); "
        f"the backups: {', '.join(b.name for b in backups) or 'none'}"
    )
