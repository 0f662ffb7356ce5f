"""The truth about the town's server: from the processes and the server itself; files only say
where to look.

Exit codes (LSB, as `pg_ctl status`): 0 running, 1 stopped but a pid file was left, 3 stopped,
4 not a town (raised before we get here), 6 running but it refuses our credentials.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

from ..errors import AccessDenied, ExitCode, GastownError, Remedy, SqlFailure
from ..files import backuprecords
from ..files.datadir import scan_data_dir, some_of
from ..files.runfiles import iso_time
from ..host import procs
from ..settings import DoltSettings
from ..sql import sqlclient
from ..town import Town
from .discovery import Via, found_notes, observe
from .health import measure_on

RUNNING, STALE_PID_FILE, STOPPED, DENIED = (
    ExitCode.OK,
    ExitCode.STALE_PID_FILE,
    ExitCode.NOT_RUNNING,
    AccessDenied.exit_code,
)
SqlState = Literal["answering", "not answering", "refused credentials"]


class Status(NamedTuple):
    running: bool
    exit_code: int
    pid: int | None
    host: str
    port: int
    data_dir: str
    databases: list[str]
    databases_source: Literal["served", "on disk"]
    sql: SqlState | None  # None when no server runs
    started_at: str | None
    uptime_seconds: float | None
    connection: str
    pid_file_left: bool
    found_via: Via | None
    remote: bool = False
    health: dict[str, Any] | None = None
    cluster: dict[str, Any] | None = None
    notes: Sequence[str] = ()
    wedge: dict[str, Any] | None = None  # ops/server/wedge.py: kind ("ok", "stopped", "full", "read-only", ...), said

    @property
    def answering(self) -> bool:
        return self.sql == "answering"

    def to_dict(self) -> dict[str, Any]:
        return {**self._asdict(), "answering": self.answering}


def _on_disk(town: Town, notes: list[str]) -> list[str]:
    try:
        return scan_data_dir(town).names
    except GastownError as exc:
        notes.append(str(exc))
        return []


def backup_notes(town: Town, settings: DoltSettings, rigs: list[str]) -> list[str]:
    try:
        stale = backuprecords.stale(town, settings, rigs)
    except GastownError:
        return []
    if not stale:
        return []
    return [
        f"no backup in the last {settings.backup_max_age_hours:g}h of: {some_of(stale)}; run gt-dolt backup "
        "(dolt.backup_max_age_hours: 0 says no backups are expected)"
    ]


def _reading(town: Town, target: DoltSettings) -> tuple[list[str], dict[str, Any] | None, GastownError | None]:
    """The served databases and the health, over one connection: a health query that fails costs
    the health only."""
    import pymysql

    def work(conn: Any) -> tuple[list[str], dict[str, Any] | None, GastownError | None]:
        served = sqlclient.show_databases(conn)
        try:
            return served, measure_on(conn, town, target, served, sizes=False), None
        except pymysql.err.MySQLError as exc:
            return served, None, sqlclient.failure(target, exc, "measure the server's health")

    return sqlclient.call(target, work, what="list the databases")


def _wedge(town: Town, settings: DoltSettings, running: Any, sql: SqlState, notes: list[str]) -> dict[str, Any] | None:
    """Whether the live server is wedged (ops/server/wedge.py), said in a note with what to run."""
    from .wedge import REMEDY, diagnose, silent_kind

    if sql == "refused credentials":
        return None
    found = diagnose(town, settings, running) if sql == "answering" else silent_kind(town, settings, running)
    if not found.ok:
        notes.append(f"wedged ({found.kind}): {found.said}; {REMEDY}")
    return found.to_dict()


def status(town: Town, settings: DoltSettings) -> Status:
    seen = observe(town, settings)
    pid_file, state, running, notes = seen.pid_file, seen.state, seen.running, seen.problems
    scanned: list[list[str]] = []

    def on_disk() -> list[str]:
        """The rigs on disk, scanned at most once (a scan of 1000 rigs costs ~15 ms)."""
        if not scanned:
            scanned.append(_on_disk(town, notes))
        return scanned[0]

    if running is None:
        if pid_file.exists:
            if pid_file.pid:
                notes.append(f"{town.pid_file} names pid {pid_file.pid}, which is not this town's server")
            if not pid_file.unsafe:
                notes.append("a stale pid file was left; gt-dolt start (or stop) cleans it up")
        holders = procs.port_holders(settings.host, settings.port)
        if holders:
            notes.append(
                f"port {settings.port} is held by {', '.join(h.describe() for h in holders)}, "
                "which is not this town's server"
            )
        notes.extend(backup_notes(town, settings, on_disk()))
        return Status(
            running=False,
            exit_code=STALE_PID_FILE if pid_file.exists else STOPPED,
            pid=None,
            host=settings.host,
            port=settings.port,
            data_dir=str(town.data_dir),
            databases=on_disk(),
            databases_source="on disk",
            sql=None,
            started_at=None,
            uptime_seconds=None,
            connection=settings.connection_string,
            pid_file_left=pid_file.exists,
            found_via=None,
            notes=notes,
        )
    target = settings.with_overrides(port=running.port)
    code = RUNNING
    sql: SqlState
    served: list[str] | None = None
    health = None
    try:
        served, health, unmeasured = _reading(town, target)
        sql = "answering"
        if unmeasured is not None:
            notes.append(f"health not measured: {unmeasured}")
    except AccessDenied as exc:
        sql, code = "refused credentials", DENIED
        notes.append(str(exc))
    except SqlFailure:
        sql = "not answering"
        notes.append(f"the process is alive but does not answer SQL on {target.address}; {Remedy.DOCTOR}")
    wedged = _wedge(town, settings, running, sql, notes)
    notes.extend(backup_notes(town, settings, served if served is not None else on_disk()))
    cluster = None
    if sql == "answering" and settings.cluster:
        from ..cluster.cluster import replication_state
        from ..cluster.fencing import annotate

        try:
            cluster = annotate(town, replication_state(target))  # role, epoch, writable, fenced
        except GastownError as exc:
            notes.append(f"cluster state not read: {exc}")
    created = running.create_time() or time.time()
    started_at = state.started_at if state.claims(running.pid) and state.started_at else iso_time(created)
    notes.extend(found_notes(running, town, settings))
    return Status(
        running=True,
        exit_code=code,
        pid=running.pid,
        host=settings.host,
        port=running.port,
        data_dir=str(town.data_dir),
        databases=served if served is not None else on_disk(),
        databases_source="served" if served is not None else "on disk",
        sql=sql,
        started_at=started_at,
        uptime_seconds=round(time.time() - created, 1),
        connection=target.connection_string,
        pid_file_left=pid_file.exists,
        found_via=running.found_via,
        health=health,
        cluster=cluster,
        notes=notes,
        wedge=wedged,
    )
