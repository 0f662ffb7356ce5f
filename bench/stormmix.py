"""The clients of a Gas Town-shaped connection storm, opened at a fixed rate (open loop).

Every agent runs `bd` as a new process per call, so the server sees short connections, many of
which end without COM_QUIT (the process exits), and some held by a process that hangs.  The mix,
as shares of the rate:

- quit:    connect, SELECT 1, COM_QUIT (a well-behaved client);
- drop:    connect, SELECT 1, close the socket without COM_QUIT (a process that exits);
- write:   connect, one small INSERT, close the socket without COM_QUIT;
- abandon: connect, SELECT 1, then hold the connection idle and never close it (a hung process);
  they stay open until `release()`, after the settle time has been measured.

Connection i is opened at start + i/rate, each by its own task on one asyncio loop speaking the
wire protocol (bench/stormwire.py): a client that starts late shows as lag, never as a lower rate
hidden in the figures.  Everything is loopback.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from collections import Counter
from dataclasses import dataclass, field

import pymysql
import stormwire

MIX = {"quit": 0.6, "drop": 0.25, "write": 0.1, "abandon": 0.05}
CONNECT_TIMEOUT = 10.0
QUERY_TIMEOUT = 30.0
TABLE = "storm_writes"


def connect(port: int, database: str | None = None) -> pymysql.connections.Connection:
    return pymysql.connect(
        host="127.0.0.1",
        port=port,
        user="root",
        database=database,
        autocommit=True,
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=QUERY_TIMEOUT,
        write_timeout=QUERY_TIMEOUT,
        ssl_disabled=True,  # PyMySQL would build a TLS context per connect
    )


def prepare(port: int, database: str) -> None:
    """The table the writers insert into."""
    conn = connect(port, database)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DOUBLE)")
    finally:
        conn.close()


@dataclass
class ClientFigures:
    attempted: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # connect + query, seconds
    lag: list[float] = field(default_factory=list)  # start - scheduled start, seconds
    kinds: Counter[str] = field(default_factory=Counter)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


class Storm:
    """One storm: `rate` connections a second for `seconds`, against 127.0.0.1:`port`."""

    def __init__(
        self, port: int, rate: float, seconds: float, database: str, mix: dict[str, float] | None = None, seed: int = 25
    ) -> None:
        self.port, self.rate, self.seconds, self.database = port, rate, seconds, database
        self.mix = MIX if mix is None else mix
        self.figures = ClientFigures()
        self.held: list[socket.socket] = []
        self._random = random.Random(seed)
        self.started = 0.0

    def _record(self, kind: str, scheduled: float, began: float, latency: float | None, error: str | None) -> None:
        self.figures.kinds[kind] += 1
        self.figures.lag.append(began - scheduled)
        if error is not None:
            self.figures.errors[f"{kind}: {error}"] += 1
        elif latency is not None:
            self.figures.latencies.append(latency)

    def _hold(self, writer: asyncio.StreamWriter) -> None:
        """Keep the connection open outside the loop: a duplicate of its socket, the transport dropped
        (closing one of two descriptors sends nothing to the server)."""
        sock = writer.get_extra_info("socket")
        self.held.append(socket.socket(fileno=os.dup(sock.fileno())))
        writer.transport.abort()

    async def _session(self, kind: str) -> float:
        began = time.monotonic()
        reader, writer = await asyncio.wait_for(
            stormwire.login("127.0.0.1", self.port, "root", self.database if kind == "write" else None),
            CONNECT_TIMEOUT,
        )
        try:
            statement = f"INSERT INTO {TABLE} (at) VALUES ({time.time()!r})" if kind == "write" else "SELECT 1"
            await asyncio.wait_for(stormwire.query(reader, writer, statement), QUERY_TIMEOUT)
            latency = time.monotonic() - began
        except BaseException:
            writer.transport.abort()
            raise
        if kind == "quit":
            stormwire.quit_and_close(writer)
        elif kind == "abandon":
            self._hold(writer)
        else:
            writer.transport.abort()  # the process exits: FIN, no COM_QUIT
        return latency

    async def _client(self, kind: str, scheduled: float) -> None:
        began = time.monotonic()
        try:
            latency = await self._session(kind)
        except stormwire.ServerError as exc:
            self._record(kind, scheduled, began, None, str(exc.args[0]))
        except TimeoutError:
            self._record(kind, scheduled, began, None, "no answer in time")
        except asyncio.IncompleteReadError:
            self._record(kind, scheduled, began, None, "closed by the server")
        except OSError as exc:
            self._record(kind, scheduled, began, None, type(exc).__name__)
        else:
            self._record(kind, scheduled, began, latency, None)

    def _kind(self) -> str:
        pick = self._random.random()
        for kind, share in self.mix.items():
            if pick < share:
                return kind
            pick -= share
        return "quit"

    async def _storm(self) -> None:
        total = int(self.rate * self.seconds)
        tasks = []
        self.started = time.monotonic()
        for i in range(total):
            scheduled = self.started + i / self.rate
            delay = scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self._client(self._kind(), scheduled)))
        self.figures.attempted = total
        await asyncio.gather(*tasks)

    def run(self) -> ClientFigures:
        """Open connections on schedule for `seconds`, then wait for the last ones to finish."""
        asyncio.run(self._storm())
        return self.figures

    def release(self) -> int:
        """Close the abandoned connections (the hung processes exit); how many there were."""
        held, self.held = self.held, []
        for sock in held:
            sock.close()
        return len(held)
