"""Moving rig databases from the old .beads layout into <town>/.dolt-data/<rig>.

    <town>/.beads/dolt/beads        -> .dolt-data/hq
    <town>/<rig>/.beads/dolt/beads  -> .dolt-data/<rig>

One function plans (the dry run prints that plan, the real run carries it out).  A source is taken
only when no component of its path below the town is a symlink, so a migration never moves a
database out of a folder outside the town.  Targets that clash by case with each other or with an
existing rig are refused, as init-rig refuses them.  A database is moved whole, by rename through
folder descriptors; across filesystems it is copied beside the target, verified, renamed into
place, and only then is the source removed.  Any failure leaves the source as it was and no
partial target.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from . import beads, safefs
from .binary import find_dolt, run_dolt
from .discovery import find_running
from .errors import GastownError, MigrationError, Remedy
from .locking import town_lock
from .rigs import RESERVED, RIG_NAME, clashing, scan_data_dir
from .settings import DoltSettings
from .town import Town

HQ_RIG = "hq"
OLD_LAYOUT = (".beads", "dolt", "beads")


class Move(NamedTuple):
    source: Path
    target: Path
    rig: str
    size: int


class Skip(NamedTuple):
    source: Path
    why: str


class MigrationPlan(NamedTuple):
    moves: list[Move]
    skipped: list[Skip]


def tree_size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                continue
    return total


def _linked_component(root: Path, parts: tuple[str, ...]) -> Path | None:
    """The first component below `root` that is a symlink; None when every one is a real folder."""
    here = root
    for part in parts:
        here = here / part
        try:
            if stat.S_ISLNK(os.lstat(here).st_mode):
                return here
        except FileNotFoundError:
            return None
    return None


def _old_database(town: Town, rig_folder: str | None) -> tuple[Path, str | None] | None:
    """(source, why it must not be moved, or None), or None when there is no old database there.

    Every component below the town, the database's own .dolt included, must be a real folder, and
    the database must be ours: moving another user's database into the town would hand its links
    and contents to a server run by us.
    """
    parts = ((rig_folder,) if rig_folder else ()) + OLD_LAYOUT
    source = town.root.joinpath(*parts)
    if not (source / ".dolt").is_dir():
        return None
    linked = _linked_component(town.root, (*parts, ".dolt", "noms"))
    if linked is not None:
        return source, f"{linked} is a symlink; a migration never follows a link out of the town"
    for where in (source, source / ".dolt"):
        owner = os.lstat(where).st_uid
        if owner != os.geteuid():
            return source, f"{where} belongs to uid {owner}, not to you: another user's database is not moved in"
    return source, None


def plan_migration(town: Town) -> MigrationPlan:
    """Every old-layout database in the town and what would happen to it: the one plan."""
    plan = MigrationPlan([], [])
    candidates: list[tuple[str, tuple[Path, str | None]]] = []
    hq = _old_database(town, None)
    if hq is not None:
        candidates.append((HQ_RIG, hq))
    for entry in sorted(os.scandir(town.root), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=True):
            continue
        found = _old_database(town, entry.name)
        if found is not None:
            candidates.append((entry.name, found))
    existing = scan_data_dir(town).names
    taken: list[str] = []
    for rig, (source, refused) in candidates:
        target = town.rig_dir(rig)
        if refused is not None:
            why = refused
        elif not RIG_NAME.fullmatch(rig) or rig.lower() in RESERVED:
            why = f"folder {rig!r} is not a valid rig name: rename the folder, then migrate again"
        elif os.path.lexists(target):
            why = f"{target} already exists (source left untouched)"
        elif (other := clashing(rig, existing)) is not None:
            why = f"rig {rig} clashes with the existing rig {other} (names ignore case)"
        elif (other := clashing(rig, taken)) is not None:
            why = f"rig {rig} clashes with rig {other}, also being migrated (names ignore case): rename one folder"
        else:
            taken.append(rig)
            plan.moves.append(Move(source, target, rig, tree_size(source)))
            continue
        plan.skipped.append(Skip(source, why))
    return plan


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


def _copy_then_swap(move: Move, source: Path, data_fd: int, dolt: Path, echo: Callable[[str], None]) -> None:
    """The cross-filesystem path: copy, verify, rename into place, then remove the source."""
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".migrate-{move.rig}-", dir=move.target.parent))
    except OSError as exc:
        raise safefs.failure(exc, move.target.parent, "stage a copy in") from None
    copy = staging / move.rig
    try:
        echo(f"  {move.source} is on another filesystem: copying to {copy}")
        try:
            shutil.copytree(source, copy, symlinks=True)
        except (OSError, shutil.Error) as exc:
            raise MigrationError(
                f"copying {move.source} to {move.target.parent} failed ({str(exc)[:300]}); the source is "
                "untouched and the partial copy was removed: free space or fix permissions, then migrate again"
            ) from None
        want, got = _listing(source), _listing(copy)
        if want != got:
            differ = sorted(set(want.items()) ^ set(got.items()))[:5]
            raise MigrationError(f"the copy of {move.source} differs from it ({differ}); source left as it was")
        complaint = _dolt_opens(dolt, copy)
        if complaint is not None:
            raise MigrationError(f"Dolt cannot open the copy of {move.source}: {complaint}; source left as it was")
        os.rename(copy, move.target.name, dst_dir_fd=data_fd)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if _listing(source) != want:  # prove the source is still what was copied before deleting it
        raise MigrationError(
            f"{move.source} changed while it was copied; the copy is at {move.target} and the source was "
            "kept: compare them, then remove the one you do not want"
        )
    echo(f"  copy verified and in place; removing the source {move.source}")
    shutil.rmtree(source)  # fd-based: never follows a link inside the tree


def _move(town: Town, move: Move, dolt: Path, echo: Callable[[str], None]) -> None:
    """Rename through descriptors of the source's parents (opened without following links)."""
    with (
        safefs.open_dir(move.source.parent, root=town.root) as src_fd,
        safefs.open_dir(town.data_dir, root=town.root, create=True) as data_fd,
    ):
        st = os.stat(move.source.name, dir_fd=src_fd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            raise MigrationError(f"{move.source} is no longer a folder; nothing was moved")
        try:
            os.rename(move.source.name, move.rig, src_dir_fd=src_fd, dst_dir_fd=data_fd)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise safefs.failure(exc, move.source, f"move to {move.target}:") from None
            pinned = Path(f"/proc/self/fd/{src_fd}") / move.source.name  # the walked parents, pinned
            _copy_then_swap(move, pinned, data_fd, dolt, echo)
        _remove_empty_parents(town, move.source)


def _remove_empty_parents(town: Town, source: Path) -> None:
    """Remove .beads/dolt (and .beads) left empty; rmdir refuses anything that is not empty."""
    for folder in (source.parent, source.parent.parent):
        try:
            with safefs.open_dir(folder.parent, root=town.root) as fd:
                os.rmdir(folder.name, dir_fd=fd)
        except (OSError, GastownError):
            return


class MigrationReport(NamedTuple):
    moved: list[Move]
    skipped: list[Skip]
    planned: list[Move]  # dry run only


def migrate_town(
    town: Town,
    settings: DoltSettings,
    *,
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
) -> MigrationReport:
    """Carry out the plan; with nothing to move, succeed whether the server runs or not.

    Moving refuses while the server runs; a dry run only reads, so it is allowed then.
    """
    with town_lock(town, wait=settings.lock_wait):
        plan = plan_migration(town)
        report = MigrationReport([], list(plan.skipped), [])
        for skip in plan.skipped:
            echo(f"skip {skip.source}: {skip.why}")
        if not plan.moves:
            return report
        running = find_running(town, settings)[0]
        if running is not None and not dry_run:
            raise MigrationError(
                f"this town's Dolt server is running (pid {running.pid}); nothing was changed; {Remedy.STOP_FIRST}"
            )
        if running is not None:
            echo(f"note: the server is running (pid {running.pid}); stop it before the real migration")
        dolt = None if dry_run else find_dolt(settings.binary)
        for move in plan.moves:
            if dry_run:
                echo(f"would move {move.source} -> {move.target} ({move.size:,} bytes)")
                report.planned.append(move)
                continue
            echo(f"move {move.source} -> {move.target} ({move.size:,} bytes)")
            assert dolt is not None
            _move(town, move, dolt, echo)
            report.moved.append(move)
        if report.moved:
            for note in beads.sync_notes(town, settings, settings.port, scan_data_dir(town).names):
                echo(f"note: {note}")
        return report
