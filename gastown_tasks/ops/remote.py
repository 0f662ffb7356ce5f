"""A town whose server runs on another host: used here, managed there.

`dolt.host` (GT_DOLT_HOST) names the server.  When it is not an address of this machine, the town
uses a server it does not manage: no process is started, stopped or signalled, and no run file is
written; status, list, sql, init-rig and doctor talk to it over the MySQL protocol.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from typing import TYPE_CHECKING, Any

from . import sqlclient
from .errors import AccessDenied, GastownError
from .settings import DoltSettings

if TYPE_CHECKING:  # status and cluster are imported by the commands that use them, not by every `is_remote`
    from .serverstatus import Status

WILDCARDS = {"0.0.0.0", "::"}
RESOLVE_TIMEOUT = 2.0  # seconds a host name may take to resolve (getaddrinfo has no timeout of its own)


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
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None  # ::ffff:127.0.0.1
    return ip.is_loopback or str(ip) in local or bool(mapped and (mapped.is_loopback or str(mapped) in local))


def addresses_of(host: str, timeout: float = RESOLVE_TIMEOUT) -> set[str]:
    """The IP addresses a host stands for (an address stands for itself); empty when a name does
    not resolve within `timeout`."""
    try:
        return {str(ipaddress.ip_address(host))}
    except ValueError:
        pass
    import threading

    found: list[set[str]] = []

    def resolve() -> None:
        try:
            found.append({str(info[4][0]).split("%")[0] for info in socket.getaddrinfo(host, None)})
        except (OSError, UnicodeError):
            found.append(set())

    worker = threading.Thread(target=resolve, daemon=True)  # a hung resolver is left behind, not waited for
    worker.start()
    worker.join(timeout)
    return found[0] if found else set()


def is_local_host(host: str) -> bool:
    """The host is loopback, a wildcard, or an address of this machine, under any spelling (names
    are resolved)."""
    candidates = addresses_of(host)
    if not candidates:
        return False
    local = _local_addresses()
    return any(_is_local_ip(candidate, local) for candidate in candidates)


def is_remote(settings: DoltSettings) -> bool:
    """The host is neither loopback nor one of this machine's addresses (names are resolved)."""
    return not settings.is_loopback and not is_local_host(settings.host)


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
    from .cluster import replication_state
    from .serverstatus import DENIED, RUNNING, STOPPED, Status

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
    cluster = None
    if served is not None:
        try:
            state = replication_state(settings)
            cluster = state if state.get("role") else None
        except GastownError:
            cluster = None
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
        cluster=cluster,
        notes=notes,
    )


def databases(settings: DoltSettings) -> list[str]:
    """What the remote server serves; a server that does not answer is an error here."""
    return sqlclient.call(settings, sqlclient.show_databases, what=f"list the databases of {settings.address}")


def create_rig(settings: DoltSettings, name: str) -> None:
    """init-rig on a remote server: CREATE DATABASE through it (nothing is written here)."""
    from .rigadmin import create_through_server
    from .rigs import clashing, validate_rig_name

    validate_rig_name(name)
    taken = clashing(name, databases(settings))
    if taken is not None:
        from .errors import RigError

        raise RigError(f"the server at {settings.address} already serves {taken}")
    create_through_server(settings, name)


def checks(settings: DoltSettings) -> list[Any]:
    """doctor for a remote server: reachable, our credentials accepted, latency, its cluster role."""
    from .checks import Check
    from .cluster import replication_state
    from .health import LATENCY_WARN_MS

    found = [Check("server", "ok", f"{settings.address} is remote: managed on its host, used from here")]
    try:
        ms = latency_ms(settings)
    except AccessDenied as exc:
        return [*found, Check("credentials", "fail", str(exc), "set the password the server expects")]
    except GastownError as exc:
        return [*found, Check("reachable", "fail", str(exc), "check the address, the firewall, and that it runs")]
    found.append(Check("reachable", "ok", "answers; our credentials are accepted"))
    if ms > LATENCY_WARN_MS:
        found.append(Check("latency", "warn", f"{ms:.1f} ms for a query", "check the network"))
    else:
        found.append(Check("latency", "ok", f"{ms:.1f} ms for a query"))
    try:
        state = replication_state(settings)
    except GastownError:
        return found
    if state.get("role"):
        found.append(
            Check(
                "cluster",
                "ok" if state["role"] == "primary" else "warn",
                f"it is {state['role']} at epoch {state['epoch']}",
                None if state["role"] == "primary" else "point dolt.host at the cluster's primary",
            )
        )
    return found
