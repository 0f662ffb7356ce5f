"""Moving every rig's beads data into <town>/.dolt-data/<rig>, where the town's server serves it.

The sources, as Gas Town's `gt` v1.0 and beads' `bd` 1.0 leave them (ops/beads/beadslayout.py): the one
Dolt database in a rig's beads dir, `embeddeddolt/<db>` (bd 1.0's default), `dolt/<db>` (bd's own
server) or `dolt/beads` (the old layout), the beads dir reached through `.beads/redirect` as gt
follows it.  The rig is named as gt names it: the town's own beads are `hq`, a top-level folder's
beads are the rig of that folder's name.  A beads dir with more than one database is not guessed
at: it is reported, as gt reports it.

One function plans (the dry run prints that plan, the real run carries it out).  A source is taken
only when no component of its path below the town is a symlink and it is ours; nothing is moved
while the town's server runs, while bd holds its embedded database (bd's own flock on
`embeddeddolt/.lock`, held here for the move), or while a Dolt server of bd's serves it.

Each database is verified: Dolt opens it and counts the rows of every table before the move and
after it, and the counts must match.  It is moved whole with one rename into place (never
replacing anything there); across file systems it is copied into the staging area
(ops/files/staging.py), checked file by file, opened and counted there, renamed into place, and only
then is the source removed.  A run killed between that rename and the removal is finished by the
next run: daemon/dolt-migrate.json names the source, the target and the digest of what was copied,
and the source is removed only while it still has that digest.  Finally every rig's beads
metadata is pointed at the server (ops/beads/beads.py, which refuses a beads dir that still holds data).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from ..beads import beads, beadslayout
from ..build.binary import find_dolt
from ..errors import GastownError, MigrationError, Remedy
from ..files import safefs, staging
from ..files.datadir import clashing, scan_data_dir
from ..files.locking import town_lock
from ..files.staging import rename_noreplace
from ..server.discovery import find_running
from ..server.rogues import find_rogues
from ..settings import DoltSettings
from ..town import Town
from .dbfiles import bd_lock, counting_env, listing, table_counts, tree_size

Echo = Callable[[str], None]
HQ_RIG = beadslayout.HQ


class Move(NamedTuple):
    source: Path
    target: Path
    rig: str
    size: int
    layout: str = "dolt"  # "embeddeddolt" or "dolt": where in the beads dir it was
    finish: bool = False  # an interrupted copy: the target is a byte-identical copy; remove the source


class Skip(NamedTuple):
    source: Path
    why: str


class MigrationPlan(NamedTuple):
    moves: list[Move]
    skipped: list[Skip]


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


def _refusal(town: Town, source: Path) -> str | None:
    """Why `source` must not be moved, or None.

    Every component below the town, the database's own .dolt included, must be a real folder, and
    the database must be ours: moving another user's database into the town would hand its links
    and contents to a server run by us.
    """
    parts = source.relative_to(town.root).parts
    linked = _linked_component(town.root, (*parts, ".dolt", "noms"))
    if linked is not None:
        return f"{linked} is a symlink; a migration never follows a link out of the town"
    for where in (source, source / ".dolt"):
        owner = os.lstat(where).st_uid
        if owner != os.geteuid():
            return f"{where} belongs to uid {owner}, not to you: another user's database is not moved in"
    return None


def tree_digest(root: Path) -> str:
    """SHA-256 over every file's relative path and bytes: what a copy was made from."""
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(folder, name)
            digest.update(os.path.relpath(full, root).encode() + b"\0")
            if os.path.islink(full):
                digest.update(b"link:" + os.readlink(full).encode())
                continue
            with open(full, "rb") as data:
                for chunk in iter(lambda: data.read(1 << 20), b""):
                    digest.update(chunk)
            digest.update(b"\0")
    return digest.hexdigest()


# A copy renamed into place before its source was removed: the next run must finish it, and only
# it.  The journal names the source, the target, and the digest of what was copied; it is written
# just before the copy is renamed into place and removed once the source is gone.
JOURNAL = "dolt-migrate.json"


def _journal(town: Town) -> dict[str, str] | None:
    try:
        raw = safefs.read_bytes(town.daemon_dir / JOURNAL, 64 * 1024, root=town.root)
        data = json.loads(raw.decode("utf-8")) if raw is not None else None
    except (GastownError, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("source", "target", "digest")):
        return None
    return data


def _interrupted_copy(town: Town, source: Path, target: Path) -> bool:
    """`target` is the verified copy of `source`, renamed into place by a run killed before it
    removed the source, and the source has not changed since."""
    entry = _journal(town)
    return (
        entry is not None
        and entry["source"] == str(source)
        and entry["target"] == str(target)
        and tree_digest(source) == entry["digest"]
    )


def _candidate(town: Town, rig: str, found: list[beadslayout.RigBeads], existing: list[str]) -> Move | Skip | None:
    databases = [db for b in found for db in b.databases]
    problems = [b for b in found if b.problem]
    if problems:
        return Skip(problems[0].dir, problems[0].problem or "")
    if not databases:
        return None
    if len(databases) > 1:
        named = ", ".join(str(db.path) for db in databases)
        return Skip(
            found[0].dir,
            f"rig {rig} has {len(databases)} beads databases ({named}); gt-dolt does not guess which one bd uses: "
            "move the others out of the beads dir, then migrate again",
        )
    source, layout = databases[0].path, databases[0].layout
    target = town.rig_dir(rig)
    refused = _refusal(town, source)
    if refused is not None:
        return Skip(source, refused)
    if not beadslayout.valid_rig(rig):
        return Skip(source, f"folder {rig!r} is not a valid rig name: rename the folder, then migrate again")
    if os.path.lexists(target):
        if os.path.isdir(target / ".dolt") and _interrupted_copy(town, source, target):
            return Move(source, target, rig, tree_size(source), layout, finish=True)
        return Skip(
            source,
            f"{target} already exists (source left untouched); the rig's issues are in two places: compare "
            f"them, keep one, move the other out of {town.root}, then migrate again",
        )
    other = clashing(rig, existing)
    if other is not None:
        return Skip(source, f"rig {rig} clashes with the existing rig {other} (names ignore case)")
    return Move(source, target, rig, tree_size(source), layout)


def plan_migration(town: Town, only: frozenset[str] | None = None) -> MigrationPlan:
    """Every beads database outside the server (of the rigs `only` names, when given) and what
    would happen to it: the one plan."""
    plan = MigrationPlan([], [])
    existing = scan_data_dir(town).names
    taken: list[str] = []
    for rig in beadslayout.rig_folders(town):
        if only is not None and rig not in only:
            continue
        found = _candidate(town, rig, beadslayout.rig_beads(town, rig), existing)
        if isinstance(found, Skip):
            plan.skipped.append(found)
        elif isinstance(found, Move):
            other = clashing(found.rig, taken) if not found.finish else None
            if other is not None:
                why = f"rig {found.rig} clashes with rig {other}, also being migrated (names ignore case)"
                plan.skipped.append(Skip(found.source, f"{why}: rename one folder"))
                continue
            taken.append(found.rig)
            plan.moves.append(found)
    return plan


# --- verification: Dolt opens it and counts every table ------------------------------------------


def _differences(before: dict[str, int], after: dict[str, int]) -> str:
    names = sorted(set(before) | set(after))
    changed = [f"{n}: {before.get(n)} -> {after.get(n)}" for n in names if before.get(n) != after.get(n)]
    return "; ".join(changed[:5])


# --- moving ------------------------------------------------------------------------------------


def _copy_then_swap(
    town: Town, move: Move, source: Path, dolt: Path, env: dict[str, str], before: dict[str, int], echo: Echo
) -> dict[str, int]:
    """The cross-filesystem path: copy into the staging area, verify, rename into place; the source
    is removed by the caller, only after that rename.  Returns the listing the source had."""
    with staging.staged(town.data_dir, move.rig, root=town.root) as stage:
        echo(f"  {move.source} is on another filesystem: copying to {stage.path}")
        try:
            shutil.copytree(source, stage.path, symlinks=True)
        except (OSError, shutil.Error) as exc:
            raise MigrationError(
                f"copying {move.source} to {move.target.parent} failed ({str(exc)[:300]}); the source is "
                "untouched and the partial copy was removed: free space or fix permissions, then migrate again"
            ) from None
        want, got = listing(source), listing(stage.path)
        if want != got:
            differ = sorted(set(want.items()) ^ set(got.items()))[:5]
            raise MigrationError(f"the copy of {move.source} differs from it ({differ}); source left as it was")
        after = table_counts(dolt, stage.path, env)
        if after != before:
            raise MigrationError(
                f"the copy of {move.source} does not hold the same rows ({_differences(before, after)}); "
                "source left as it was"
            )
        entry = {"source": str(move.source), "target": str(move.target), "digest": tree_digest(source)}
        safefs.write_atomic(town.daemon_dir / JOURNAL, json.dumps(entry).encode(), mode=0o600, root=town.root)
        try:
            stage.commit()
        except FileExistsError:
            raise MigrationError(f"{move.target} appeared meanwhile; source left as it was") from None
    return want


def _rename_into_place(town: Town, move: Move, src_fd: int, data_fd: int) -> None:
    try:
        rename_noreplace(src_fd, move.source.name, data_fd, move.rig)
    except FileExistsError:
        raise MigrationError(f"{move.target} appeared meanwhile; {move.source} was left as it was") from None
    os.fsync(data_fd)


def _move(town: Town, move: Move, dolt: Path, env: dict[str, str], echo: Echo) -> None:
    """Count, move whole (rename, or copy-verify-swap across file systems), count again."""
    with (
        bd_lock(town, move),
        safefs.open_dir(move.source.parent, root=town.root) as src_fd,
        safefs.open_dir(town.data_dir, root=town.root, create=True) as data_fd,
    ):
        st = os.stat(move.source.name, dir_fd=src_fd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            raise MigrationError(f"{move.source} is no longer a folder; nothing was moved")
        pinned = Path(f"/proc/self/fd/{src_fd}") / move.source.name  # the walked parents, pinned
        # Dolt runs in another process: it gets the folder the descriptor holds, as it is named now.
        before = table_counts(dolt, Path(os.readlink(f"/proc/self/fd/{src_fd}")) / move.source.name, env)
        try:
            _rename_into_place(town, move, src_fd, data_fd)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise safefs.failure(exc, move.source, f"move to {move.target}:") from None
            want = _copy_then_swap(town, move, pinned, dolt, env, before, echo)
            if listing(pinned) != want:  # the source must still be what was copied before it goes
                raise MigrationError(
                    f"{move.source} changed while it was copied; the copy is at {move.target} and the source "
                    "was kept: compare them, then remove the one you do not want"
                ) from None
            echo(f"  copy verified and in place; removing the source {move.source}")
            staging.discard(src_fd, move.source.name)
            safefs.remove(town.daemon_dir / JOURNAL, root=town.root)
        else:
            try:
                after = table_counts(dolt, move.target, env)
                if after != before:
                    raise MigrationError(
                        f"{move.target} does not read back the rows of {move.source} "
                        f"({_differences(before, after)}); it was moved back, nothing changed"
                    )
            except BaseException:
                rename_noreplace(data_fd, move.rig, src_fd, move.source.name)
                raise
        echo(f"  verified: {len(before)} tables, {sum(before.values()):,} rows, the same before and after")
    _remove_empty_parents(town, move.source)


def _finish(town: Town, move: Move, echo: Echo) -> None:
    """A run killed after its copy was renamed into place left the source: remove it now."""
    echo(f"  {move.target} is the verified copy of {move.source} (an interrupted migration): removing the source")
    with bd_lock(town, move), safefs.open_dir(move.source.parent, root=town.root) as src_fd:
        staging.discard(src_fd, move.source.name)
    safefs.remove(town.daemon_dir / JOURNAL, root=town.root)
    _remove_empty_parents(town, move.source)


def _remove_empty_parents(town: Town, source: Path) -> None:
    """Remove the dolt/ (and an emptied .beads) left behind; rmdir refuses anything not empty."""
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
    notes: list[str]  # what pointing the beads at the server changed or refused


def _refuse_busy(town: Town, moves: list[Move]) -> None:
    """Nothing moves while a Dolt server (bd's own) serves one of the sources."""
    for rogue in find_rogues(town):
        for move in moves:
            served = os.path.realpath(rogue.data_dir)
            source = os.path.realpath(move.source)
            if served == source or served == os.path.dirname(source) or served.startswith(source + os.sep):
                raise MigrationError(
                    f"a Dolt server serves {move.source}: {rogue.describe()}; nothing was moved: stop it "
                    f"(gt-dolt stop-rogue --pid {rogue.pid}), then migrate again"
                )


def migrate_town(
    town: Town,
    settings: DoltSettings,
    *,
    dry_run: bool = False,
    echo: Echo = print,
    only: frozenset[str] | None = None,
) -> MigrationReport:
    """Carry out the plan; with nothing to move, succeed whether the server runs or not.

    Moving refuses while the server runs; a dry run only reads, so it is allowed then.
    """
    with town_lock(town, wait=settings.lock_wait):
        if not dry_run:
            for folder in [town.data_dir, *beadslayout.layout_folders(town)]:
                for leftover in staging.sweep(folder, root=town.root):
                    echo(f"removed {leftover} (left by an interrupted command; never the only copy of anything)")
        plan = plan_migration(town, only)
        if not dry_run and not any(move.finish for move in plan.moves):
            safefs.remove(town.daemon_dir / JOURNAL, root=town.root)  # its copy was never put in place
        report = MigrationReport([], list(plan.skipped), [], [])
        for skip in plan.skipped:
            echo(f"skip {skip.source}: {skip.why}")
        running = find_running(town, settings)[0] if plan.moves or not dry_run else None
        if plan.moves:
            if running is not None and not dry_run:
                raise MigrationError(
                    f"this town's Dolt server is running (pid {running.pid}); nothing was changed; {Remedy.STOP_FIRST}"
                )
            if running is not None:
                echo(f"note: the server is running (pid {running.pid}); stop it before the real migration")
            if not dry_run:
                _refuse_busy(town, plan.moves)
        dolt = find_dolt(settings.binary) if plan.moves and not dry_run else None
        env = counting_env(town, dolt) if dolt is not None and not all(m.finish for m in plan.moves) else {}
        fresh = [move for move in plan.moves if not move.finish]
        if fresh and not dry_run and dolt is not None:
            from .migrationbackup import keep

            keep(town, fresh, dolt, env, echo)
        for move in plan.moves:
            what = f"{move.source} -> {move.target} ({move.size:,} bytes, {move.layout})"
            if dry_run:
                echo(f"would {'finish' if move.finish else 'move'} {what}")
                report.planned.append(move)
                continue
            if move.finish:
                _finish(town, move, echo)
            else:
                echo(f"move {what}")
                assert dolt is not None
                _move(town, move, dolt, env, echo)
            report.moved.append(move)
        if not dry_run:
            port = running.port if running is not None else settings.port
            report.notes.extend(beads.sync_notes(town, settings, port, scan_data_dir(town).names))
            for note in report.notes:
                echo(f"note: {note}")
        return report


def unmigrated(town: Town) -> list[str]:
    """One line per beads dir that still holds data outside the server (or cannot be read)."""
    lines = []
    for found in beadslayout.outside_the_server(town):
        if found.problem:
            lines.append(f"rig {found.rig}: {found.problem}")
        else:
            held = ", ".join(str(db.path) for db in found.databases)
            lines.append(f"rig {found.rig}: {held} holds issues the server does not serve")
    return lines
