"""A wedged server: the process lives, but it does not serve.  What kind, a goroutine dump, recovery.

Each kind is read from what the server does, never from what files say:
- stopped: the process is stopped (SIGSTOP, a debugger); it cannot answer anything.
- no listener: the process lives, but its SQL port refuses connections.
- full: its established client connections reach max_connections; Dolt then queues new logins
  (back_log) instead of refusing them, so a login waits and no error 1040 comes back.
- unanswering: it listens, but a login and `SELECT 1` do not complete within the deadline.
- read-only: it answers, but writes fail.  Server-wide (behavior.read_only: @@read_only), or one
  rig at a time: Dolt opens a database read-only, for good, when another process holds its
  journal lock (`.dolt/noms/LOCK`) at the moment the server loads it ("cannot update manifest:
  database is read only"; store/nbs/journal.go).  That is seen without writing to the rig: the
  server holds no lock on that rig's LOCK file (/proc/locks).  `status` and `watch` write nothing;
  `recover` proves the server takes writes with a write probe in the scratch database
  `__gastown_probe` (never a rig: `rigs.RESERVED`), made on its first use and kept (a dropped one
  would pile up in .dolt_dropped_databases).

The dump: SIGQUIT makes Go write every goroutine's stack to stderr (the town's dolt.log), and Go's
default handler then ENDS the process (the pinned Dolt installs no handler of its own: verified),
as a crash would: no drain, no clean close.  So a dump is always followed by a start, unless the
caller says otherwise.  Every signal goes through the psutil.Process that discovery proved to be
this town's server, re-proved under the town lock just before it is sent.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any, Literal, NamedTuple

import psutil

from . import procs, sqlclient, tcp
from .discovery import Running, observe
from .errors import GastownError, NotOurs
from .locking import town_lock
from .logfile import file_size, read_since
from .polling import poll_until
from .rigs import PROBE_DATABASE
from .settings import DoltSettings
from .town import Town

Kind = Literal["ok", "stopped", "no listener", "full", "unanswering", "read-only", "refused credentials"]
SILENT: tuple[Kind, ...] = ("stopped", "no listener", "full", "unanswering")
DEADLINE = 2.0  # seconds for the TCP connect; the greeting and login get 2x (sqlclient.handshake_deadline)
DUMP_WAIT = 15.0  # seconds for Go to write the stacks and exit (about 2 s for a small town)
DUMP_READ = 8 * 1024 * 1024  # bytes of the log read back to count the goroutines
READ_ONLY_CODES = (1290, 1792, 1836)  # --read-only, read-only transaction, read-only mode
NOT_RUNNING = 3  # LSB, as `status`


class Wedge(NamedTuple):
    kind: Kind
    said: str = ""
    read_only_rigs: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "said": self.said, "read_only_rigs": list(self.read_only_rigs)}


class Dump(NamedTuple):
    pid: int
    log_file: str
    goroutines: int  # counted in what the log gained; 0 when the stacks went elsewhere
    written: bool  # "SIGQUIT: quit" is in the log
    exited: bool  # it ended on SIGQUIT (else it was stopped with SIGTERM/SIGKILL after DUMP_WAIT)

    def sentence(self) -> str:
        if self.written:
            where = f"{self.goroutines} goroutine stacks written to {self.log_file} (gt-dolt logs -n 400)"
        else:
            where = f"no stacks reached {self.log_file} (a server started by hand writes them to its own stderr)"
        how = "and exited, as Go does on SIGQUIT" if self.exited else "; it did not exit, so it was stopped"
        return f"dump of pid {self.pid}: {where} {how}"


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


def _proven(town: Town, settings: DoltSettings, pid: int | None) -> Running:
    """The town's server, proved now (and the same process as `pid`, when given)."""
    seen = observe(town, settings)
    running = seen.running
    if running is None:
        raise GastownError("no server of this town is running: nothing to dump", exit_code=NOT_RUNNING)
    if pid is not None and running.pid != pid:
        raise NotOurs(f"pid {pid} is no longer this town's server (pid {running.pid} is); nothing was signalled")
    return running


def dump(town: Town, settings: DoltSettings, pid: int | None = None, wait: float = DUMP_WAIT) -> Dump:
    """SIGQUIT the town's server (proved first, under the town lock) and wait for it to end.

    A stopped process gets SIGCONT after the SIGQUIT, so that it can write the stacks.  One that has
    not ended after `wait` is stopped as `stop` would (SIGTERM, then SIGKILL).
    """
    from .server import _reconcile

    with town_lock(town, wait=settings.lock_wait):
        running = _proven(town, settings, pid)
        proc = running.proc
        offset = file_size(town.log_file, root=town.root)
        try:
            proc.send_signal(signal.SIGQUIT)  # psutil refuses a pid reused since discovery proved it
            proc.send_signal(signal.SIGCONT)
        except psutil.NoSuchProcess:
            pass
        except psutil.AccessDenied:
            raise NotOurs(f"not allowed to signal pid {running.pid}; dump it as the user that runs it") from None
        exited = procs.wait_exited(proc, wait)
        if not exited:
            procs.terminate(proc, settings.stop_timeout)
        _reconcile(town, running)
    gained = read_since(town.log_file, offset, root=town.root, limit=DUMP_READ)
    return Dump(
        pid=running.pid,
        log_file=str(town.log_file),
        goroutines=gained.count("\ngoroutine ") + gained.startswith("goroutine "),
        written="SIGQUIT: quit" in gained,
        exited=exited,
    )


def verify_writable(town: Town, settings: DoltSettings, within: float = 10.0) -> Wedge:
    """After a restart: the server answers and takes writes (retried: a server may need a moment)."""
    last: list[Wedge] = [Wedge("unanswering", "no server of this town runs after the restart")]

    def fine() -> bool:
        running = observe(town, settings).running
        if running is None:
            return False
        last[0] = diagnose(town, settings, running, write=True)
        return last[0].ok

    poll_until(fine, within, max_delay=1.0)
    return last[0]


class Recovery(NamedTuple):
    before: Wedge
    after: Wedge
    dump: Dump | None = None
    restarted_pid: int | None = None


def recover(town: Town, settings: DoltSettings) -> Recovery:
    """Probe; restart a read-only server (gracefully: it still answers), dump and restart a silent
    one; then prove it answers and takes writes.  Raises when no server runs."""
    from .server import restart, start

    running = observe(town, settings).running
    if running is None:
        raise GastownError(
            "no server of this town is running: nothing to recover; start it: gt-dolt start", exit_code=NOT_RUNNING
        )
    before = diagnose(town, settings, running, write=True)
    if before.ok or before.kind == "refused credentials":
        return Recovery(before, before)
    saved = None
    if before.kind in SILENT:
        saved = dump(town, settings, running.pid)
        result = start(town, settings)
    else:
        _, result = restart(town, settings)
    return Recovery(before, verify_writable(town, settings), saved, result.pid)


__all__ = ["Dump", "Recovery", "Wedge", "diagnose", "dump", "recover", "silent_kind"]
