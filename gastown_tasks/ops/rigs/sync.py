"""gt-dolt sync and pull: every rig's branch pushed to (pulled from) each of its Dolt remotes.

Through the running server (`CALL DOLT_PUSH` / `DOLT_PULL`, agents keep working), else through
Dolt's embedded engine in the rig's folder (ops/rigs/remotes.py), all under the town lock.  One result
per rig and remote: pushed / pulled / up to date / no remote / skipped / failed with Dolt's
reason; one rig's failure never stops the others (a server that stops answering ends the run, each
rig left saying so).  Working changes are committed before a push (as upstream's `gt dolt sync`
does, but never an empty commit, and the result says so).  A push the remote refuses (it has
commits this rig lacks) is reported with what to do, never forced; `--force` first fetches and
names the commits it overwrites.  A rig with a `.no-sync` file is skipped unless named (upstream's
marker).  A clustered town's standby remotes are Dolt's replication, never synced by hand.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Literal, NamedTuple

from ..errors import FileFailure, RigError, SqlFailure, UnsafeFile
from ..files import privilege
from ..files.datadir import scan_data_dir
from ..files.locking import town_lock
from ..server.discovery import find_running
from ..settings import DoltSettings
from ..town import Town
from .remotes import Access, DoltSaid, Remote, named_rig, refuse_silent, remotes_of

Echo = Callable[[str], None]
Direction = Literal["push", "pull"]
NO_SYNC = ".no-sync"  # upstream's marker: a local-only rig
AUTHOR = "gt-dolt sync <gt-dolt@localhost>"
UP_TO_DATE = ("everything up-to-date", "is ahead of", "already up to date")
SHOWN_COMMITS = 5  # commits a forced push names before "and N more"


class Outcome(NamedTuple):
    rig: str
    remote: str  # "" when the rig has none
    url: str  # masked
    result: str  # pushed, pulled, up to date, no remote, skipped, failed, would push, would pull
    detail: str = ""

    @property
    def failed(self) -> bool:
        return self.result == "failed"

    def to_json(self) -> dict[str, str]:
        return self._asdict()


class SyncReport(NamedTuple):
    direction: Direction
    through: str
    dry_run: bool
    outcomes: list[Outcome]

    @property
    def failed(self) -> int:
        return sum(o.failed for o in self.outcomes)


def _quiet(_: str) -> None:
    pass


def run(
    town: Town,
    settings: DoltSettings,
    direction: Direction,
    rig: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    echo: Echo = _quiet,
) -> SyncReport:
    """Push (or pull) every rig, or `rig`, with each of its remotes."""
    if rig is not None:
        rigs, refused = [named_rig(town, rig)], []
    else:
        found = scan_data_dir(town)
        rigs = found.names
        refused = [Outcome(path.name, "", "", "failed", why) for path, why in found.foreign]
        refused += [
            Outcome(path.name, "", "", "failed", f"{path} is a symlink: Dolt never serves a linked database")
            for path in found.linked
        ]
    with town_lock(town, wait=settings.lock_wait):
        privilege.check_town(town)  # the server or the Dolt CLI writes into the rigs by path
        running = find_running(town, settings)[0]
        access = Access(town, settings, running.port if running is not None else None)
        standby = _standby_remotes(settings)
        outcomes = list(refused)
        for i, name in enumerate(rigs):
            if rig is None and os.path.lexists(town.rig_dir(name) / NO_SYNC):
                outcomes.append(Outcome(name, "", "", "skipped", f"{NO_SYNC} marks it local-only (name it to sync)"))
                continue
            try:
                outcomes += _rig(access, name, direction, dry_run, force, standby, echo)
            except SqlFailure as exc:
                outcomes.append(Outcome(name, "", "", "failed", str(exc)))
                if refuse_silent(exc):  # the server, not this rig: the others would fail the same way
                    left = rigs[i + 1 :]
                    outcomes += [Outcome(o, "", "", "failed", "not tried: the server stopped answering") for o in left]
                    break
            except (RigError, UnsafeFile, FileFailure) as exc:  # DoltSaid included
                outcomes.append(Outcome(name, "", "", "failed", str(exc)))
    return SyncReport(direction, access.through, dry_run, outcomes)


def _standby_remotes(settings: DoltSettings) -> set[str]:
    from ..cluster.cluster import cluster_of
    from ..errors import GastownError

    try:
        config = cluster_of(settings)
    except GastownError:
        return set()
    return {peer.name for peer in config.peers} if config is not None else set()


def _rig(
    access: Access, rig: str, direction: Direction, dry_run: bool, force: bool, standby: set[str], echo: Echo
) -> list[Outcome]:
    remotes = [r for r in remotes_of(access, rig) if r.name not in standby]
    if not remotes:
        return [Outcome(rig, "", "", "no remote", f"add one: gt-dolt remote add --rig {rig} origin URL")]
    done = []
    for remote in remotes:
        verb = "pushing" if direction == "push" else "pulling"
        echo(f"{verb} rig {rig} {'to' if direction == 'push' else 'from'} {remote.name} ({remote.shown}) ...")
        try:
            if direction == "push":
                done.append(_push(access, remote, dry_run, force))
            else:
                done.append(_pull(access, remote, dry_run))
        except DoltSaid as exc:
            done.append(Outcome(rig, remote.name, remote.shown, "failed", _advice(str(exc), remote, direction)))
    return done


def _advice(said: str, remote: Remote, direction: Direction) -> str:
    if direction == "push" and ("non-fast-forward" in said or "rejected" in said):
        return (
            f"{said} -- {remote.name} has commits rig {remote.rig} lacks: pull them first "
            f"(gt-dolt pull --rig {remote.rig}), or overwrite them with gt-dolt sync --rig {remote.rig} --force"
        )
    if direction == "pull" and "conflict" in said.lower():
        return (
            f"{said} -- rig {remote.rig} is unchanged; to merge by hand: gt-dolt sql --rig {remote.rig}, then "
            f"SET autocommit = 0; CALL DOLT_PULL('{remote.name}'); resolve the rows of dolt_conflicts; "
            "CALL DOLT_COMMIT('-am', 'merged')"
        )
    return said


def _changed_tables(access: Access, rig: str) -> int:
    rows = access.rows(rig, "SELECT COUNT(*) AS n FROM dolt_status")
    return int(rows[0]["n"]) if rows else 0


def _push(access: Access, remote: Remote, dry_run: bool, force: bool) -> Outcome:
    rig, urls = remote.rig, [remote.url]
    changed = _changed_tables(access, rig)
    first = f"committed {changed} changed table(s) first; " if changed else ""
    if dry_run:
        would = f"would commit {changed} changed table(s) first; " if changed else ""
        how = " with --force (fetches first, then names what it would overwrite)" if force else ""
        return Outcome(rig, remote.name, remote.shown, "would push", f"{would}branch {remote.branch}{how}")
    if changed:
        access.rows(rig, "CALL DOLT_COMMIT('-A', '-m', %s, '--author', %s)", ("gt-dolt sync: working changes", AUTHOR))
    overwritten = ""
    if force:
        overwritten = _overwritten(access, remote)
    args = ("--force", remote.name, remote.branch) if force else (remote.name, remote.branch)
    started = time.monotonic()
    rows = access.rows(rig, f"CALL DOLT_PUSH({', '.join(['%s'] * len(args))})", args, urls=urls)
    said = str(rows[0].get("message") or "") if rows else ""
    seconds = f"{time.monotonic() - started:.2f}s"
    if any(words in said.lower() for words in UP_TO_DATE):
        return Outcome(rig, remote.name, remote.shown, "up to date", f"{first}branch {remote.branch}".strip())
    return Outcome(rig, remote.name, remote.shown, "pushed", f"{first}branch {remote.branch} in {seconds}{overwritten}")


def _overwritten(access: Access, remote: Remote) -> str:
    """What a forced push discards: the remote branch's commits this rig lacks (after a fetch)."""
    try:
        access.rows(remote.rig, "CALL DOLT_FETCH(%s)", (remote.name,), urls=[remote.url])
        rows = access.rows(
            remote.rig,
            "SELECT commit_hash, message FROM dolt_log(%s)",
            (f"{remote.branch}..remotes/{remote.name}/{remote.branch}",),
        )
    except DoltSaid:
        return "; overwrote nothing (the remote had no such branch)"
    if not rows:
        return "; overwrote nothing (the remote had no commits this rig lacks)"
    named = ", ".join(f"{str(r['commit_hash'])[:8]} {str(r['message'])[:60]!r}" for r in rows[:SHOWN_COMMITS])
    more = f" and {len(rows) - SHOWN_COMMITS} more" if len(rows) > SHOWN_COMMITS else ""
    return f"; OVERWROTE {len(rows)} commit(s) on {remote.name} that this rig lacked: {named}{more}"


def _pull(access: Access, remote: Remote, dry_run: bool) -> Outcome:
    rig = remote.rig
    if dry_run:
        return Outcome(rig, remote.name, remote.shown, "would pull", f"branch {remote.branch}")
    started = time.monotonic()
    rows = access.rows(rig, "CALL DOLT_PULL(%s, %s)", (remote.name, remote.branch), urls=[remote.url])
    row = rows[0] if rows else {}
    said = str(row.get("message") or "")
    if int(row.get("conflicts") or 0):
        return Outcome(rig, remote.name, remote.shown, "failed", f"{said}: {row['conflicts']} conflict(s)".strip(": "))
    if any(words in said.lower() for words in UP_TO_DATE):
        return Outcome(rig, remote.name, remote.shown, "up to date", f"branch {remote.branch}")
    how = "fast-forward" if int(row.get("fast_forward") or 0) else (said or "merged")
    return Outcome(
        rig, remote.name, remote.shown, "pulled", f"branch {remote.branch} ({how}) in {time.monotonic() - started:.2f}s"
    )
