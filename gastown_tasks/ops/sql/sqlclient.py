"""Talking to the server over the real MySQL protocol (PyMySQL, imported only where SQL is spoken).

Every failure is classified once (`classify`): access denied is final and names the password
setting; a refused connection means nobody listens; a timeout or a lost connection means a server
that does not answer (frozen, overloaded); anything else is the server's own error message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ..errors import AccessDenied, Remedy, SqlFailure
from ..files.datadir import RESERVED
from ..host import tcp
from ..settings import DoltSettings

if TYPE_CHECKING:
    import socket

    import pymysql

T = TypeVar("T")
Kind = Literal["denied", "refused", "unreachable", "timeout", "error"]

ACCESS_DENIED = 1045
CANT_CONNECT = 2003
SERVER_ERROR = 1105  # ER_UNKNOWN_ERROR: what Dolt answers for most of its own errors
AUTH_PLUGIN_REFUSED = 2059  # CR_AUTH_PLUGIN_CANNOT_LOAD
LOST = (2006, 2013)


class RefusePlainPassword:
    """PyMySQL's handler for the auth plugins that send the password as it is (mysql_clear_password,
    dialog): on a connection without TLS, a server that asks for them is not a Dolt of ours."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def authenticate(self, packet: Any) -> Any:
        import pymysql

        raise pymysql.err.OperationalError(
            AUTH_PLUGIN_REFUSED,
            "the server asked for the password in clear text over an unencrypted connection; it was not sent",
        )


PLAIN_PASSWORD_PLUGINS: dict[str, Callable[[Any], Any]] = {
    "mysql_clear_password": RefusePlainPassword,
    "dialog": RefusePlainPassword,
}


def connect(
    settings: DoltSettings,
    database: str | None = None,
    timeout: float = 2.0,
    sock: socket.socket | None = None,
    read_timeout: float | None = None,
) -> pymysql.connections.Connection:
    """A connection with autocommit on; raises pymysql.err.MySQLError when it cannot.

    Every step has a deadline: the TCP connect `timeout`, the server's greeting and our login
    `handshake_deadline(timeout)` (a frozen server accepts TCP but never greets), each later read
    `read_timeout` (default 5 × `timeout`, at least 5 s) and each write 5 × `timeout`.
    `sock`: a TCP connection already made to the server (see `open_socket`).
    """
    import pymysql

    if sock is None:
        try:
            sock = tcp.connect(settings.host, settings.port, timeout)
        except OSError as exc:  # worded as PyMySQL words it, so `classify` reads it the same way
            raise pymysql.err.OperationalError(
                CANT_CONNECT, f"Can't connect to MySQL server on {settings.host!r} ({exc})"
            ) from None
    conn = pymysql.connect(
        host=settings.host,
        port=settings.port,
        user=settings.user,
        password=settings.password,
        database=database,
        connect_timeout=max(timeout, 0.001),
        read_timeout=handshake_deadline(timeout),  # PyMySQL reads the greeting with its read timeout
        write_timeout=max(timeout * 5, 5),
        autocommit=True,
        ssl_disabled=True,  # loopback by default; PyMySQL would build a TLS context per connect (~20 ms)
        defer_connect=True,
        auth_plugin_map=PLAIN_PASSWORD_PLUGINS,
    )
    try:
        conn.connect(sock)
    except BaseException:
        if sock is not None:
            sock.close()
        raise
    # From here on, queries get their own bound (PyMySQL re-applies `_read_timeout` before a read).
    reads = read_timeout if read_timeout is not None else max(timeout * 5, 5)
    conn._read_timeout = reads  # type: ignore[attr-defined]
    sock.settimeout(reads)
    return conn


def handshake_deadline(timeout: float) -> float:
    """How long the server's greeting and our login may take."""
    return max(timeout * 2, 2.0)


def open_socket(settings: DoltSettings, timeout: float = 2.0) -> socket.socket | None:
    """A TCP connection to the server, or None while nothing listens: a refused connect costs
    microseconds here, and half a millisecond of CPU through PyMySQL (which formats a traceback)."""
    try:
        return tcp.connect(settings.host, settings.port, timeout)
    except OSError:
        return None


def classify(exc: BaseException) -> Kind:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    if code == ACCESS_DENIED:
        return "denied"
    if code == CANT_CONNECT:
        text = str(exc.args[-1]).lower()
        return "unreachable" if "timed out" in text else "refused"
    if code in LOST or isinstance(exc, TimeoutError):
        return "timeout"
    return "error"


def message_of(exc: BaseException) -> str:
    return str(exc.args[-1]) if exc.args else str(exc)


def denied(settings: DoltSettings, exc: BaseException) -> AccessDenied:
    return AccessDenied.for_user(settings.user, settings.address, message_of(exc))


def call(
    settings: DoltSettings,
    work: Callable[[Any], T],
    *,
    what: str,
    timeout: float = 2.0,
    database: str | None = None,
    long: float | None = None,
) -> T:
    """Connect, run `work(conn)`, close; every failure becomes one classified message.

    `long`: the work may take up to that many seconds (a backup); meanwhile the server's liveness
    is watched on other connections, and a server that stops answering ends the wait.
    """
    import pymysql

    try:
        conn = connect(settings, database=database, timeout=timeout, read_timeout=long)
    except pymysql.err.MySQLError as exc:
        raise failure(settings, exc, what) from None
    try:
        with watched(settings, lambda: _cut(conn), long is not None) as fell_silent:
            try:
                return work(conn)
            except pymysql.err.MySQLError as exc:
                if fell_silent():
                    raise silent(settings, what) from None
                raise failure(settings, exc, what) from None
    finally:
        conn.close()


def _never() -> bool:
    return False


def _cut(conn: Any) -> None:
    """End a wait on `conn` from another thread: its blocked read returns at once."""
    sock = getattr(conn, "_sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(2)  # socket.SHUT_RDWR


LONG_CALL = 6 * 3600.0  # seconds a call that scales with the data may take (a backup, a batch query)
PROBE_EVERY = 5.0  # seconds between liveness probes while a long call runs
PROBE_MISSES = 2  # probes in a row without an answer: the server has stopped answering


def silent(settings: DoltSettings, what: str) -> SqlFailure:
    return SqlFailure(
        f"cannot {what}: the server on {settings.address} stopped answering ({PROBE_MISSES} probes "
        f"{PROBE_EVERY:g}s apart got no answer); it may be frozen or gone; {Remedy.DOCTOR}",
        kind="timeout",
    )


def answers_now(settings: DoltSettings, timeout: float = 2.0) -> bool:
    """Whether the server greets a new connection and takes our login within the deadlines (a
    refused login is an answer too)."""
    import pymysql

    try:
        connect(settings, timeout=timeout).close()
    except pymysql.err.MySQLError as exc:
        return classify(exc) in ("denied", "error")
    return True


def watched(
    settings: DoltSettings, on_silent: Callable[[], None], watch: bool
) -> contextlib.AbstractContextManager[Callable[[], bool]]:
    """`liveness` when `watch`, else a block that never fires."""
    return liveness(settings, on_silent) if watch else contextlib.nullcontext(_never)


@contextmanager
def liveness(
    settings: DoltSettings, on_silent: Callable[[], None], every: float = PROBE_EVERY, misses: int = PROBE_MISSES
) -> Iterator[Callable[[], bool]]:
    """While the block runs, probe the server every `every` seconds on a fresh connection; after
    `misses` probes in a row without an answer, call `on_silent` once (end the call or the child
    that waits on the server).  Yields whether that happened."""
    import threading

    fired = threading.Event()
    done = threading.Event()

    def watch() -> None:
        missed = 0
        while not done.wait(every):
            missed = 0 if answers_now(settings, timeout=min(every, 2.0)) else missed + 1
            if missed >= misses and not done.is_set():
                fired.set()
                on_silent()
                return

    watcher = threading.Thread(target=watch, name="gastown-liveness", daemon=True)
    watcher.start()
    try:
        yield fired.is_set
    finally:
        done.set()  # a probe under way ends within its own deadlines; nobody waits for it (Ctrl-C)
        watcher.join(timeout=0.1)


def failure(settings: DoltSettings, exc: BaseException, what: str) -> AccessDenied | SqlFailure:
    kind = classify(exc)
    if kind == "denied":
        return denied(settings, exc)
    if kind == "refused":
        said = f"nothing answers on {settings.address}; is the server running? {Remedy.STATUS}"
    elif kind == "unreachable":
        said = f"{settings.address} accepts no connection in time; its host may be down or unreachable"
    elif kind == "timeout":
        said = (
            f"the server on {settings.address} does not answer in time ({message_of(exc)}); it may be frozen "
            f"or overloaded; {Remedy.DOCTOR}"
        )
    elif cut_by_reclaim(exc):
        said = (
            f"the server cut the statement ({message_of(exc)}): Dolt ends any statement that runs longer than "
            "its idle reclaim, the listener's read timeout (dolt.wait_timeout); raise dolt.wait_timeout, "
            "restart the server (gt-dolt restart) and try again"
        )
    else:
        said = f"the server said: {message_of(exc)}"
    return SqlFailure(f"cannot {what}: {said}", kind=kind)


# What the pinned Dolt answers (error 1105) when a statement outlives the listener's read timeout:
# its row wait, its connection watcher, or the statement's own context ran out (docs/operations.md).
CUT_BY_RECLAIM = ("row read wait bigger than connection timeout", "connection was closed", "context canceled")


def cut_by_reclaim(exc: BaseException) -> bool:
    return bool(exc.args) and exc.args[0] == SERVER_ERROR and message_of(exc) in CUT_BY_RECLAIM


def show_databases(conn: Any) -> list[str]:
    """The rig databases the server serves: every name that is text (any SQL user can create one
    named with any bytes: those are left out here, and `doctor` names their folders)."""
    with conn.cursor() as cur:
        # As bytes: SHOW DATABASES would make PyMySQL decode a name that is not UTF-8, and fail.
        cur.execute("SELECT CONVERT(SCHEMA_NAME USING binary) FROM information_schema.SCHEMATA")
        raw = [bytes(row[0]) for row in cur.fetchall() if row[0] is not None]
    names = []
    for name in raw:
        try:
            names.append(name.decode("utf-8"))
        except UnicodeDecodeError:
            continue
    return sorted(n for n in names if n.lower() not in RESERVED)


def quote_name(name: str) -> str:
    """A database name as an SQL identifier, whatever it holds: backticks doubled."""
    return "`" + name.replace("`", "``") + "`"


def quote_text(text: str) -> str:
    """A string literal, for the one place a statement cannot take parameters (the Dolt CLI's -q)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def served_databases(settings: DoltSettings, timeout: float = 2.0) -> list[str] | None:
    """The rig databases the server lists, or None when it does not answer.

    Refused credentials are not "does not answer": they raise AccessDenied naming the setting.
    """
    try:
        return call(settings, show_databases, what="list the databases", timeout=timeout)
    except SqlFailure:
        return None


def missing(expected: Iterable[str], served: Iterable[str]) -> list[str]:
    """Expected names the server does not list (case-insensitive, as MySQL names are)."""
    have = {name.lower() for name in served}
    return sorted(name for name in expected if name.lower() not in have)
