"""A wedged server: the process lives, but it does not serve.  Which kind, from what it does.

Each kind is read from what the server does, never from what files say:
- stopped: the process is stopped (SIGSTOP, a debugger); it cannot answer anything.
- no listener: the process lives, but its SQL port refuses connections.
- full: its client connections (established, or CLOSE_WAIT: closed by the client, not yet by
  Dolt) reach max_connections; Dolt then queues new logins (back_log) instead of refusing them,
  so a login waits and no error 1040 comes back.
- unanswering: it listens, but a login and `SELECT 1` do not complete within the deadline.
- read-only: it answers, but writes fail.  Server-wide (behavior.read_only: @@read_only), or one
  rig at a time: Dolt opens a database read-only, for good, when another process holds its
  journal lock (`.dolt/noms/LOCK`) at the moment the server loads it ("cannot update manifest:
  database is read only"; store/nbs/journal.go).  That is seen without writing to the rig: the
  server holds no lock on that rig's LOCK file (/proc/locks).  `status` and `watch` write nothing;
  `recover` (ops/server/recovery.py) proves the server takes writes with a write probe in the scratch
  database `__gastown_probe` (never a rig: `rigs.RESERVED`), made on its first use and kept (a
  dropped one would pile up in .dolt_dropped_databases).
"""

from __future__ import annotations

import os
import time
from typing import Any, Literal, NamedTuple

import psutil

from ..errors import GastownError
from ..files.datadir import PROBE_DATABASE
from ..host import tcp
from ..settings import DoltSettings
from ..sql import sqlclient
from ..town import Town
from .discovery import Running

Kind = Literal["ok", "stopped", "no listener", "full", "unanswering", "read-only", "refused credentials"]
SILENT: tuple[Kind, ...] = ("stopped", "no listener", "full", "unanswering")
DEADLINE = 2.0  # seconds for the TCP connect; the greeting and login get 2x (sqlclient.handshake_deadline)
READ_ONLY_CODES = (1290, 1792, 1836)  # --read-only, read-only transaction, read-only mode
REMEDY = "gt-dolt recover restarts it (after a dump if silent)"


class Wedge(NamedTuple):
    kind: Kind
    said: str = ""
    read_only_rigs: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "said": self.said, "read_only_rigs": list(self.read_only_rigs)}


def is_read_only_error(exc: BaseException) -> bool:
    """Dolt's read-only refusals: 1105 with its own wording, or MySQL's read-only codes."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    text = sqlclient.message_of(exc).lower()
    return code in READ_ONLY_CODES or "read only" in text or "read-only" in text


def _stopped(proc: psutil.Process) -> bool:
    try:
        return proc.status() in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)
    except psutil.Error:
        return False


HELD = (psutil.CONN_ESTABLISHED, psutil.CONN_CLOSE_WAIT)  # a client gone but not yet closed still takes a slot


def established(proc: psutil.Process, port: int) -> int:
    """Client connections the server holds on its SQL port (the kernel's count: no login needed)."""
    try:
        conns = proc.net_connections(kind="tcp")
    except psutil.Error:
        return 0
    return sum(1 for c in conns if c.status in HELD and c.laddr and c.laddr.port == port)


def connection_cap(town: Town, settings: DoltSettings) -> int:
    """max_connections as the managed config sets it (dolt.server may lower it)."""
    from .serverconfig import MAX_CONNECTIONS, build

    try:
        listener = build(settings, town).get("listener") or {}
        return int(listener.get("max_connections", MAX_CONNECTIONS))
    except (GastownError, TypeError, ValueError):
        return MAX_CONNECTIONS


def silent_kind(town: Town, settings: DoltSettings, running: Running, held: int | None = None) -> Wedge:
    """Why a live server did not answer: what its process and its sockets show (`held`: its
    client connections, when already counted: reading them costs ~0.1 s on a busy machine)."""
    where = f"{settings.host}:{running.port}"
    if _stopped(running.proc):
        return Wedge("stopped", f"pid {running.pid} is stopped (SIGSTOP or a debugger): it cannot answer")
    if not tcp.answers(settings.host, running.port):
        return Wedge("no listener", f"pid {running.pid} lives, but nothing listens on {where} any more")
    cap = connection_cap(town, settings)
    held = established(running.proc, running.port) if held is None else held
    if held >= cap:
        return Wedge(
            "full",
            f"pid {running.pid} holds {held} client connections (established or closed by the client but "
            f"not by Dolt), its max_connections {cap}: new logins wait in Dolt's queue (back_log)",
        )
    return Wedge(
        "unanswering",
        f"pid {running.pid} listens on {where} but a login and SELECT 1 did not complete within "
        f"{sqlclient.handshake_deadline(DEADLINE):g}s",
    )


def locks_held(text: str, pid: int) -> set[tuple[int, int, int]]:
    """(major, minor, inode) of every lock `pid` holds, from the text of /proc/locks."""
    held = set()
    for line in text.splitlines():
        fields = line.split()
        if "->" in fields:  # a lock waiting on another: not held
            continue
        try:
            where = fields.index("ADVISORY") if "ADVISORY" in fields else fields.index("MANDATORY")
            if int(fields[where + 2]) != pid:
                continue
            major, minor, inode = fields[where + 3].split(":")
            held.add((int(major, 16), int(minor, 16), int(inode)))
        except (ValueError, IndexError):
            continue
    return held


def _locked_inodes(pid: int) -> set[tuple[int, int, int]] | None:
    """The locks `pid` holds (None where /proc/locks cannot be read: not Linux)."""
    try:
        with open("/proc/locks", "rb") as f:
            return locks_held(f.read(4 * 1024 * 1024).decode("ascii", errors="replace"), pid)
    except OSError:
        return None


def unlocked_rigs(town: Town, running: Running, served: list[str]) -> list[str] | None:
    """The served rigs whose journal lock the server does not hold: Dolt opened them read-only.
    None when the locks cannot be seen (no /proc/locks)."""
    held = _locked_inodes(running.pid)
    if held is None:
        return None
    unlocked = []
    for rig in served:
        try:
            st = os.stat(town.data_dir / rig / ".dolt" / "noms" / "LOCK", follow_symlinks=False)
        except OSError:
            continue  # not a folder of ours (or no journal yet): nothing to say
        if (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino) not in held:
            unlocked.append(rig)
    return unlocked


def write_probe(conn: Any) -> str | None:
    """Write one row in the scratch database; the server's refusal when it is read-only, else None.
    Raises PyMySQL's other errors."""
    import pymysql

    db = sqlclient.quote_name(PROBE_DATABASE)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {db}")
            cur.execute(f"CREATE TABLE IF NOT EXISTS {db}.`probe` (id INT PRIMARY KEY, at DOUBLE)")
            cur.execute(f"REPLACE INTO {db}.`probe` VALUES (1, %s)", (time.time(),))
    except pymysql.err.MySQLError as exc:
        if is_read_only_error(exc):
            return sqlclient.message_of(exc)
        raise
    return None


def answering_kind(
    town: Town, settings: DoltSettings, running: Running, conn: Any, served: list[str], read_only: bool, write: bool
) -> Wedge:
    """On an open connection: whether the server takes writes, server-wide (@@read_only; with
    `write`, the scratch write probe too) and rig by rig (its journal locks)."""
    import pymysql

    said = []
    unprobed = ""
    if read_only and not settings.cluster:  # in a cluster, read-only is a role: cluster-status
        said.append("the server is read-only (@@read_only: behavior.read_only in dolt.server)")
    try:
        refused = write_probe(conn) if write and not settings.cluster else None
    except pymysql.err.MySQLError as exc:
        if sqlclient.classify(exc) == "timeout":
            raise
        refused, unprobed = None, f"the write probe could not run: {sqlclient.message_of(exc)}"
    if refused is not None and not said:
        said.append(f"a write in the scratch database {PROBE_DATABASE} was refused: {refused}")
    rigs = unlocked_rigs(town, running, served) or []
    if rigs:
        said.append(
            f"Dolt opened {', '.join(rigs)} read-only (the server holds no journal lock on it: another "
            "process held .dolt/noms/LOCK when the server loaded it); a restart reopens it"
        )
    if said:
        return Wedge("read-only", "; ".join(said), tuple(rigs))
    return Wedge("ok", unprobed)  # a user without CREATE is not a wedge


def diagnose(
    town: Town, settings: DoltSettings, running: Running, deadline: float = DEADLINE, *, write: bool = False
) -> Wedge:
    """Login, SELECT 1, the read-only checks: what state the live server is in.  Only with `write`
    (recover) is anything written, into the scratch database: status and watch write nothing."""
    import pymysql

    target = settings.with_overrides(port=running.port)
    if _stopped(running.proc):  # a login would only wait its deadline out
        return silent_kind(town, settings, running)
    held = established(running.proc, running.port)
    if held >= connection_cap(town, settings):  # Dolt would queue our login: no need to wait that out
        return silent_kind(town, settings, running, held)
    try:
        conn = sqlclient.connect(target, timeout=deadline, read_timeout=sqlclient.handshake_deadline(deadline))
    except pymysql.err.MySQLError as exc:
        kind = sqlclient.classify(exc)
        if kind == "denied":
            return Wedge("refused credentials", str(sqlclient.denied(target, exc)))
        if kind == "error" and getattr(exc, "args", (None,))[0] == 1040:
            return Wedge("full", f"pid {running.pid} refuses logins: {sqlclient.message_of(exc)}")
        return silent_kind(town, settings, running)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1, @@GLOBAL.read_only")
            row = cur.fetchone()
        read_only = bool(int(row[1])) if row else False
        served = sqlclient.show_databases(conn)
        return answering_kind(town, settings, running, conn, served, read_only, write)
    except pymysql.err.MySQLError as exc:
        if sqlclient.classify(exc) == "timeout":
            return silent_kind(town, settings, running)
        return Wedge("unanswering", f"pid {running.pid} answered with an error: {sqlclient.message_of(exc)}")
    finally:
        conn.close()
