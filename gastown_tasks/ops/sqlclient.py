"""Talking to the server over the real MySQL protocol (PyMySQL, imported only where SQL is spoken).

Every failure is classified once (`classify`): access denied is final and names the password
setting; a refused connection means nobody listens; a timeout or a lost connection means a server
that does not answer (frozen, overloaded); anything else is the server's own error message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from . import tcp
from .errors import AccessDenied, Remedy, SqlFailure
from .rigs import RESERVED
from .settings import DoltSettings

if TYPE_CHECKING:
    import socket

    import pymysql

T = TypeVar("T")
Kind = Literal["denied", "refused", "unreachable", "timeout", "error"]

ACCESS_DENIED = 1045
CANT_CONNECT = 2003
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
    settings: DoltSettings, database: str | None = None, timeout: float = 2.0, sock: socket.socket | None = None
) -> pymysql.connections.Connection:
    """A connection with autocommit on; raises pymysql.err.MySQLError when it cannot.

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
        read_timeout=max(timeout * 5, 5),  # a frozen server must not hang us: bounded reads
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
    return conn


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
    settings: DoltSettings, work: Callable[[Any], T], *, what: str, timeout: float = 2.0, database: str | None = None
) -> T:
    """Connect, run `work(conn)`, close; every failure becomes one classified message."""
    import pymysql

    try:
        conn = connect(settings, database=database, timeout=timeout)
    except pymysql.err.MySQLError as exc:
        raise failure(settings, exc, what) from None
    try:
        return work(conn)
    except pymysql.err.MySQLError as exc:
        raise failure(settings, exc, what) from None
    finally:
        conn.close()


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
    else:
        said = f"the server said: {message_of(exc)}"
    return SqlFailure(f"cannot {what}: {said}", kind=kind)


def show_databases(conn: Any) -> list[str]:
    with conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        names = [row[0] for row in cur.fetchall()]
    return sorted(n for n in names if n.lower() not in RESERVED)


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
