"""Backups of every rig with Dolt's own backups, and restoring one.

A backup copies a whole database (all branches, working sets, uncommitted changes) and each sync
copies only new chunks.  While the server runs it goes through SQL (`CALL dolt_backup('sync-url',
…)` in the rig); when it does not, through the Dolt CLI in the rig's folder.  Dolt writes a backup's
manifest last, so a sync killed midway leaves the previous backup restorable.  The last successful
backup of each rig is recorded in daemon/dolt-backups.json (0600) for `status` and `doctor`.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from . import safefs, sqlclient
from .backuprecords import RECORD_LIMIT, record, refuse_planted_record
from .binary import find_dolt, run_dolt
from .discovery import find_running
from .errors import ConfigError, RigError
from .locking import town_lock
from .rigs import clashing, scan_data_dir, validate_rig_name
from .settings import DoltSettings
from .town import Town

Echo = Callable[[str], None]


def default_url(town: Town, rig: str) -> str:
    return (town.backup_dir / rig).as_uri()


def check_url(url: str) -> str:
    """Dolt takes file://, aws://, gs://, oci://, https:// …; a relative file:// path is resolved
    against whoever runs the command (the server), so only absolute ones are accepted."""
    text = url.strip()
    if "://" not in text or any(ch.isspace() for ch in text) or "'" in text:
        raise ConfigError(f"invalid backup URL {url!r}: give a URL Dolt accepts, such as file:///backups/hq")
    if text.startswith("file://") and not text.startswith("file:///"):
        raise ConfigError(f"invalid backup URL {url!r}: a file URL must be absolute (file:///…)")
    return text


class Synced(NamedTuple):
    rig: str
    url: str
    seconds: float
    through: str  # "the server" or "the Dolt CLI"


def _ensure_file_target(town: Town, url: str, *, writing: bool = True) -> None:
    """A backup in the town's own folder is written and read there by path (by Dolt): every folder
    on the way, and the backup itself, must be ours and closed to other users."""
    if not url.startswith("file:///"):
        return
    target = Path(url[len("file://") :])
    if town.backup_dir in (target, *target.parents):
        for folder in reversed([target.parent, *target.parent.parents]):
            if town.backup_dir in (folder, *folder.parents):
                safefs.ensure_private_dir(folder, root=town.root)
        if os.path.lexists(target):
            safefs.ensure_private_dir(target, root=town.root)
    elif writing:
        target.parent.mkdir(parents=True, exist_ok=True)


def _sync_sql(settings: DoltSettings, rig: str, url: str) -> None:
    def work(conn: Any) -> None:
        with conn.cursor() as cur:
            cur.execute(f"USE `{rig}`")
            cur.execute("CALL dolt_backup('sync-url', %s)", (url,))

    sqlclient.call(settings, work, what=f"back up rig {rig}", timeout=30)


def _embedded(town: Town, settings: DoltSettings, cwd: Path, statement: str, what: str) -> None:
    """The same procedure as through the server, in Dolt's embedded engine (the server is down).

    `dolt backup restore` on the command line wants an author identity; the procedure does not.
    """
    done = run_dolt(find_dolt(settings.binary), "sql", "-q", statement, cwd=cwd, timeout=None)
    if done.returncode != 0:
        said = " ".join((done.stderr or done.stdout).split())[-500:]
        raise RigError(f"{what} failed (Dolt says: {said})")


def _sync_cli(town: Town, settings: DoltSettings, rig: str, url: str) -> None:
    _embedded(
        town,
        settings,
        town.rig_dir(rig),
        f"CALL dolt_backup('sync-url', '{url}')",
        f"backing up rig {rig} to {url} (the previous backup is untouched)",
    )


def back_up(
    town: Town, settings: DoltSettings, rig: str | None = None, to: str | None = None, echo: Echo = print
) -> list[Synced]:
    rigs = scan_data_dir(town).names
    if rig is not None:
        validate_rig_name(rig)
        if rig not in rigs:
            raise RigError(f"no rig {rig} in {town.data_dir}")
        rigs = [rig]
    elif to is not None:
        raise ConfigError("--to needs --rig: one URL holds one database")
    url_of = {name: check_url(to) if to else default_url(town, name) for name in rigs}
    with town_lock(town, wait=settings.lock_wait):
        refuse_planted_record(town)  # before any sync: a backup nobody records is a backup nobody trusts
        running = find_running(town, settings)[0]
        done = []
        for name in rigs:
            url = url_of[name]
            _ensure_file_target(town, url)
            echo(f"backing up rig {name} to {url} ...")
            started = time.monotonic()
            if running is not None:
                _sync_sql(settings.with_overrides(port=running.port), name, url)
            else:
                _sync_cli(town, settings, name, url)
            seconds = time.monotonic() - started
            record(town, name, url, seconds)
            done.append(Synced(name, url, seconds, "the server" if running is not None else "the Dolt CLI"))
        _keep_cluster_role(town)
        return done


def _keep_cluster_role(town: Town) -> None:
    """A clustered server keeps its role and epoch in .dolt-root, which no Dolt backup holds."""
    config = town.dolt_root / ".dolt" / "config_global.json"
    data = safefs.read_bytes(config, RECORD_LIMIT, root=town.root)
    if data is not None:
        copy = town.backup_dir / "dolt-root" / "config_global.json"
        safefs.ensure_dir(copy.parent, root=town.root, mode=0o700)
        safefs.write_atomic(copy, data, mode=0o600, root=town.root)


class Restored(NamedTuple):
    rig: str
    url: str
    served: bool
    seconds: float


def restore_rig(
    town: Town, settings: DoltSettings, rig: str, source: str | None = None, name: str | None = None, echo: Echo = print
) -> Restored:
    """Restore rig `rig`'s backup into .dolt-data/<name>; refused when that rig exists."""
    validate_rig_name(rig)
    target = validate_rig_name(name or rig)
    url = check_url(source) if source else default_url(town, rig)
    with town_lock(town, wait=settings.lock_wait):
        found = scan_data_dir(town)
        taken = clashing(target, found.names + [path.name for path in found.linked])
        if taken is not None or os.path.lexists(town.rig_dir(target)):
            raise RigError(
                f"rig {target} already exists at {town.rig_dir(taken or target)}; restore it under "
                "another name (--as NAME), or move the existing one away first"
            )
        _ensure_file_target(town, url, writing=False)
        running = find_running(town, settings)[0]
        echo(f"restoring {url} into rig {target} ...")
        started = time.monotonic()
        if running is not None:
            _restore_sql(settings.with_overrides(port=running.port), url, target)
        else:
            _restore_cli(town, settings, url, target)
        return Restored(target, url, running is not None, time.monotonic() - started)


def _restore_sql(settings: DoltSettings, url: str, target: str) -> None:
    def work(conn: Any) -> None:
        with conn.cursor() as cur:
            try:
                cur.execute("CALL dolt_backup('restore', %s, %s)", (url, target))
            except Exception:
                # A failed restore leaves an empty database behind (Dolt's pitfall): drop only that.
                if target in sqlclient.show_databases(conn):
                    cur.execute(f"DROP DATABASE `{target}`")
                raise

    sqlclient.call(settings, work, what=f"restore {url}", timeout=30)


def _restore_cli(town: Town, settings: DoltSettings, url: str, target: str) -> None:
    safefs.ensure_dir(town.data_dir, root=town.root)
    try:
        _embedded(
            town, settings, town.data_dir, f"CALL dolt_backup('restore', '{url}', '{target}')", f"restoring {url}"
        )
    except RigError:
        # Dolt leaves an empty database behind a failed restore; it did not exist before this call.
        debris = town.rig_dir(target)
        if os.path.isdir(debris) and not os.path.islink(debris):
            shutil.rmtree(debris, ignore_errors=True)
        raise
