"""`doctor` seeing the town as beads sees it: each rig's metadata against the server, orphan
databases, rogue servers."""

from __future__ import annotations

from ..beads import beads, beadslayout
from ..errors import AccessDenied
from ..files.datadir import scan_data_dir, some_of
from ..server.discovery import Observed
from ..server.rogues import find_rogues
from ..settings import DoltSettings
from ..sql import sqlclient
from ..town import Town
from .checks import FIX, Check, Fix


def _databases(town: Town, settings: DoltSettings, seen: Observed) -> tuple[list[str], int]:
    """The databases that exist (served when the server answers, else on disk) and the live port."""
    on_disk = scan_data_dir(town).names
    if seen.running is None:
        return on_disk, settings.port
    try:
        served = sqlclient.served_databases(settings.with_overrides(port=seen.running.port))
    except AccessDenied:
        served = None
    return (served if served is not None else on_disk), seen.running.port


def beads_checks(town: Town, settings: DoltSettings, seen: Observed) -> list[Check]:
    checks: list[Check] = []
    databases, port = _databases(town, settings, seen)
    known = {name.lower() for name in databases}
    held = beadslayout.outside_the_server(town)
    for rig in dict.fromkeys(found.rig for found in held):
        mine = [found for found in held if found.rig == rig]
        databases = [str(db.path) for found in mine for db in found.databases]
        if databases:
            what = (
                f"{', '.join(databases)} holds issues the server does not serve "
                "(bd reads them there; pointed at the server it would not see them)"
            )
            checks.append(Check(f"beads {rig}", "fail", what, "gt-dolt migrate"))
        else:  # a link or redirect not followed: what is behind it is not known
            checks.append(Check(f"beads {rig}", "warn", "; ".join(found.problem or "" for found in mine)))
    for b in beads.town_beads(town):
        name = f"beads {b.rig}"
        if any(found.rig == b.rig for found in held):
            continue  # reported above: its metadata is not the problem yet
        if b.problem is not None:
            checks.append(Check(name, "fail", b.problem, f"fix or remove it; {FIX} never writes through it"))
            continue
        wrong = []
        if b.mode != "server":
            wrong.append(f"mode {b.mode} (bd would use a database of its own, not the town's server)")
        if b.port != port:
            wrong.append(f"port {b.port} (the server is on {port})")
        host = (b.metadata or {}).get("dolt_server_host")
        if host not in (None, settings.host):
            wrong.append(f"host {host} (the server is on {settings.host})")
        if b.database is not None and b.database.lower() not in known:
            wrong.append(f"database {b.database}, which does not exist")
        said = f"{b.dir}: mode {b.mode}, port {b.port}, database {b.database}"
        if wrong:
            checks.append(
                Check(name, "fail", f"{b.dir} says {'; '.join(wrong)}: split brain", f"{FIX} (or gt-dolt fix-metadata)")
            )
        else:
            checks.append(Check(name, "ok", said))
    named = beads.names(town)
    unnamed = [db for db in scan_data_dir(town).names if db.lower() not in named]
    if unnamed:
        checks.append(
            Check(
                "beads databases",
                "ok",
                f"no beads metadata names {some_of(unnamed)} (kept; bd init --server there uses it)",
            )
        )
    rogues = find_rogues(town)
    if rogues:
        listed = "; ".join(r.describe() for r in rogues)
        pids = " ".join(f"--pid {r.pid}" for r in rogues[:1])
        checks.append(
            Check(
                "rogue servers",
                "fail",
                f"{listed}: Dolt servers of this town outside .dolt-data (a bd that started its own)",
                f"gt-dolt stop-rogue {pids}".rstrip() if len(rogues) == 1 else "gt-dolt stop-rogue",
            )
        )
    else:
        checks.append(Check("rogue servers", "ok", "no Dolt server serves a folder of this town other than .dolt-data"))
    return checks


def fix_beads(town: Town, settings: DoltSettings, seen: Observed) -> list[Fix]:
    """The safe fix: point every initialized beads dir at the server (metadata and port file)."""
    databases, port = _databases(town, settings, seen)
    plan = beads.point_at_server(town, settings, port, databases)
    done = [Fix(f"pointed the beads of rig {c.rig} at the server: {c.what} ({c.path})", True) for c in plan.changes]
    return done + [Fix(f"beads: {refusal}", False) for refusal in plan.not_done]
