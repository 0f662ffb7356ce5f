"""`init`: repair rigs whose beads say "server mode" but whose database is not in .dolt-data.

bd then fails (or, worse, quietly makes an empty database of its own).  As gt v1.0's `gt dolt
init`: where the rig's beads dir still holds its data (bd's embedded database, or its own
server's), that data is migrated (ops/migrate.py, this rig only: verified, moved whole); else an
empty database is created under the name the metadata gives (as init-rig makes one: through the
server when it runs).  A rig whose database exists is not touched, so a second run does nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from ..beads import beads, beadslayout
from ..build.binary import find_dolt
from ..errors import GastownError
from ..files.datadir import is_valid_rig_name, scan_data_dir
from ..files.locking import town_lock
from ..server.discovery import find_running
from ..settings import DoltSettings
from ..town import Town
from . import rigadmin
from .migrate import migrate_town

Echo = Callable[[str], None]


class Broken(NamedTuple):
    rig: str
    metadata: Path  # the metadata.json that names the missing database
    database: str
    local: Path | None  # the rig's data outside the server, to migrate; None: create the database
    action: str = ""  # "migrate", "create", or "failed: why"

    def as_dict(self) -> dict[str, object]:
        return {
            "rig": self.rig,
            "metadata": str(self.metadata),
            "database": self.database,
            "local": str(self.local) if self.local else None,
            "action": self.action,
        }


def find_broken(town: Town) -> list[Broken]:
    """Every rig whose beads metadata is in server mode and names a database .dolt-data lacks."""
    existing = {name.lower() for name in scan_data_dir(town).names}
    found = []
    for rig in beadslayout.rig_folders(town):
        read = beads.read_beads(town, rig)
        if read.metadata is None or read.problem is not None or read.mode != "server":
            continue
        database = read.database or rig
        if database.lower() in existing:
            continue
        local = [db.path for b in beadslayout.rig_beads(town, rig) for db in b.databases]
        action = "migrate" if local else "create"
        found.append(Broken(rig, read.dir / beads.METADATA, database, local[0] if local else None, action))
    return found


def _create(town: Town, settings: DoltSettings, broken: Broken) -> str:
    if not is_valid_rig_name(broken.database):
        return f"failed: {broken.metadata} names {broken.database!r}, which is no valid database name; fix it"
    if broken.database != broken.rig:  # init-rig would write metadata for a rig of that name
        with town_lock(town, wait=settings.lock_wait):
            running = find_running(town, settings)[0]
            if running is not None:
                rigadmin.create_through_server(settings.with_overrides(port=running.port), broken.database)
            else:
                rigadmin.init_on_disk(town, broken.database, find_dolt(settings.binary), None)
        return "create"
    rigadmin.init_rig(town, settings, broken.rig)
    return "create"


def repair(town: Town, settings: DoltSettings, *, dry_run: bool = False, echo: Echo = print) -> list[Broken]:
    """Find, and (not `dry_run`) repair; one rig's failure is reported and the others repaired."""
    broken = find_broken(town)
    if dry_run:
        return broken
    done = []
    for item in broken:
        try:
            if item.local is not None:
                report = migrate_town(town, settings, echo=echo, only=frozenset({item.rig}))
                action = "migrate" if report.moved else f"failed: {'; '.join(s.why for s in report.skipped)}"
            else:
                action = _create(town, settings, item)
        except GastownError as exc:
            action = f"failed: {exc}"
        done.append(item._replace(action=action))
    return done
