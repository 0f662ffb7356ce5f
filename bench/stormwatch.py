"""What the server shows during and after a storm: Threads_connected, CLOSE_WAIT sockets, CPU, RSS.

A thread samples every `every` seconds: `Threads_connected` over one monitoring connection of its
own (counted in it; it is never idle long enough to be reclaimed), and, through psutil, the
server's TCP sockets on its port in CLOSE_WAIT (the client has gone, the server has not closed its
end), its CPU time and its resident memory.  A sample the server did not answer in time is None.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import psutil
import pymysql

from gastown_tasks.ops.polling import poll_until

SETTLED = 10  # Threads_connected at or below this: the storm's connections are gone
MONITOR_TIMEOUT = 5.0


@dataclass
class Sample:
    at: float  # seconds since the monitor started
    threads: int | None
    close_wait: int
    cpu_percent: float  # of one core, since the previous sample
    rss: int


@dataclass
class Monitor:
    port: int
    pid: int
    every: float = 0.5
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.process = psutil.Process(self.pid)
        self._stop = threading.Event()
        self._conn: pymysql.connections.Connection | None = None
        self._thread = threading.Thread(target=self._loop, name="storm-monitor", daemon=True)
        self.began = time.monotonic()

    def start(self) -> Monitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self._conn is not None:
            self._conn.close()

    def threads_connected(self) -> int | None:
        try:
            if self._conn is None:
                self._conn = pymysql.connect(
                    host="127.0.0.1",
                    port=self.port,
                    user="root",
                    connect_timeout=MONITOR_TIMEOUT,
                    read_timeout=MONITOR_TIMEOUT,
                    ssl_disabled=True,
                )
            with self._conn.cursor() as cur:
                cur.execute("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
                row = cur.fetchone()
            return int(row[1]) if row else None
        except (pymysql.err.MySQLError, OSError):
            if self._conn is not None:
                self._conn._force_close()  # type: ignore[attr-defined]
            self._conn = None
            return None

    def close_wait(self) -> int:
        try:
            sockets = self.process.net_connections(kind="tcp")
        except psutil.Error:
            return 0
        return sum(1 for s in sockets if s.status == psutil.CONN_CLOSE_WAIT and s.laddr and s.laddr.port == self.port)

    def cpu_seconds(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system

    def _loop(self) -> None:
        last_cpu, last_at = self.cpu_seconds(), time.monotonic()
        while not self._stop.is_set():
            threads = self.threads_connected()
            now, cpu = time.monotonic(), self.cpu_seconds()
            percent = 100 * (cpu - last_cpu) / max(now - last_at, 1e-6)
            last_cpu, last_at = cpu, now
            rss = self.process.memory_info().rss
            self.samples.append(Sample(round(now - self.began, 2), threads, self.close_wait(), percent, rss))
            self._stop.wait(self.every)

    def settle(self, limit: float) -> float | None:
        """Seconds from now until Threads_connected is at most SETTLED; None if not within `limit`."""
        began = time.monotonic()

        def settled() -> bool:
            threads = self.samples[-1].threads if self.samples else None
            return threads is not None and threads <= SETTLED and self.samples[-1].at + self.began >= began

        done = poll_until(settled, limit, first_delay=0.05, max_delay=0.25)
        return round(time.monotonic() - began, 1) if done else None

    def window(self, start: float, end: float) -> list[Sample]:
        """The samples taken between two monotonic times."""
        return [s for s in self.samples if start <= s.at + self.began <= end]
