"""Keeping every rig's beads (`bd`) pointed at the town's server: no split brain.

beads v1.0.0 finds its server from, in order: BEADS_DOLT_SERVER_PORT, `<beads dir>/dolt-server.port`,
`dolt.port` in the beads config.yaml, `dolt_server_port` in `<beads dir>/metadata.json`; the mode,
host, user and database from metadata.json.  The beads dir of rig `hq` is `<town>/.beads`; of another
rig `<town>/<rig>/mayor/rig/.beads` when that exists, else `<town>/<rig>/.beads`.

We only touch beads dirs that `bd init` made (they hold a metadata.json): never create one (bd init
refuses a dir that has metadata.json).  Writes are atomic, 0600, never through a link, preserve
every key we do not own, and happen only when a value changes.  `dolt_server_port` in metadata.json
is kept equal to the real port rather than removed: bd reads its presence as "the server is
managed externally" and then never starts an embedded server of its own.  A `dolt_database` that
names another database that exists is never overwritten: it is reported.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from . import safefs
from .errors import GastownError
from .rigs import scan_data_dir
from .settings import DoltSettings, parse_port
from .town import Town

METADATA = "metadata.json"
PORT_FILE = "dolt-server.port"
METADATA_LIMIT = 1024 * 1024
HQ = "hq"


def beads_dir(town: Town, rig: str) -> Path:
    if rig == HQ:
        return town.root / ".beads"
    nested = os.path.join(town.root, rig, "mayor", "rig", ".beads")
    try:
        if stat.S_ISDIR(os.lstat(nested).st_mode):  # a real folder, not a link to one
            return Path(nested)
    except OSError:
        pass
    return town.root / rig / ".beads"


class Beads(NamedTuple):
    """One rig's beads dir as bd would read it."""

    rig: str
    dir: Path
    metadata: dict[str, Any] | None  # None: no metadata.json (bd init has not run there)
    port_file: int | None
    problem: str | None = None

    @property
    def mode(self) -> str:
        return str((self.metadata or {}).get("dolt_mode") or "embedded")

    @property
    def port(self) -> int | None:
        """The port bd uses: the port file first, then metadata's deprecated field."""
        if self.port_file is not None:
            return self.port_file
        return parse_port((self.metadata or {}).get("dolt_server_port"))

    @property
    def database(self) -> str | None:
        value = (self.metadata or {}).get("dolt_database")
        return value if isinstance(value, str) else None


def read_beads(town: Town, rig: str) -> Beads:
    where = beads_dir(town, rig)
    if not os.path.lexists(where):  # most rigs: no beads dir, nothing to open safely
        return Beads(rig, where, None, None)
    try:
        raw = safefs.read_bytes(where / METADATA, METADATA_LIMIT, root=town.root)
        port_raw = safefs.read_bytes(where / PORT_FILE, 64, root=town.root)
    except GastownError as exc:
        return Beads(rig, where, None, None, str(exc))
    if raw is None:
        return Beads(rig, where, None, None)
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return Beads(rig, where, None, None, f"{where / METADATA} is not valid JSON")
    if not isinstance(data, dict):
        return Beads(rig, where, None, None, f"{where / METADATA} does not hold a JSON object")
    port = parse_port(port_raw.decode("ascii", errors="replace").strip()) if port_raw is not None else None
    return Beads(rig, where, data, port)


def town_beads(town: Town, rigs: list[str] | None = None) -> list[Beads]:
    """The beads of every rig on disk (or of `rigs`, when the caller has scanned them) that has a
    beads dir with metadata (or a problem there)."""
    found = [read_beads(town, rig) for rig in (scan_data_dir(town).names if rigs is None else rigs)]
    return [b for b in found if b.metadata is not None or b.problem is not None]


class Change(NamedTuple):
    rig: str
    path: Path
    what: str  # e.g. "dolt_server_port 3307 -> 3308"


class Plan(NamedTuple):
    """What pointing every rig's beads at the server would change, and what it must not."""

    changes: list[Change]
    writes: dict[Path, bytes]
    refused: list[str]


def wanted_fields(settings: DoltSettings, port: int, rig: str) -> dict[str, Any]:
    return {
        "database": "dolt",
        "backend": "dolt",
        "dolt_mode": "server",
        "dolt_server_host": settings.host,
        "dolt_server_port": port,
        "dolt_server_user": settings.user,
        "dolt_database": rig,
    }


def plan_metadata(town: Town, settings: DoltSettings, port: int, databases: list[str]) -> Plan:
    """The changes that point each initialized beads dir at `settings.host`:`port`.

    `databases` are the ones that exist (served, or on disk): a dolt_database naming one of them,
    other than the rig's own, is left as it is and reported.
    """
    plan = Plan([], {}, [])
    existing = {name.lower() for name in databases}
    for beads in town_beads(town):
        if beads.problem is not None:
            plan.refused.append(f"rig {beads.rig}: {beads.problem}")
            continue
        assert beads.metadata is not None
        current = dict(beads.metadata)
        updated = dict(current)
        for key, value in wanted_fields(settings, port, beads.rig).items():
            if key == "dolt_database" and current.get(key) not in (None, "", beads.rig):
                named = str(current[key])
                if named.lower() in existing:
                    plan.refused.append(
                        f"rig {beads.rig}: {beads.dir / METADATA} names database {named}, which exists; left as "
                        f"it is (point it at {beads.rig} yourself if that is what you want)"
                    )
                    continue
            if key == "dolt_server_user" and key not in current and value == "root":
                continue  # bd's default; do not add a key that changes nothing
            if current.get(key) != value:
                plan.changes.append(Change(beads.rig, beads.dir / METADATA, f"{key} {current.get(key)!r} -> {value!r}"))
                updated[key] = value
        if updated != current:
            plan.writes[beads.dir / METADATA] = json.dumps(updated, indent=2).encode()
        if beads.port_file != port:
            plan.changes.append(Change(beads.rig, beads.dir / PORT_FILE, f"port {beads.port_file} -> {port}"))
            plan.writes[beads.dir / PORT_FILE] = str(port).encode()
    return plan


def apply(town: Town, plan: Plan) -> None:
    """Write each changed file; one that cannot be written is reported, never half-written."""
    for path, data in plan.writes.items():
        try:
            safefs.write_atomic(path, data, mode=0o600, root=town.root)
        except GastownError as exc:
            plan.refused.append(f"could not write {path}: {exc}")
            plan.changes[:] = [change for change in plan.changes if change.path != path]


def point_at_server(
    town: Town, settings: DoltSettings, port: int, databases: list[str], echo: Callable[[str], None] | None = None
) -> Plan:
    """Plan and apply (the caller holds the town lock); each change and refusal is echoed."""
    plan = plan_metadata(town, settings, port, databases)
    apply(town, plan)
    if echo is not None:
        for change in plan.changes:
            echo(f"beads of rig {change.rig}: {change.what} ({change.path})")
        for refusal in plan.refused:
            echo(f"beads: {refusal}")
    return plan


def sync_notes(town: Town, settings: DoltSettings, port: int, databases: list[str]) -> list[str]:
    """Point every rig's beads at the server after a start, init-rig or migrate; what changed, as
    notes.  Never fails the command that called it: what could not be done is a note too.
    """
    try:
        plan = point_at_server(town, settings, port, databases)
    except GastownError as exc:
        return [f"the beads metadata was not checked: {exc}"]
    notes = [f"pointed the beads of rig {c.rig} at the server: {c.what} ({c.path})" for c in plan.changes]
    return notes + [f"beads: {refusal}" for refusal in plan.refused]


def names(town: Town, rigs: list[str] | None = None) -> Mapping[str, list[str]]:
    """Database (lowercase) -> the rigs whose beads metadata names it."""
    found: dict[str, list[str]] = {}
    for beads in town_beads(town, rigs):
        if beads.metadata is not None and beads.database:
            found.setdefault(beads.database.lower(), []).append(beads.rig)
    return found
