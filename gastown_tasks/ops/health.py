"""How the running server is doing: latency, connections, disk, read-only, commit age.

Read-only: a few SELECTs on one connection and a walk of the rig folders; nothing is ever written
into a rig database.  `doctor` warns on the thresholds Gas Town's daemon uses (latency over 1 s,
connections at 80 %, read-only, disk growth).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

from . import sqlclient
from .rigs import scan_data_dir
from .settings import DoltSettings
from .town import Town

LATENCY_WARN_MS = 1000.0
CONNECTIONS_WARN = 0.8
DISK_GROWTH_WARN = 2.0  # times the size at start ...
DISK_GROWTH_FLOOR = 100 * 1024 * 1024  # ... and at least this many bytes more
COMMIT_AGE_RIGS = 50  # rigs whose newest commit is looked up (one query for all of them)


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
    union = " UNION ALL ".join(f"SELECT '{rig}', MAX(`date`) FROM `{rig}`.dolt_log" for rig in rigs)
    cur.execute(union)  # rig names are [A-Za-z0-9_-] only: validated before they ever became rigs
    now = datetime.now(UTC)
    ages: dict[str, float | None] = {}
    for rig, newest in cur.fetchall():
        if newest is None:
            ages[rig] = None
            continue
        moment = newest if newest.tzinfo else newest.replace(tzinfo=UTC)
        ages[rig] = round((now - moment).total_seconds(), 1)
    return ages


def measure(town: Town, settings: DoltSettings, port: int) -> dict[str, Any]:
    """One reading of the server's health; raises SqlFailure/AccessDenied when it does not answer."""
    target = settings.with_overrides(port=port)

    def work(conn: Any) -> dict[str, Any]:
        return measure_on(conn, town, target, sqlclient.show_databases(conn))

    return sqlclient.call(target, work, what="measure the server's health")


def measure_on(conn: Any, town: Town, settings: DoltSettings, served: list[str]) -> dict[str, Any]:
    """The health, read on an open connection (raises PyMySQL's errors)."""
    with conn.cursor() as cur:
        started = time.perf_counter()
        cur.execute("SELECT 1")
        cur.fetchall()
        latency = (time.perf_counter() - started) * 1000
        cur.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST")
        (used,) = cur.fetchone()
        cur.execute("SELECT @@GLOBAL.max_connections, @@GLOBAL.read_only")
        maximum, read_only = cur.fetchone()
        role = None
        if settings.cluster:  # the variable exists only on a clustered server
            cur.execute("SELECT @@GLOBAL.dolt_cluster_role")
            (role,) = cur.fetchone()
        ages = _ages(cur, served[:COMMIT_AGE_RIGS])
    return {
        "latency_ms": round(latency, 2),
        "connections": {"used": int(used), "max": int(maximum)},
        "read_only": bool(int(read_only)),
        "cluster_role": role or None,
        "newest_commit_age_seconds": ages,
        "disk_bytes": disk_bytes(town),
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
    disk = health["disk_bytes"]
    ages = health["newest_commit_age_seconds"]
    lines = [
        f"  health:     {health['latency_ms']:.1f} ms per query, {conns['used']}/{conns['max']} connections"
        + (", READ-ONLY" if health["read_only"] else ""),
        f"  disk:       {_size(sum(disk.values()))} in {len(disk)} rig(s)"
        + (f" (largest {max(disk, key=lambda rig: disk[rig])})" if len(disk) > 1 else ""),
    ]
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
                "find idle clients: gt-dolt sql -q 'SHOW PROCESSLIST' (dolt.wait_timeout closes idle ones)",
            )
        )
    if health["read_only"] and health.get("cluster_role") != "standby":  # a standby is read-only by design
        found.append(
            (
                "the server is read-only (a cluster standby, or read_only in dolt.server)",
                "gt-dolt cluster-status, or remove behavior.read_only from dolt.server",
            )
        )
    total = sum(health["disk_bytes"].values())
    if disk_at_start and total > DISK_GROWTH_WARN * disk_at_start and total - disk_at_start > DISK_GROWTH_FLOOR:
        found.append(
            (
                f"the rigs grew from {_size(disk_at_start)} to {_size(total)} since the start",
                'gt-dolt backup, then gt-dolt sql -q "CALL dolt_gc()" in the largest rig',
            )
        )
    return found
