"""Keeping every rig's beads (`bd`) pointed at the town's server: no split brain.

beads v1.0.0 finds its server from, in order: BEADS_DOLT_SERVER_PORT, `<beads dir>/dolt-server.port`,
`dolt.port` in the beads config.yaml, `dolt_server_port` in `<beads dir>/metadata.json`; the mode,
host, user and database from metadata.json.  The beads dir of rig `hq` is `<town>/.beads`; of another
rig `<town>/<rig>/mayor/rig/.beads` when that exists, else `<town>/<rig>/.beads` (gt's
FindRigBeadsDir), and a `redirect` in it is followed as bd follows it (ops/beads/beadslayout.py).

`start`, `migrate`, `fix-metadata` and `doctor --fix` touch only beads dirs that hold a metadata.json;
`init-rig` writes one where there is none, as gt's `init-rig` does (so gt counts the database as a
rig's, not an orphan).  Writes are atomic, 0600, never through a link, preserve every key we do not
own, and happen only when a value changes.  `dolt_server_port` in metadata.json is kept equal to the
real port rather than removed: bd reads its presence as "the server is managed externally" and then
never starts an embedded server of its own; `dolt-server.port` is kept equal where bd wrote one, and
never created (gt does not write it, and would not update it).  A `dolt_database` that names another
database that exists is never overwritten: it is reported.

A beads dir that still holds a database of its own (bd's embedded one, or its own server's) is never
pointed at the server: bd would then read the server's copy, which does not have those issues.  It
is reported with the remedy, `gt-dolt migrate`, which moves the data first.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import GastownError, RigError
from ..files import safefs
from ..files.datadir import scan_data_dir
from ..settings import DoltSettings, parse_port
from ..town import Town
from . import beadslayout

METADATA = "metadata.json"
PORT_FILE = "dolt-server.port"
METADATA_LIMIT = 1024 * 1024
HQ = "hq"


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
    start = beadslayout.metadata_dir(town, rig)
    if not os.path.lexists(start):  # most rigs: no beads dir, nothing to open safely
        return Beads(rig, start, None, None)
    where, problem = beadslayout.follow_redirects(town, start)
    if problem is not None:
        return Beads(rig, where, None, None, problem)
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
    refused: list[str]  # left as they are: a problem, or a database named that exists
    held: list[str]  # not pointed at the server: the beads dir still holds data (migrate first)

    @property
    def not_done(self) -> list[str]:
        return self.held + self.refused


def held_outside(town: Town, rig: str) -> str | None:
    """Why the rig's beads must not be pointed at the server yet (one line, with the remedy), or
    None: data its beads dirs still hold outside the server, or a link gt-dolt does not follow
    (which may lead to such data)."""
    found = beadslayout.rig_beads(town, rig)
    held = [str(db.path) for beads in found for db in beads.databases]
    if held:
        return f"rig {rig}: {', '.join(held)} holds issues the server does not serve: {MIGRATE}"
    problems = [beads.problem for beads in found if beads.problem]
    return f"rig {rig}: {problems[0]}" if problems else None


MIGRATE = "run gt-dolt migrate, which moves them into .dolt-data and then points bd at the server"


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
    plan = Plan([], {}, [], [])
    existing = {name.lower() for name in databases}
    seen: set[str] = set()  # rigs whose beads were looked at
    for beads in town_beads(town):
        seen.add(beads.rig)
        if beads.problem is not None:
            plan.refused.append(f"rig {beads.rig}: {beads.problem}")
            continue
        assert beads.metadata is not None
        held = held_outside(town, beads.rig)
        if held is not None:
            plan.held.append(f"{held} ({beads.dir / METADATA} was left as it is: bd keeps using that data)")
            continue
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
        if beads.port_file is not None and beads.port_file != port:
            plan.changes.append(Change(beads.rig, beads.dir / PORT_FILE, f"port {beads.port_file} -> {port}"))
            plan.writes[beads.dir / PORT_FILE] = str(port).encode()
    # Rigs with no database in .dolt-data yet, whose beads hold one: the same refusal, so that no
    # command that points beads at the server is silent about data it leaves outside.
    for found in beadslayout.outside_the_server(town):
        if found.rig in seen:
            continue
        seen.add(found.rig)
        if found.problem:
            plan.refused.append(f"rig {found.rig}: {found.problem}")
        else:
            held = ", ".join(str(db.path) for db in found.databases)
            plan.held.append(f"rig {found.rig}: {held} holds issues the server does not serve: {MIGRATE}")
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
        for refusal in plan.not_done:
            echo(f"beads: {refusal}")
    return plan


def new_metadata(settings: DoltSettings, port: int, rig: str) -> bytes:
    """metadata.json as gt's EnsureMetadata writes it for a new rig: sorted keys, two-space indent."""
    fields = wanted_fields(settings, port, rig)
    if fields["dolt_server_user"] == "root":
        del fields["dolt_server_user"]  # bd's default; gt does not write it
    return (json.dumps(fields, indent=2, sort_keys=True) + "\n").encode()


def refuse_if_held(town: Town, rig: str) -> None:
    """init-rig's guard, before anything is created: a rig whose beads hold data is migrated, not
    made anew (an empty database would hide those issues and block their migration)."""
    held = held_outside(town, rig)
    if held is not None:
        raise RigError(f"nothing was created: {held}")


def ensure_rig_metadata(town: Town, settings: DoltSettings, port: int, rig: str, databases: list[str]) -> list[str]:
    """What gt's init-rig does after creating the database: the rig's beads metadata points at it,
    written new (the beads dir made, 0700) where there is none; then every other rig's beads are
    pointed at the server as after a start.  Notes say what changed."""
    notes = []
    beads = read_beads(town, rig)
    if beads.metadata is None and beads.problem is None:
        try:
            if rig != beadslayout.HQ:
                safefs.ensure_dir(town.root / rig, root=town.root, mode=0o755)
            safefs.ensure_dir(beads.dir, root=town.root, mode=0o700)
            safefs.write_atomic(beads.dir / METADATA, new_metadata(settings, port, rig), mode=0o600, root=town.root)
            notes.append(f"wrote {beads.dir / METADATA}: bd and gt find rig {rig} at {settings.url_host}:{port}")
        except GastownError as exc:
            notes.append(f"the beads metadata of rig {rig} was not written: {exc}")
    return notes + sync_notes(town, settings, port, databases)


def sync_notes(town: Town, settings: DoltSettings, port: int, databases: list[str]) -> list[str]:
    """Point every rig's beads at the server after a start, init-rig or migrate; what changed, as
    notes.  Never fails the command that called it: what could not be done is a note too.
    """
    try:
        plan = point_at_server(town, settings, port, databases)
    except GastownError as exc:
        return [f"the beads metadata was not checked: {exc}"]
    notes = [f"pointed the beads of rig {c.rig} at the server: {c.what} ({c.path})" for c in plan.changes]
    return notes + [f"beads: {refusal}" for refusal in plan.not_done]


def names(town: Town, rigs: list[str] | None = None) -> Mapping[str, list[str]]:
    """Database (lowercase) -> the rigs whose beads metadata names it."""
    found: dict[str, list[str]] = {}
    for beads in town_beads(town, rigs):
        if beads.metadata is not None and beads.database:
            found.setdefault(beads.database.lower(), []).append(beads.rig)
    return found
