"""Talking to the server over the real MySQL protocol (PyMySQL, imported only when used)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .settings import DoltSettings

if TYPE_CHECKING:
    import pymysql

# Databases every server shows that are not rigs.
SYSTEM_DATABASES = frozenset({"information_schema", "mysql", "performance_schema", "sys"})


def connect(
    settings: DoltSettings, database: str | None = None, timeout: float = 2.0
) -> pymysql.connections.Connection:
    """A connection with autocommit on; raises pymysql.err.OperationalError when it cannot."""
    import pymysql

    return pymysql.connect(
        host=settings.host,
        port=settings.port,
        user=settings.user,
        password=settings.password,
        database=database,
        connect_timeout=max(timeout, 0.001),
        read_timeout=max(timeout * 5, 5),
        autocommit=True,
        ssl_disabled=True,  # loopback by default; PyMySQL would build a TLS context per connect (~20 ms)
    )


def show_databases(conn: Any) -> list[str]:
    with conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        names = [row[0] for row in cur.fetchall()]
    return sorted(n for n in names if n.lower() not in SYSTEM_DATABASES)


def served_databases(settings: DoltSettings, timeout: float = 2.0) -> list[str] | None:
    """The rig databases the server lists, or None when it does not answer."""
    import pymysql

    try:
        conn = connect(settings, timeout=timeout)
    except pymysql.err.MySQLError:
        return None
    try:
        return show_databases(conn)
    except pymysql.err.MySQLError:
        return None
    finally:
        conn.close()


def missing(expected: Iterable[str], served: Iterable[str]) -> list[str]:
    """Expected names the server does not list (case-insensitive, as MySQL names are)."""
    have = {name.lower() for name in served}
    return sorted(name for name in expected if name.lower() not in have)
