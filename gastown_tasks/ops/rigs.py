"""Rig databases on disk: one Dolt database per rig under <town>/.dolt-data/."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import RigError
from .town import Town

RIG_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")  # always fullmatch: `$` allows a "\n"
RESERVED = frozenset({"information_schema", "mysql", "performance_schema", "sys", "dolt_cluster"})


@dataclass(frozen=True)
class Rig:
    name: str
    path: Path


def is_dolt_database(path: Path) -> bool:
    """A folder holds a Dolt database when it has .dolt/ with a manifest (read-only check)."""
    return (path / ".dolt" / "noms" / "manifest").is_file()


def rigs_on_disk(town: Town) -> list[Rig]:
    try:
        entries = sorted(town.data_dir.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [
        Rig(entry.name, entry)
        for entry in entries
        if not entry.name.startswith(".") and entry.is_dir() and is_dolt_database(entry)
    ]


def is_valid_rig_name(name: object) -> bool:
    return isinstance(name, str) and RIG_NAME.fullmatch(name) is not None and name.lower() not in RESERVED


def validate_rig_name(name: str) -> str:
    """Letters, digits, _ and -, 1-64 characters, not starting with -, not reserved."""
    if not isinstance(name, str) or not RIG_NAME.fullmatch(name):
        raise RigError(
            f"invalid rig name {name!r}: use 1-64 letters, digits, '_' or '-', "
            "not starting with '-' (for example: gastown)"
        )
    if name.lower() in RESERVED:
        raise RigError(f"invalid rig name {name!r}: the server reserves it; choose another name")
    return name
