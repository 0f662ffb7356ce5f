"""`dolt.doctor`: what is wrong with a town's Dolt setup, and the fixes that are always safe.

The checks only read (files, processes, the port, SQL queries), so doctor can run at any time,
even beside Gas Town's own `gt`.  `--fix` touches only our own run files in daemon/ (a stale pid
file, a state file that is unreadable or wrong), under the town lock, and never through a planted
link; it never starts, stops or signals a process and never touches a database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from ..cluster import cluster, fencing
from ..errors import GastownError
from ..files import backuprecords, safefs
from ..files.datadir import scan_data_dir, some_of
from ..files.locking import town_lock
from ..files.runfiles import STATE_FILE_LIMIT, State, iso_time, remove_run_file, write_state
from ..server import health
from ..server.discovery import Observed, mark_stopped, observe, record_running
from ..server.wedge import REMEDY, SILENT, diagnose
from ..settings import DoltSettings
from ..sql import sqlclient
from ..town import Town
from .beads import beads_checks, fix_beads
from .checks import Check, Fix, Level, local_checks


class Report(NamedTuple):
    checks: list[Check]
    fixes: list[Fix]

    @property
    def exit_code(self) -> int:
        """Non-zero when any check fails; warnings alone do not fail doctor."""
        return 1 if any(check.level == "fail" for check in self.checks) else 0


def run_checks(town: Town, settings: DoltSettings) -> list[Check]:
    seen = observe(town, settings, every_server=True)
    return (
        local_checks(town, settings, seen)
        + beads_checks(town, settings, seen)
        + _serving_and_health(town, settings, seen)
        + [backup_check(town, settings)]
        + cluster_checks(town, settings, seen)
    )


REPAIR_BROKEN = (
    "check dolt.cluster on every server (exactly one bootstrapped role: primary; no standby entry that is the "
    "server itself), then run gt-dolt failover on the server that should be the primary (past a broken peer "
    "it needs --force): the others follow it as standbys"
)
PEER_LEVELS: dict[str, Level] = {
    "standby": "ok",
    "primary": "ok",
    "silent": "warn",
    "unreadable": "warn",
    "broken": "fail",
    "self": "fail",
    "denied": "fail",
    "foreign": "fail",
}
PEER_FIXES = {
    "silent": "start it on its host (writes are not replicated meanwhile)",
    "unreadable": "gt-dolt doctor on its host (a frozen server: gt-dolt recover there)",
    "broken": REPAIR_BROKEN,
    "self": "fix dolt.cluster.standbys",
    "denied": "give both servers the same dolt.password",
}


def cluster_checks(town: Town, settings: DoltSettings, seen: Observed) -> list[Check]:
    """This server's role (broken, fenced), each peer, exactly one primary, lag under 5 s, every rig
    on every standby."""
    config = cluster.cluster_of(settings)
    if config is None:
        return []
    if seen.running is None:
        return [Check("cluster", "ok", "no server running to ask")]
    target = settings.with_overrides(port=seen.running.port)
    try:
        mine = fencing.annotate(town, cluster.replication_state(target))
        ours = sqlclient.call(target, sqlclient.show_databases, what="list the databases")
    except GastownError as exc:
        return [Check("cluster", "warn", f"cluster state not read: {exc}", "gt-dolt restart")]
    views = cluster.survey(settings, config, mine.get("server_uuid"))
    checks: list[Check] = []
    for view in views:
        said = f"{view.peer.where} {view.said}" if view.kind in ("silent", "unreadable") else view.said
        missing = []
        if view.kind == "standby" and mine["role"] == "primary":
            missing = sqlclient.missing(ours, cluster.peer_databases(settings, view.peer))
        if missing:
            checks.append(
                Check(
                    f"cluster {view.peer.name}",
                    "warn",
                    f"{said}; does not have {', '.join(missing)} yet",
                    "wait for replication, then gt-dolt cluster-status",
                )
            )
        else:
            checks.append(Check(f"cluster {view.peer.name}", PEER_LEVELS[view.kind], said, PEER_FIXES.get(view.kind)))
    checks.insert(0, own_check(town, mine, views))
    return checks


def own_check(town: Town, mine: dict[str, Any], views: list[cluster.PeerView]) -> Check:
    """This server's line: broken or fenced (with the repair), else exactly one primary and the lag."""
    if mine["role"] == cluster.BROKEN:
        return Check(
            "cluster",
            "fail",
            f"this server is in Dolt's detected_broken_config at epoch {mine['epoch']}: it saw two primaries at one "
            f"epoch (or a standby entry that was itself), refuses every write, and keeps that state in "
            f"{town.dolt_root} across restarts",
            REPAIR_BROKEN,
        )
    primaries = [("this server", mine["epoch"])] if mine["role"] == "primary" else []
    primaries += [(view.peer.name, view.epoch) for view in views if view.kind == "primary"]
    if mine.get("fenced") and not primaries:
        waiting = [view.peer.name for view in views if view.kind != "standby"]
        return Check(
            "cluster",
            "fail",
            f"this server is fenced: it was the primary at epoch {mine['epoch']} and takes writes only once every "
            f"peer has answered with no higher epoch; waiting for {', '.join(waiting) or 'nothing: run gt-dolt start'}",
            "start the peers, then gt-dolt start here (gt-dolt watch does it by itself); or take writes alone, "
            "discarding what they had not replicated: gt-dolt failover --force",
        )
    unknown = [view.peer.name for view in views if view.kind in ("silent", "unreadable")]
    if not primaries and unknown:
        return Check(
            "cluster",
            "fail",
            f"no primary answers: this server is {mine['role']} at epoch {mine['epoch']} and {', '.join(unknown)} "
            "cannot say its role (see below), so the cluster takes no writes",
            "bring the primary back on its host (gt-dolt start; if frozen, gt-dolt recover), or take over here: "
            "gt-dolt failover (it says what --force would lose), see docs/cluster.md",
        )
    if len(primaries) != 1:
        named = ", ".join(f"{who} (epoch {epoch})" for who, epoch in primaries) or "none"
        return Check(
            "cluster",
            "fail",
            f"{len(primaries)} primaries: {named}; exactly one must be",
            "gt-dolt demote on all but one (or gt-dolt failover on a standby), see docs/cluster.md",
        )
    worst = max((r["replication_lag_millis"] or 0 for r in mine["replication"]), default=0)
    if worst > cluster.LAG_WARN_MS:
        return Check(
            "cluster",
            "warn",
            f"{mine['role']} at epoch {mine['epoch']}; a standby is {worst} ms behind",
            "gt-dolt cluster-status (is the standby up?)",
        )
    return Check("cluster", "ok", f"{mine['role']} at epoch {mine['epoch']}; one primary")


def _serving_and_health(town: Town, settings: DoltSettings, seen: Observed) -> list[Check]:
    """A silent server's health is not measured: each measurement would wait out its deadline."""
    serving = serving_check(town, settings, seen)
    if serving.level == "fail":  # silent; a read-only one answers, and its health is measured
        return [serving, Check("health", "warn", "not measured: the server does not serve")]
    return [serving, health_check(town, settings, seen)]


def serving_check(town: Town, settings: DoltSettings, seen: Observed) -> Check:
    """A live server that answers nothing (stopped, full, silent) fails; one that takes no writes
    warns (it still serves reads, and behavior.read_only may be the town's own choice)."""
    if seen.running is None:
        return Check("serving", "ok", "no server running")
    found = diagnose(town, settings, seen.running)
    if found.kind == "refused credentials":
        return Check("serving", "warn", found.said)
    if not found.ok:
        level: Level = "fail" if found.kind in SILENT else "warn"
        return Check("serving", level, f"pid {seen.running.pid} is wedged ({found.kind}): {found.said}", REMEDY)
    return Check("serving", "ok", f"pid {seen.running.pid} takes logins and answers")


def health_check(town: Town, settings: DoltSettings, seen: Observed) -> Check:
    """Gas Town's daemon thresholds: latency over 1 s, connections at 80 %, read-only, disk growth."""
    if seen.running is None:
        return Check("health", "ok", "no server running to measure")
    try:
        measured = health.measure(town, settings, seen.running.port)
    except GastownError as exc:
        return Check("health", "warn", f"not measured: {exc}", "gt-dolt restart")
    problems = health.warnings(measured, seen.state.disk_bytes if seen.state.claims(seen.running.pid) else None)
    if problems:
        return Check("health", "warn", "; ".join(what for what, _ in problems), "; ".join(fix for _, fix in problems))
    return Check("health", "ok", health.health_lines(measured)[0].split(":", 1)[1].strip())


def backup_check(town: Town, settings: DoltSettings) -> Check:
    if not settings.backup_max_age_hours:
        return Check("backups", "ok", "none expected (dolt.backup_max_age_hours is 0)")
    try:
        rigs = scan_data_dir(town).names
    except GastownError:
        return Check("backups", "ok", "see rigs")
    stale = backuprecords.stale(town, settings, rigs)
    if stale:
        return Check(
            "backups",
            "warn",
            f"no backup in the last {settings.backup_max_age_hours:g}h of: {some_of(stale)}",
            "gt-dolt backup (or set dolt.backup_max_age_hours: 0 if none is expected)",
        )
    if not rigs:
        return Check("backups", "ok", "no rig to back up")
    never = [rig for rig, age in backuprecords.ages(town, rigs).items() if age is None]
    if never:
        backed = len(rigs) - len(never)
        said = (
            f"{backed} of {len(rigs)} rig(s) backed up in the last {settings.backup_max_age_hours:g}h; "
            if backed
            else ""
        )
        return Check(
            "backups",
            "ok",
            f"{said}never backed up yet (not overdue: younger than {settings.backup_max_age_hours:g}h): "
            f"{some_of(never)}",
        )
    return Check("backups", "ok", f"every rig backed up in the last {settings.backup_max_age_hours:g}h")


def _keep_corrupt(town: Town) -> str | None:
    """A private copy of an unreadable state file (a plain file of ours only), for whoever asks why."""
    kept = town.state_file.with_name(town.state_file.name + ".corrupt")
    try:
        data = safefs.read_bytes(town.state_file, STATE_FILE_LIMIT, root=town.root)
        if data is None:
            return None
        safefs.write_atomic(kept, data, mode=0o600, root=town.root)
        return str(kept)
    except GastownError:
        return None


def apply_safe_fixes(town: Town, settings: DoltSettings) -> list[Fix]:
    """Only our own run files, under the town lock: never a process, never a database.

    Running server of this town: record it in the pid and state files.  None: remove a stale pid
    file and mark the state stopped; an unreadable state file is kept beside it as
    dolt-state.json.corrupt (0600) and replaced.  A planted file is never written through: its fix
    fails, saying why.
    """
    fixes: list[Fix] = []

    def attempt(what: str, action: Callable[[], object], target: object) -> None:
        try:
            action()
            fixes.append(Fix(what, True))
        except GastownError as exc:
            fixes.append(Fix(f"could not fix {target}: {exc}", False))

    with town_lock(town, wait=settings.lock_wait):
        seen = observe(town, settings)
        pid_file, state, running = seen.pid_file, seen.state, seen.running
        if running is not None:
            fixes.extend(fix_beads(town, settings, seen))
            if pid_file.pid != running.pid or state.problem is not None or not state.claims(running.pid):
                if state.problem:
                    _keep_corrupt(town)
                served = sqlclient.served_databases(settings.with_overrides(port=running.port))
                attempt(
                    f"recorded the running server (pid {running.pid}) in {town.pid_file} and {town.state_file}",
                    lambda: record_running(town, settings, running, served),
                    town.daemon_dir,
                )
            return fixes
        if pid_file.exists:
            why = pid_file.problem or f"it named pid {pid_file.pid}, which is not this town's server"
            attempt(
                f"removed the stale {town.pid_file} ({why})",
                lambda: remove_run_file(town, town.pid_file),
                town.pid_file,
            )
        if state.problem:
            kept = _keep_corrupt(town)
            attempt(
                f"replaced the unreadable {town.state_file}" + (f" (kept as {kept})" if kept else ""),
                lambda: write_state(town, State(running=False, extra={"repaired_at": iso_time()})),
                town.state_file,
            )
        elif state.running:
            attempt(f"marked {town.state_file} stopped", lambda: mark_stopped(town), town.state_file)
        fixes.extend(fix_beads(town, settings, seen))
    return fixes


def examine(town: Town, settings: DoltSettings, fix: bool = False) -> Report:
    """Run the checks; with `fix`, apply the safe fixes first and report the checks after them."""
    fixes = apply_safe_fixes(town, settings) if fix else []
    return Report(run_checks(town, settings), fixes)
