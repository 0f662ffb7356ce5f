"""A town whose server runs on another host: used here, managed there.

`dolt.host` (GT_DOLT_HOST) names the server.  When it is not an address of this machine, the town
uses a server it does not manage: no process is started, stopped or signalled, and no run file is
written; status, list, sql, init-rig and doctor talk to it over the MySQL protocol.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..errors import AccessDenied, GastownError
from ..settings import DoltSettings
from ..sql import sqlclient

if TYPE_CHECKING:  # status and cluster are imported by the commands that use them, not by every `is_remote`
    from ..server.serverstatus import Status


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
    from ..cluster.cluster import replication_state
    from ..server.serverstatus import DENIED, RUNNING, STOPPED, Status

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
    from ..files.datadir import clashing, validate_rig_name
    from ..rigs.rigadmin import create_through_server

    validate_rig_name(name)
    taken = clashing(name, databases(settings))
    if taken is not None:
        from ..errors import RigError

        raise RigError(f"the server at {settings.address} already serves {taken}")
    create_through_server(settings, name)


def checks(settings: DoltSettings) -> list[Any]:
    """doctor for a remote server: reachable, our credentials accepted, latency, its cluster role."""
    from ..cluster.cluster import replication_state
    from ..doctor.checks import Check
    from ..server.health import LATENCY_WARN_MS

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
