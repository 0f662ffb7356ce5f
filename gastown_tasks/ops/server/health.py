"""How the running server is doing: latency, connections, disk, read-only, commit age.

Read-only: a few SELECTs on one connection, the free space, and (for doctor) a walk of the rig
folders; nothing is ever written into a rig database.  `doctor` warns on the thresholds Gas Town's
daemon uses (latency over 1 s, connections at 80 %, read-only, disk growth) and on a nearly full disk.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

from ..files.datadir import scan_data_dir
from ..settings import DoltSettings
from ..sql import sqlclient
from ..town import Town

LATENCY_WARN_MS = 1000.0
CONNECTIONS_WARN = 0.8
DISK_GROWTH_WARN = 2.0  # times the size at start ...
DISK_GROWTH_FLOOR = 100 * 1024 * 1024  # ... and at least this many bytes more
DISK_FREE_WARN = 1024 * 1024 * 1024  # free space on the data dir's filesystem
COMMIT_AGE_RIGS = 50  # rigs whose newest commit doctor looks up (one query for all of them) ...
STATUS_COMMIT_AGE_RIGS = 10  # ... and status: each costs ~1.5 ms on a server of 1000 databases


def folder_bytes(path: os.PathLike[str]) -> int:
    """Bytes of the files under `path`, links not followed (scandir: start measures every rig)."""
    total = 0
    folders = [os.fspath(path)]
    while folders:
        try:
            entries = os.scandir(folders.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(entry.path)
                    else:
                        total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
    return total


def disk_bytes(town: Town) -> dict[str, int]:
    return {rig.name: folder_bytes(rig.path) for rig in scan_data_dir(town).rigs}


def metrics_url(settings: DoltSettings) -> str | None:
    if not settings.metrics_port:
        return None
    host = settings.url_host if (settings.is_loopback or settings.allow_passwordless_bind) else "127.0.0.1"
    return f"http://{host}:{settings.metrics_port}/metrics"


def _ages(cur: Any, rigs: list[str]) -> dict[str, float | None]:
    if not rigs:
        return {}
    quote_name, quote_text = sqlclient.quote_name, sqlclient.quote_text
    # Names come from the server (any SQL user can create one with a backtick): quoted, never pasted.
    union = " UNION ALL ".join(f"SELECT {quote_text(rig)}, MAX(`date`) FROM {quote_name(rig)}.dolt_log" for rig in rigs)
    cur.execute(union)
    now = datetime.now(UTC)
    ages: dict[str, float | None] = {}
    for rig, newest in cur.fetchall():
        if newest is None:
            ages[rig] = None
            continue
        moment = newest if newest.tzinfo else newest.replace(tzinfo=UTC)
        ages[rig] = round((now - moment).total_seconds(), 1)
    return ages


def free_bytes(town: Town) -> int | None:
    """Free space on the data dir's filesystem (one statvfs, whatever the number of rigs)."""
    try:
        st = os.statvfs(town.data_dir)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


# The idle connections the server sees ("Sleep" in its process list, TIME = seconds since their last
# command) and when it closes them: on the pinned Dolt only the listener's read timeout does
# (@@net_read_timeout, in seconds; wait_timeout is read back but never enforced: docs/operations.md).
IDLE_COLUMNS = (
    "(SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND = 'Sleep'), "
    "(SELECT MAX(TIME) FROM information_schema.PROCESSLIST WHERE COMMAND = 'Sleep'), "
    "@@GLOBAL.net_read_timeout"
)


def measure(town: Town, settings: DoltSettings, port: int) -> dict[str, Any]:
    """One full reading of the server's health, the rigs' sizes included (doctor); raises
    SqlFailure/AccessDenied when it does not answer."""
    target = settings.with_overrides(port=port)

    def work(conn: Any) -> dict[str, Any]:
        return measure_on(conn, town, target, sqlclient.show_databases(conn), sizes=True)

    return sqlclient.call(target, work, what="measure the server's health")


def measure_on(conn: Any, town: Town, settings: DoltSettings, served: list[str], sizes: bool) -> dict[str, Any]:
    """The health, read on an open connection (raises PyMySQL's errors).

    `sizes` walks every file of every rig (doctor's growth check); `status` leaves it out, so that
    it costs the same with 1000 rigs as with one, and shows the free space instead.
    """
    # One round trip for the numbers (its time is the latency): every query costs a server of
    # 1000 databases ~8 ms, whatever it asks.
    role = ", @@GLOBAL.dolt_cluster_role" if settings.cluster else ""  # exists only on a clustered server
    with conn.cursor() as cur:
        started = time.perf_counter()
        cur.execute(
            "SELECT (SELECT COUNT(*) FROM information_schema.PROCESSLIST), @@GLOBAL.max_connections, "
            f"@@GLOBAL.read_only, {IDLE_COLUMNS}{role}"
        )
        used, maximum, read_only, idle, longest_idle, reclaim, *cluster_role = cur.fetchone()
        latency = (time.perf_counter() - started) * 1000
        ages = _ages(cur, served[: COMMIT_AGE_RIGS if sizes else STATUS_COMMIT_AGE_RIGS])
    return {
        "latency_ms": round(latency, 2),
        "connections": {
            "used": int(used),
            "max": int(maximum),
            "idle": int(idle),
            "longest_idle_seconds": None if longest_idle is None else int(longest_idle),
            "idle_closed_after_seconds": int(reclaim),
        },
        "read_only": bool(int(read_only)),
        "cluster_role": (cluster_role or [None])[0] or None,
        "newest_commit_age_seconds": ages,
        "disk_free_bytes": free_bytes(town),
        "disk_bytes": disk_bytes(town) if sizes else None,
        "metrics_url": metrics_url(settings),
    }


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "no commit"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return f"{seconds:.0f}s ago"


def health_lines(health: dict[str, Any]) -> list[str]:
    conns = health["connections"]
    disk = health.get("disk_bytes")
    free = health.get("disk_free_bytes")
    ages = health["newest_commit_age_seconds"]
    lines = [
        f"  health:     {health['latency_ms']:.1f} ms per query, {conns['used']}/{conns['max']} connections"
        + (", READ-ONLY" if health["read_only"] else "")
    ]
    if conns.get("idle") is not None:
        longest = conns.get("longest_idle_seconds")
        lines.append(
            f"  idle:       {conns['idle']} connection(s)"
            + (f", the longest idle {longest}s" if longest is not None else "")
            + f"; the server closes a connection idle {conns['idle_closed_after_seconds']}s"
        )
    sizes = []
    if disk is not None:
        largest = f" (largest {max(disk, key=lambda rig: disk[rig])})" if len(disk) > 1 else ""
        sizes.append(f"{_size(sum(disk.values()))} in {len(disk)} rig(s){largest}")
    if free is not None:
        sizes.append(f"{_size(free)} free")
    if sizes:
        lines.append(f"  disk:       {', '.join(sizes)}")
    if ages:
        newest = min((a for a in ages.values() if a is not None), default=None)
        lines.append(f"  commits:    newest {_age(newest)}")
    if health.get("metrics_url"):
        lines.append(f"  metrics:    {health['metrics_url']}")
    return lines


def warnings(health: dict[str, Any], disk_at_start: int | None) -> list[tuple[str, str]]:
    """(what is wrong, the command that helps) for each threshold crossed."""
    found = []
    if health["latency_ms"] > LATENCY_WARN_MS:
        found.append((f"a query takes {health['latency_ms']:.0f} ms", "gt-dolt logs -n 200 (then gt-dolt restart)"))
    conns = health["connections"]
    if conns["max"] and conns["used"] >= CONNECTIONS_WARN * conns["max"]:
        found.append(
            (
                f"{conns['used']} of {conns['max']} connections in use",
                "find idle clients: gt-dolt sql -q 'SHOW PROCESSLIST' (idle ones close after dolt.wait_timeout)",
            )
        )
    if health["read_only"] and health.get("cluster_role") != "standby":  # a standby is read-only by design
        found.append(
            (
                "the server is read-only (a cluster standby, or read_only in dolt.server)",
                "gt-dolt cluster-status, or remove behavior.read_only from dolt.server",
            )
        )
    free = health.get("disk_free_bytes")
    if free is not None and free < DISK_FREE_WARN:
        found.append(
            (
                f"only {_size(free)} free on the data dir's filesystem: Dolt's writes fail when it fills",
                "free some space (gt-dolt logs --rotate; old backups), then gt-dolt doctor",
            )
        )
    total = sum((health.get("disk_bytes") or {}).values())
    if disk_at_start and total > DISK_GROWTH_WARN * disk_at_start and total - disk_at_start > DISK_GROWTH_FLOOR:
        found.append(
            (
                f"the rigs grew from {_size(disk_at_start)} to {_size(total)} since the start",
                'gt-dolt backup, then gt-dolt sql -q "CALL dolt_gc()" in the largest rig',
            )
        )
    return found
