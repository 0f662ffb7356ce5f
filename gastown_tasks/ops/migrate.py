"""Moving rig databases from the old .beads layout into <town>/.dolt-data/<rig>.

    <town>/.beads/dolt/beads        -> .dolt-data/hq
    <town>/<rig>/.beads/dolt/beads  -> .dolt-data/<rig>

A database is moved whole, by rename; across filesystems it is copied beside the target,
verified, renamed into place, and only then is the source removed.  Any failure leaves the source
as it was and no partial target.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .binary import find_dolt, run_dolt
from .errors import MigrationError, RigError
from .locking import town_lock
from .rigs import is_valid_rig_name
from .server import LOCK_SLACK, find_running
from .settings import DoltSettings
from .town import Town

HQ_RIG = "hq"


@dataclass(frozen=True)
class Move:
    source: Path
    target: Path
    rig: str
    size: int

    @property
    def blocked(self) -> bool:
        return self.target.exists()


def tree_size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                continue
    return total


def _old_database(folder: Path) -> Path | None:
    source = folder / ".beads" / "dolt" / "beads"
    return source if (source / ".dolt").is_dir() else None


def find_moves(town: Town) -> list[Move]:
    """Every old-layout database in the town, with where it would go."""
    moves = []
    hq = _old_database(town.root)
    if hq is not None:
        moves.append(Move(hq, town.rig_dir(HQ_RIG), HQ_RIG, tree_size(hq)))
    for folder in sorted(town.root.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir() or folder.is_symlink():
            continue
        source = _old_database(folder)
        if source is None:
            continue
        if not is_valid_rig_name(folder.name):
            raise RigError(
                f"{source} belongs to folder {folder.name!r}, which is not a valid rig name; "
                "rename the folder, then run migrate again"
            )
        moves.append(Move(source, town.rig_dir(folder.name), folder.name, tree_size(source)))
    return moves


def _listing(root: Path) -> dict[str, int]:
    """Relative path -> size of every file under root (symlinks as links)."""
    found = {}
    for folder, _, files in os.walk(root):
        for name in files:
            full = os.path.join(folder, name)
            found[os.path.relpath(full, root)] = os.lstat(full).st_size
    return found


def _dolt_opens(dolt: Path, database: Path) -> str | None:
    """None when Dolt can read the database's history, else Dolt's complaint."""
    done = run_dolt(dolt, "log", "-n", "1", cwd=database)
    return None if done.returncode == 0 else (done.stderr or done.stdout).strip()[-500:]


def _copy_then_swap(move: Move, dolt: Path, echo: Callable[[str], None]) -> None:
    """The cross-filesystem path: copy, verify, rename into place, then remove the source."""
    staging = Path(tempfile.mkdtemp(prefix=f".migrate-{move.rig}-", dir=move.target.parent))
    copy = staging / move.rig
    try:
        echo(f"  {move.source} is on another filesystem: copying to {copy}")
        try:
            shutil.copytree(move.source, copy, symlinks=True)
        except (OSError, shutil.Error) as exc:
            raise MigrationError(
                f"copying {move.source} to {move.target.parent} failed ({exc}); the source is untouched "
                "and the partial copy was removed: free space or fix permissions, then migrate again"
            ) from None
        want, got = _listing(move.source), _listing(copy)
        if want != got:
            differ = sorted(set(want.items()) ^ set(got.items()))[:5]
            raise MigrationError(
                f"the copy of {move.source} differs from it ({differ}); source left as it was"
            )
        complaint = _dolt_opens(dolt, copy)
        if complaint is not None:
            raise MigrationError(
                f"Dolt cannot open the copy of {move.source}: {complaint}; source left as it was"
            )
        os.rename(copy, move.target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if _listing(move.source) != want:  # prove the source is still what was copied before deleting it
        raise MigrationError(
            f"{move.source} changed while it was copied; the copy is at {move.target} and the source "
            "was kept: compare them, then remove the one you do not want"
        )
    echo(f"  copy verified and in place; removing the source {move.source}")
    shutil.rmtree(move.source)


def _move(move: Move, dolt: Path, echo: Callable[[str], None]) -> None:
    move.target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(move.source, move.target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise MigrationError(f"cannot move {move.source} to {move.target}: {exc.strerror}") from None
        _copy_then_swap(move, dolt, echo)


def _remove_empty_parents(source: Path) -> None:
    """Remove .beads/dolt (and .beads) left empty; rmdir refuses anything that is not empty."""
    for folder in (source.parent, source.parent.parent):
        try:
            folder.rmdir()
        except OSError:
            return


@dataclass
class MigrationReport:
    moved: list[Move]
    skipped: list[Move]
    planned: list[Move]  # dry run only


def migrate(
    town: Town,
    settings: DoltSettings,
    *,
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
) -> MigrationReport:
    """Move every old-layout database that has no target yet; refuse while the server runs.

    A dry run only reads, so it is allowed while the server runs.
    """
    dolt = find_dolt(settings.binary)
    with town_lock(town, wait=settings.start_timeout + settings.stop_timeout + LOCK_SLACK):
        running = find_running(town, settings)
        if running is not None and not dry_run:
            raise MigrationError(
                f"this town's Dolt server is running (pid {running.pid}); nothing was changed. "
                "Stop it first: gt-dolt stop (or invoke dolt.stop)"
            )
        report = MigrationReport([], [], [])
        if running is not None:
            echo(f"note: the server is running (pid {running.pid}); stop it before the real migration")
        for move in find_moves(town):
            if move.blocked:
                echo(f"skip {move.source}: {move.target} already exists (source left untouched)")
                report.skipped.append(move)
            elif dry_run:
                echo(f"would move {move.source} -> {move.target} ({move.size:,} bytes)")
                report.planned.append(move)
            else:
                echo(f"move {move.source} -> {move.target} ({move.size:,} bytes)")
                _move(move, dolt, echo)
                _remove_empty_parents(move.source)
                report.moved.append(move)
        return report
