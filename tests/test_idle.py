"""Idle connections on the pinned Dolt: what closes them, after how long, and what else it cuts.

The pinned Dolt reads `wait_timeout` back but never enforces it; the listener's read timeout is what
closes an idle connection, and it also cuts any statement that runs longer (docs/operations.md,
"Idle connections").  `dolt.wait_timeout` sets that read timeout; these towns use 2 s so the
tests are quick.  Every wait is on an event (the server closing a socket, a status reading).
"""

from __future__ import annotations

import json
import select
import socket

import pymysql
import pytest

from conftest import TownFixture
from faultkit import assert_clean, wait_until
from test_operations import configure

RECLAIM = 2  # seconds: the idle reclaim these towns run with
SLACK = 10  # seconds beyond the reclaim within which the server must have closed an idle connection


def closed_by_server(conn: pymysql.connections.Connection) -> bool:
    """The server has closed this connection: its socket reads end-of-file (nothing was sent)."""
    sock = conn._sock  # type: ignore[attr-defined]
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""


@pytest.fixture
def reclaiming_town(rigged_town: TownFixture) -> TownFixture:
    configure(rigged_town, f"dolt:\n  wait_timeout: {RECLAIM}\n")
    assert_clean(rigged_town.gt_dolt("start"), 0)
    return rigged_town


def test_a_connection_idle_past_the_reclaim_is_closed_by_the_server_and_a_busy_one_is_not(
    reclaiming_town: TownFixture,
) -> None:
    t = reclaiming_town
    assert t.query("SELECT @@GLOBAL.net_read_timeout, @@GLOBAL.wait_timeout") == [(RECLAIM, 28800)]
    idle = t.connect()
    busy = t.connect()
    with idle.cursor() as cur:
        cur.execute("SELECT 1")
    answered = []

    def still_idle_open() -> bool:
        """Meanwhile `busy` runs one short statement after another: never idle, never cut."""
        with busy.cursor() as cur:
            cur.execute("SELECT SLEEP(0.2)")
            answered.append(cur.fetchone())
        return closed_by_server(idle)

    wait_until(still_idle_open, f"the server to close a connection idle past {RECLAIM}s", timeout=RECLAIM + SLACK)
    assert answered and all(row == (0,) for row in answered)
    with pytest.raises(pymysql.err.OperationalError) as lost, idle.cursor() as cur:
        cur.execute("SELECT 1")
    assert lost.value.args[0] in (2006, 2013)  # PyMySQL's "gone away" / "lost connection"
    with busy.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    busy.close()


def test_a_statement_running_longer_than_the_reclaim_is_cut_and_its_writes_undone(
    reclaiming_town: TownFixture,
) -> None:
    t = reclaiming_town
    t.query("CREATE TABLE beads (id INT PRIMARY KEY)", "hq")
    conn = t.connect("hq")
    with conn.cursor() as cur:
        cur.execute(f"SELECT SLEEP({RECLAIM / 2})")  # shorter than the reclaim: it completes
        assert cur.fetchone() == (0,)
        with pytest.raises(pymysql.err.OperationalError) as cut:
            cur.execute(f"SELECT SLEEP({RECLAIM + 3})")
        assert cut.value.args[0] == 1105, cut.value.args
        slow_rows = f"SELECT n FROM (SELECT 1 n UNION ALL SELECT 2) s WHERE SLEEP(n * {RECLAIM}) = 0"
        with pytest.raises(pymysql.err.OperationalError) as undone:  # a write whose rows take 1 + 2 reclaims
            cur.execute(f"INSERT INTO beads {slow_rows}")
        assert undone.value.args[0] == 1105, undone.value.args
        cur.execute("SELECT COUNT(*) FROM beads")  # the connection itself stays usable
        assert cur.fetchone() == (0,)
    conn.close()


def test_status_shows_the_idle_connections_the_server_sees_and_when_it_closes_them(
    rigged_town: TownFixture,
) -> None:
    t = rigged_town
    assert_clean(t.gt_dolt("start"), 0)  # the default reclaim: 30 s, longer than this test waits
    held = [t.connect() for _ in range(2)]
    try:
        for conn in held:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
        seen: list[dict] = []

        def idle_a_second() -> bool:
            done = t.gt_dolt("status", "--json")
            seen[:] = [json.loads(done.stdout)["health"]["connections"]]
            return seen[0]["idle"] >= 2 and (seen[0]["longest_idle_seconds"] or 0) >= 1

        wait_until(idle_a_second, "status to show two connections idle for a second or more", timeout=25)
        connections = seen[0]
        assert connections["idle_closed_after_seconds"] == 30 and connections["used"] >= 3
        text = t.gt_dolt("status").stdout
        line = next(line for line in text.splitlines() if line.strip().startswith("idle:"))
        assert "connection(s), the longest idle" in line and "the server closes a connection idle 30s" in line
    finally:
        for conn in held:
            conn.close()
