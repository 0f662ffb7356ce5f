"""What `list` shows: each rig database on disk, whether the running server serves it, and which
rigs' beads name it.  Read-only, and apart from the rest of rig administration so that `list`
imports nothing it does not use."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from ..beads import beads
from ..files.datadir import scan_data_dir
from ..server.discovery import find_running
from ..settings import DoltSettings
from ..sql import sqlclient
from ..town import Town


class RigEntry(NamedTuple):
    name: str
    path: Path
    served: bool | None  # None when the server is not running
    linked: bool = False  # a symlinked folder: Dolt never serves it
    beads: tuple[str, ...] = ()  # the rigs whose beads metadata names this database
    untextual: bool = False  # its folder name is not UTF-8: Dolt serves it, no command can name it


def list_rigs(town: Town, settings: DoltSettings, notes: list[str] | None = None) -> list[RigEntry]:
    """Every rig on disk; `notes` gets what the user should know about the listing itself."""
    found = scan_data_dir(town)
    running = find_running(town, settings)[0] if found.rigs else None
    served: list[str] | None = None
    if running is not None:
        target = settings.with_overrides(port=running.port)
        served = sqlclient.served_databases(target)
        if served is None and notes is not None:
            notes.append(
                f"the server (pid {running.pid}) does not answer SQL on {target.address}: whether it serves "
                "each rig is not known; see: gt-dolt doctor"
            )
    have = {name.lower() for name in served} if served is not None else None
    named = beads.names(town, found.names)
    entries = [
        RigEntry(
            rig.name,
            rig.path,
            None if have is None else rig.name.lower() in have,
            beads=tuple(named.get(rig.name.lower(), ())),
        )
        for rig in found.rigs
    ]
    entries += [RigEntry(path.name, path, False, linked=True) for path in found.linked]
    entries += [RigEntry(path.name, path, None, untextual=True) for path in found.untextual]
    return sorted(entries, key=lambda entry: entry.name)
