"""A town whose server runs on another host: used here, managed there.

`dolt.host` (GT_DOLT_HOST) names the server.  When it is not an address of this machine, the town
uses a server it does not manage: no process is started, stopped or signalled, and no run file is
written; status, list, sql, init-rig and doctor talk to it over the MySQL protocol.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from typing import Any

from . import sqlclient
from .errors import AccessDenied, RemoteServer
from .serverstatus import DENIED, RUNNING, STOPPED, Status
from .settings import DoltSettings

WILDCARDS = {"0.0.0.0", "::"}


def _local_addresses() -> set[str]:
    import psutil

    found = set(WILDCARDS)
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family in (socket.AF_INET, socket.AF_INET6):
                found.add(address.address.split("%")[0])
    return found


def _is_local_ip(text: str, local: set[str]) -> bool:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    return ip.is_loopback or str(ip) in local


def is_remote(settings: DoltSettings) -> bool:
    """The host is neither loopback nor one of this machine's addresses (names are resolved)."""
    if settings.is_loopback:
        return False
    local = _local_addresses()
    try:
        ipaddress.ip_address(settings.host)
        candidates = [settings.host]
    except ValueError:
        try:
            candidates = list({str(info[4][0]) for info in socket.getaddrinfo(settings.host, None)})
        except OSError:
            return True  # a name that does not resolve is not this machine
    return not any(_is_local_ip(candidate, local) for candidate in candidates)


def refuse_if_remote(settings: Any, what: str) -> None:
    if isinstance(settings, DoltSettings) and is_remote(settings):
        raise RemoteServer.refuses(what, settings.address)


def latency_ms(settings: DoltSettings) -> float:
    """One round trip of a trivial query on a fresh connection, in milliseconds."""

    def work(conn: Any) -> float:
        started = time.perf_counter()
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchall()
        return (time.perf_counter() - started) * 1000

    return sqlclient.call(settings, work, what="measure the latency")


def remote_status(settings: DoltSettings) -> Status:
    notes: list[str] = []
    code = RUNNING
    try:
        served = sqlclient.served_databases(settings)
        sql = "answering" if served is not None else "not answering"
        if served is None:
            code = STOPPED
            notes.append(f"nothing answers on {settings.address} (unreachable, or the server is down)")
    except AccessDenied as exc:
        served, sql, code = None, "refused credentials", DENIED
        notes.append(str(exc))
    return Status(
        running=served is not None,
        exit_code=code,
        pid=None,
        host=settings.host,
        port=settings.port,
        data_dir="",
        databases=served or [],
        databases_source="served",
        sql=sql,  # type: ignore[arg-type]
        started_at=None,
        uptime_seconds=None,
        connection=settings.connection_string,
        pid_file_left=False,
        found_via=None,
        remote=True,
        notes=notes,
    )
