"""Draining clients before a stop, so SIGTERM does not cut a write or a transaction short.

Dolt's process list shows every connection as running a query ("Query") or idle ("Sleep", with
the seconds since its last command); it cannot show whether an idle connection holds an open
transaction.  So a stop waits, up to dolt.drain_timeout, while another client runs a query or was
active within the last QUIET_SECONDS (it may be between the statements of a transaction).
Connections idle for longer are pools waiting for work: they would only make every stop wait, and
nothing they hold is in flight.  A transaction left idle for longer than that is rolled back by the
stop, as by any server restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

from ..errors import GastownError
from ..polling import poll_until
from ..settings import DoltSettings
from ..sql import sqlclient

QUIET_SECONDS = 5
REPORT_EVERY = 2.0  # seconds between "still waiting for" lines


class Client(NamedTuple):
    id: int
    user: str
    host: str
    db: str | None
    command: str
    seconds: int
    info: str | None

    @property
    def busy(self) -> bool:
        return self.command != "Sleep" or self.seconds < QUIET_SECONDS

    def describe(self) -> str:
        doing = (
            f"running {self.info[:60]!r}"
            if self.command == "Query" and self.info
            else (f"idle {self.seconds}s" if self.command == "Sleep" else self.command.lower())
        )
        return f"#{self.id} {self.user}@{self.host}" + (f" in {self.db}" if self.db else "") + f" ({doing})"


class DrainReport(NamedTuple):
    waited: float
    left_behind: tuple[str, ...]  # clients still busy when the drain timed out


def _clients(conn: Any) -> list[Client]:
    with conn.cursor() as cur:
        cur.execute("SELECT CONNECTION_ID()")
        (me,) = cur.fetchone()
        cur.execute("SHOW FULL PROCESSLIST")
        rows = cur.fetchall()
    found = []
    for row in rows:
        ident, user, host, db, command, seconds, _state, info = (list(row) + [None] * 8)[:8]
        if ident == me or user == "system user":
            continue
        found.append(Client(int(ident), str(user), str(host), db, str(command), int(seconds or 0), info))
    return found


def drain(settings: DoltSettings, timeout: float, echo: Callable[[str], None] = print) -> DrainReport:
    """Wait until no other client is busy, or `timeout`; never raises for the server's sake.

    A server that does not answer has nothing to drain.
    """
    import pymysql

    started = time.monotonic()
    try:
        conn = sqlclient.connect(settings, timeout=min(2.0, max(timeout, 0.1)))
    except pymysql.err.MySQLError:
        return DrainReport(0.0, ())
    last_said = [float("-inf")]
    busy: list[Client] = []

    def quiet() -> bool:
        busy[:] = [client for client in _clients(conn) if client.busy]
        if busy and time.monotonic() - last_said[0] >= REPORT_EVERY:
            last_said[0] = time.monotonic()
            echo(
                f"waiting for {len(busy)} client(s) to finish (up to {timeout:g}s; --force skips): "
                + ", ".join(client.describe() for client in busy[:5])
            )
        return not busy

    try:
        done = poll_until(quiet, timeout, first_delay=0.05, max_delay=0.25)
    except (pymysql.err.MySQLError, GastownError):
        done = True  # the server went away while we watched: nothing left to drain
    finally:
        conn.close()
    left = () if done else tuple(client.describe() for client in busy)
    return DrainReport(time.monotonic() - started, left)
