"""Backups of every rig with Dolt's own backups, and restoring one, atomically.

A backup copies a whole database (all branches, working sets, uncommitted changes) and each sync
copies only new chunks.  While the server runs it goes through SQL (`CALL dolt_backup('sync-url',
…)` in the rig); when it does not, through the Dolt CLI in the rig's folder.  Dolt writes a backup's
manifest last, so a sync killed midway leaves the previous backup restorable.  The last successful
backup of each rig is recorded in daemon/dolt-backups.json (0600) for `status` and `doctor`.  One
rig that cannot be backed up (a name the server refuses, a target that is not free) is reported
and the others are still backed up; a server that stops answering ends the run.

Where a backup may go (`check_target`): a URL Dolt accepts; a file URL absolute, its path plain (no
`.` or `..`, %-escapes decoded as Dolt decodes them), never `/`, never inside the town's
`.dolt-data` or `daemon/`; inside the town's `.dolt-backup`, only `.dolt-backup/<rig>` for that rig;
a folder that holds anything but a Dolt backup (its `manifest`) is refused, and so is a URL the
record gives to another rig: a backup holds one database.

A restore is atomic or invisible.  Dolt restores into a staging folder in daemon/ (a Dolt CLI in a
folder under a served data dir would go through that server instead), the complete database is
moved into `.dolt-data/.dolt_dropped_databases/<name>` (no server serves that folder), and from
there into service in one step: `CALL dolt_undrop(name)` when the server runs, one rename into
`.dolt-data` when it does not.  Killed at any instant, a restore leaves the rig absent (at most an
invisible staged copy, which the next restore clears) or complete; never a half rig that is
served.  A `--from` folder holding a whole database rather than a Dolt backup (what cleanup and
rollback set aside in .dolt-backup/orphans/) is copied into the staging folder as it is (Dolt's
backup restore refuses a store with a chunk journal); the rest is the same.  The one rename that
never replaces is ops/files/staging.py's, as for migrate and init-rig; the restore stages in daemon/
rather than in .dolt-data/.staging because a Dolt CLI run under a served data dir goes through
that server.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from ..build.binary import DOLT_UMASK, dolt_env, find_dolt
from ..errors import ConfigError, FileFailure, GastownError, Remedy, RigError, SqlFailure, UnsafeFile
from ..files import privilege, safefs
from ..files.backuprecords import RECORD_LIMIT, read_records, record, refuse_planted_record
from ..files.datadir import clashing, is_dolt_database, scan_data_dir, validate_rig_name
from ..files.locking import town_lock
from ..files.runfiles import iso_time
from ..files.staging import rename_noreplace
from ..server.discovery import find_running
from ..settings import DoltSettings
from ..sql import sqlclient
from ..town import Town

Echo = Callable[[str], None]

CONNECT = 5.0  # seconds to reach the server and log in
DROPPED = ".dolt_dropped_databases"  # Dolt's own folder of dropped databases: never served
STAGING = "restoring-"  # daemon/restoring-<pid>-<hex>/: a restore under way (cleared once the lock is free)
MARKER = ".gastown-restore"  # in a staged database: ours, to clear from the dropped-databases folder


def default_url(town: Town, rig: str) -> str:
    return (town.backup_dir / rig).as_uri()


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def file_path(url: str, kind: str = "backup") -> Path | None:
    """The folder a file URL names, decoded as Dolt decodes it; None for other schemes.

    Refused: a relative URL (Dolt would resolve it against whoever runs it), a bad %-escape, a
    path with `.` or `..` in it, and `/` itself.
    """
    if not url.startswith("file://"):
        return None
    if not url.startswith("file:///"):
        raise ConfigError(f"invalid {kind} URL {url!r}: a file URL must be absolute (file:///…)")
    raw = url[len("file://") :]
    if _BAD_ESCAPE.search(raw):
        raise ConfigError(f"invalid {kind} URL {url!r}: '%' must start an escape such as %20")
    path = urllib.parse.unquote(raw, errors="strict")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
        raise ConfigError(
            f"invalid {kind} URL {url!r}: its path holds control characters, which Dolt refuses in a URL"
            + (" (a rig so named cannot be backed up to a folder of its name: rename it)" if kind == "backup" else "")
        )
    if any(part in (".", "..") for part in path.split("/")):
        raise ConfigError(f"invalid {kind} URL {url!r}: give the folder itself, without '.' or '..' in its path")
    clean = "/" + os.path.normpath(path).lstrip("/")  # POSIX keeps a leading "//" apart; the kernel does not
    if clean == "/":
        raise ConfigError(f"invalid {kind} URL {url!r}: it names the root folder; a {kind} needs a folder of its own")
    return Path(clean)


def check_url(url: str) -> str:
    """Dolt takes file://, aws://, gs://, oci://, https:// …; a file URL must name a plain, absolute path."""
    text = url.strip()
    if "://" not in text or any(ch.isspace() for ch in text) or "'" in text:
        raise ConfigError(f"invalid backup URL {url!r}: give a URL Dolt accepts, such as file:///backups/hq")
    try:
        file_path(text)
    except UnicodeDecodeError:
        raise ConfigError(f"invalid backup URL {url!r}: its %-escapes are not UTF-8 text") from None
    return text


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _same_target(a: object, b: str) -> bool:
    if not isinstance(a, str):
        return False
    try:
        pa, pb = file_path(a), file_path(b)
    except (ConfigError, UnicodeDecodeError):
        return a == b
    return a == b if pa is None or pb is None else os.path.realpath(pa) == os.path.realpath(pb)


def check_target(town: Town, rig: str, url: str, records: dict[str, Any]) -> None:
    """Where rig `rig`'s backup may be written (see the module's docstring)."""
    for other, entry in records.items():
        if other != rig and isinstance(entry, dict) and _same_target(entry.get("url"), url):
            raise ConfigError(
                f"{url} holds the backup of rig {other} (daemon/dolt-backups.json): a backup holds one "
                f"database; choose another URL for rig {rig}"
            )
    path = file_path(url)
    if path is None:
        return
    real = os.path.realpath(path)  # Dolt follows links: so does the check
    for folder, what in ((town.data_dir, "the rig databases"), (town.daemon_dir, "the server's run files")):
        if _inside(real, os.path.realpath(folder)):
            raise ConfigError(f"backup URL {url} is inside {folder}, which holds {what}: choose a folder outside it")
    backups = os.path.realpath(town.backup_dir)
    if _inside(real, backups) and real != os.path.join(backups, rig):
        raise ConfigError(
            f"backup URL {url} is in the town's backups folder, where rig {rig}'s backup lives only at "
            f"{town.backup_dir / rig}: use that (the default), or a folder outside {town.backup_dir}"
        )
    try:
        entries = os.listdir(path)
    except FileNotFoundError:
        return
    except NotADirectoryError:
        raise ConfigError(f"backup URL {url} names a file, not a folder") from None
    except OSError as exc:
        raise safefs.failure(exc, path, "read") from None
    if entries and "manifest" not in entries:
        raise ConfigError(
            f"{path} holds other files and no Dolt backup: a backup needs a folder of its own (empty, or an "
            f"earlier backup of rig {rig}); choose another"
        )


class Synced(NamedTuple):
    rig: str
    url: str
    seconds: float
    through: str  # "the server" or "the Dolt CLI"


class BackupReport(NamedTuple):
    done: list[Synced]
    failed: list[tuple[str, str]]  # (rig, why): each said on its own line


def _ensure_file_target(town: Town, url: str, *, writing: bool = True) -> None:
    """A backup in the town's own folder is written and read there by path (by Dolt): every folder
    on the way, and the backup itself, must be ours and closed to other users."""
    target = file_path(url)
    if target is None:
        return
    if town.backup_dir in (target, *target.parents):
        for folder in reversed([target.parent, *target.parent.parents]):
            if town.backup_dir in (folder, *folder.parents):
                safefs.ensure_private_dir(folder, root=town.root)
        if os.path.lexists(target):
            safefs.ensure_private_dir(target, root=town.root)
        return
    exposed = privilege.path_problems(target)  # Dolt writes there by path, as us: no one else may swap it
    if exposed:
        raise UnsafeFile(f"the backup would be written where others can swap it: {privilege.in_one_line(exposed)}")
    if writing:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise safefs.failure(exc, target.parent, "create the folder") from None


def _sync_sql(settings: DoltSettings, rig: str, url: str) -> None:
    def work(conn: Any) -> None:
        with conn.cursor() as cur:
            cur.execute(f"USE {sqlclient.quote_name(rig)}")
            cur.execute("CALL dolt_backup('sync-url', %s)", (url,))

    sqlclient.call(settings, work, what=f"back up rig {rig}", timeout=CONNECT, long=sqlclient.LONG_CALL)


def _die_with_parent() -> None:
    """In a Dolt CLI child: die when gt-dolt dies (kill -9 included), never left working on a copy."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def embedded_sql(settings: DoltSettings, cwd: Path, statement: str, what: str, result_format: str = "tabular") -> str:
    """The same procedure as through the server, in Dolt's embedded engine (no server there); what
    it printed, in `result_format` (ops/rigs/remotes.py reads json).

    `dolt backup restore` on the command line wants an author identity; the procedure does not.
    """
    try:
        done = subprocess.run(
            [str(find_dolt(settings.binary)), "sql", "-r", result_format, "-q", statement],
            cwd=cwd,
            capture_output=True,
            text=True,
            errors="replace",
            stdin=subprocess.DEVNULL,
            env=dolt_env(),
            timeout=sqlclient.LONG_CALL,
            umask=DOLT_UMASK,
            preexec_fn=_die_with_parent,  # no thread of ours runs while it is spawned
        )
    except subprocess.TimeoutExpired:
        raise RigError(f"{what} took more than {sqlclient.LONG_CALL / 3600:g} hours and was stopped") from None
    except OSError as exc:
        raise safefs.failure(exc, cwd, "run Dolt in") from None
    if done.returncode != 0:
        said = " ".join((done.stderr or done.stdout).split())[-500:]
        raise RigError(f"{what} failed (Dolt says: {said})")
    return done.stdout


def _sync_cli(town: Town, settings: DoltSettings, rig: str, url: str) -> None:
    embedded_sql(
        settings,
        town.rig_dir(rig),
        f"CALL dolt_backup('sync-url', {sqlclient.quote_text(url)})",
        f"backing up rig {rig} to {url} (the previous backup is untouched)",
    )


def back_up(
    town: Town, settings: DoltSettings, rig: str | None = None, to: str | None = None, echo: Echo = print
) -> BackupReport:
    """Sync every rig (or `rig`, to `to`); one rig's failure does not stop the others'."""
    found = scan_data_dir(town)
    rigs = found.names
    refused = [(path.name, why) for path, why in found.foreign]  # on disk, never opened: said, not skipped
    if rig is not None:
        validate_rig_name(rig)
        if rig not in rigs:
            why = found.refused(rig)
            raise UnsafeFile(why) if why else RigError(f"no rig {rig} in {town.data_dir}")
        rigs, refused = [rig], []
    elif to is not None:
        raise ConfigError("--to needs --rig: one URL holds one database")
    url_of = {name: check_url(to) if to else default_url(town, name) for name in rigs}
    with town_lock(town, wait=settings.lock_wait):
        refuse_planted_record(town)  # before any sync: a backup nobody records is a backup nobody trusts
        privilege.check_town(town)  # Dolt (the server or its CLI) opens the rigs and writes by path
        records = read_records(town)
        if rig is not None:
            check_target(town, rig, url_of[rig], records)  # a bad --to is the caller's mistake: exit 2
        running = find_running(town, settings)[0]
        done: list[Synced] = []
        failed: list[tuple[str, str]] = list(refused)
        for name in rigs:
            url = url_of[name]
            try:
                check_target(town, name, url, records)
                _ensure_file_target(town, url)
                echo(f"backing up rig {name} to {url} ...")
                started = time.monotonic()
                if running is not None:
                    _sync_sql(settings.with_overrides(port=running.port), name, url)
                else:
                    privilege.check_databases([town.rig_dir(name)])  # the Dolt CLI opens it by path
                    _sync_cli(town, settings, name, url)
            except SqlFailure as exc:
                failed.append((name, str(exc)))
                if exc.kind != "error":  # the server, not this rig: the others would fail the same way
                    left = rigs[rigs.index(name) + 1 :]
                    failed.extend((other, "not tried: the server stopped answering") for other in left)
                    break
                continue
            except (RigError, ConfigError, UnsafeFile, FileFailure) as exc:
                failed.append((name, str(exc)))
                continue
            seconds = time.monotonic() - started
            record(town, name, url, seconds)
            done.append(Synced(name, url, seconds, "the server" if running is not None else "the Dolt CLI"))
        _keep_cluster_role(town)
        return BackupReport(done, failed)


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
    notes: list[str]


def _remove_tree(path: Path) -> None:
    """Remove a folder of ours (never through a link: rmtree refuses one, and walks by descriptor)."""
    if not os.path.lexists(path):
        return
    if os.path.islink(path) or not os.path.isdir(path):
        raise UnsafeFile(f"{path} is not a folder of gt-dolt's restore; {Remedy.remove(path)}")
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)


def _ours_staged(folder: Path) -> bool:
    """A database a restore of ours staged (its marker is a plain file of ours)."""
    return safefs.describe(folder / MARKER) is None and os.path.isfile(folder / MARKER)


def clear_leftovers(town: Town) -> list[Path]:
    """What restores cut short left (staging folders, staged copies in the dropped-databases
    folder): never served, and stale once the town lock is ours.  The paths removed."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(town.daemon_dir):
            if entry.name.startswith(STAGING) and entry.is_dir(follow_symlinks=False):
                _remove_tree(Path(entry.path))
                removed.append(Path(entry.path))
    with contextlib.suppress(OSError):
        for entry in os.scandir(town.data_dir / DROPPED):
            if entry.is_dir(follow_symlinks=False) and _ours_staged(Path(entry.path)):
                _remove_tree(Path(entry.path))
                removed.append(Path(entry.path))
    return removed


def _stage(town: Town, settings: DoltSettings, url: str, target: str) -> Path:
    """Restore `url` as database `target` in a new staging folder of daemon/; the folder."""
    folder = town.daemon_dir / f"{STAGING}{os.getpid()}-{os.urandom(4).hex()}"
    safefs.ensure_private_dir(folder, root=town.root)
    try:
        whole = file_path(url)
        if whole is not None and is_dolt_database(whole):  # a database set aside whole (cleanup's orphans)
            _copy_database(whole, folder / target, url)
        else:
            embedded_sql(
                settings,
                folder,
                f"CALL dolt_backup('restore', {sqlclient.quote_text(url)}, {sqlclient.quote_text(target)})",
                f"restoring {url} (nothing in the town was changed)",
            )
        staged = folder / target
        if not is_dolt_database(staged):
            raise RigError(f"restoring {url} made no database (nothing in the town was changed)")
        marker = {"restoring": target, "from": url, "pid": os.getpid(), "at": iso_time()}
        safefs.write_atomic(staged / MARKER, json.dumps(marker).encode(), mode=0o600, root=town.root)
    except BaseException:
        _remove_tree(folder)
        raise
    return folder


def _copy_database(source: Path, staged: Path, url: str) -> None:
    """A whole database folder (not a Dolt backup: Dolt restores no store with a chunk journal),
    copied as it is, links as links; the folder itself must be a real one."""
    if os.path.islink(source):
        raise UnsafeFile(f"{source} is a symlink; restore never follows a link: give the folder itself")
    try:
        shutil.copytree(source, staged, symlinks=True)
    except (OSError, shutil.Error) as exc:
        raise RigError(f"copying {url} failed ({str(exc)[:300]}); nothing in the town was changed") from None


def _move_in(town: Town, staging: Path, target: str) -> Path:
    """The staged database, moved whole into the dropped-databases folder (a copy first when
    .dolt-data is another file system); its path there."""
    dropped = town.data_dir / DROPPED
    safefs.ensure_dir(dropped, root=town.root, mode=0o700)
    with safefs.open_dir(staging, root=town.root) as src, safefs.open_dir(dropped, root=town.root) as dst:
        try:
            rename_noreplace(src, target, dst, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise safefs.failure(exc, dropped / target, "move the restored rig to") from None
            copy = f".copy-{os.urandom(4).hex()}"
            try:
                shutil.copytree(staging / target, dropped / copy, symlinks=True)
                rename_noreplace(dst, copy, dst, target)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    _remove_tree(dropped / copy)
                raise safefs.failure(exc, dropped / target, "copy the restored rig to") from None
    return dropped / target


def _keep_dropped(town: Town, target: str) -> str | None:
    """A database the user dropped under the name being restored waits in the dropped-databases
    folder (`dolt_undrop` could bring it back): kept under a name of its own, never deleted."""
    dropped = town.data_dir / DROPPED
    if not os.path.lexists(dropped / target):
        return None
    kept = f"{target}_before_restore_{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
    with safefs.open_dir(dropped, root=town.root) as dfd:
        try:
            rename_noreplace(dfd, target, dfd, kept)
        except OSError as exc:
            raise safefs.failure(exc, dropped / kept, "keep the dropped database as") from None
    return (
        f"the dropped database {target} that waited in {dropped} is kept as {kept} "
        f"(CALL dolt_undrop('{kept}') brings it back)"
    )


def _undrop(settings: DoltSettings, target: str) -> bool:
    """The running server takes the staged database into service; False when no server answers."""

    def work(conn: Any) -> None:
        with conn.cursor() as cur:
            cur.execute("CALL dolt_undrop(%s)", (target,))

    try:
        sqlclient.call(
            settings, work, what=f"serve the restored rig {target}", timeout=CONNECT, long=sqlclient.LONG_CALL
        )
    except SqlFailure as exc:
        if exc.kind == "refused":
            return False
        raise SqlFailure(
            f"{exc}; the restored copy waits, unserved, in .dolt-data/{DROPPED}: restore again once the server "
            "answers (that copy is cleared first)",
            kind=exc.kind,
        ) from None
    return True


def restore_rig(
    town: Town, settings: DoltSettings, rig: str, source: str | None = None, name: str | None = None, echo: Echo = print
) -> Restored:
    """Restore rig `rig`'s backup into .dolt-data/<name>, atomically; refused when that rig exists."""
    validate_rig_name(rig)
    target = validate_rig_name(name or rig)
    url = check_url(source) if source else default_url(town, rig)
    with town_lock(town, wait=settings.lock_wait):
        privilege.check_town(town)  # the Dolt CLI stages in daemon/ by path; the rig lands in .dolt-data
        clear_leftovers(town)
        found = scan_data_dir(town)
        taken = clashing(target, found.names + [path.name for path in found.linked])
        if taken is not None or os.path.lexists(town.rig_dir(target)):
            raise RigError(
                f"rig {target} already exists at {town.rig_dir(taken or target)}; restore it under "
                "another name (--as NAME), or move the existing one away first"
            )
        _ensure_file_target(town, url, writing=False)
        notes = [note for note in (_keep_dropped(town, target),) if note]
        running = find_running(town, settings)[0]
        echo(f"restoring {url} into rig {target} ...")
        started = time.monotonic()
        staging = _stage(town, settings, url, target)
        try:
            staged = _move_in(town, staging, target)
        finally:
            _remove_tree(staging)
        served = running is not None and _undrop(settings.with_overrides(port=running.port), target)
        if not served:
            with (
                safefs.open_dir(staged.parent, root=town.root) as src,
                safefs.open_dir(town.data_dir, root=town.root) as dst,
            ):
                try:
                    rename_noreplace(src, target, dst, target)
                except OSError as exc:
                    raise safefs.failure(exc, town.rig_dir(target), "put the restored rig at") from None
        with contextlib.suppress(GastownError, OSError):
            safefs.remove(town.rig_dir(target) / MARKER, root=town.root)
        return Restored(target, url, served, time.monotonic() - started, notes)
