"""Rig databases on disk: one Dolt database per rig under <town>/.dolt-data/.

One rule for rig names and one list of names the server reserves; both init-rig and migrate use
them.  A folder in .dolt-data is a rig only when it is a real folder holding a Dolt database: a
symlinked rig is never served by Dolt, so it is reported, not listed as a rig.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import NamedTuple

from ..errors import ExitCode, RigError, UnsafeFile
from ..town import Town
from . import privilege

RIG_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")  # always fullmatch: `$` allows a "\n"
# The scratch database of the write probe (ops/server/wedge.py): served, never a rig, never backed up.
PROBE_DATABASE = "__gastown_probe"
# Databases every server shows that are not rigs (dolt_cluster in a clustered server).
RESERVED = frozenset({"information_schema", "mysql", "performance_schema", "sys", "dolt_cluster", PROBE_DATABASE})


class Rig(NamedTuple):
    name: str
    path: Path


def is_dolt_database(path: str | os.PathLike[str]) -> bool:
    """A folder holds a Dolt database when it has .dolt/ with a manifest (read-only check)."""
    return os.path.isfile(os.path.join(path, ".dolt", "noms", "manifest"))


class DataDir(NamedTuple):
    """What .dolt-data holds: the rigs, and what is there but cannot be served."""

    rigs: tuple[Rig, ...]
    linked: tuple[Path, ...] = ()  # symlinked rig folders: Dolt does not serve them
    foreign: tuple[tuple[Path, str], ...] = ()  # (rig, why) databases a server of ours must not open
    clashes: tuple[tuple[str, ...], ...] = ()  # rig names equal but for case: Dolt serves one of them
    untextual: tuple[Path, ...] = ()  # databases whose folder name is not UTF-8: no rig can be named so

    @property
    def names(self) -> list[str]:
        return [rig.name for rig in self.rigs]

    def refused(self, name: str | None = None) -> str | None:
        """Why rig `name` (or, with None, any rig) is on disk but not a rig a server of ours opens."""
        return next((f"{path}: {why}" for path, why in self.foreign if name in (None, path.name)), None)

    def refusals(self) -> list[str]:
        """What makes a start refuse: each a sentence naming the path and what to do."""
        found = [
            f"{path} is a symlink (Dolt never serves a linked database): move the database itself into "
            f"{path.parent} (or bind-mount it there) and remove the link"
            for path in self.linked
        ]
        found += [f"{path}: {why}" for path, why in self.foreign]
        found += [
            f"rigs {' and '.join(names)} differ only by case: the server would serve one of them under both names; "
            "rename one of the folders"
            for names in self.clashes
        ]
        return found


def _foreign(path: str) -> str | None:
    """Why a rig folder must not be opened by a server of ours: a link inside, or someone else's.

    Plain strings, not Paths: this runs for every rig on every status and list.
    """
    for where in (path, os.path.join(path, ".dolt"), os.path.join(path, ".dolt", "noms")):
        try:
            st = os.lstat(where)
        except FileNotFoundError:
            continue
        except OSError as exc:
            return f"cannot read {where} ({exc.strerror})"
        if stat.S_ISLNK(st.st_mode):
            return f"{where} is a symlink: the server would follow it out of the town; remove it"
        if st.st_uid != os.geteuid():
            return (
                f"{where} belongs to uid {st.st_uid}, not to you: a server of yours does not open another "
                "user's database (its links would be followed with your rights); run gt-dolt as that user"
            )
        found = privilege.writer(st, os.geteuid())
        if found is not None:
            bits = "o-w" if found.kind == "every user" else "g-w"
            return f"{where} is writable by {found.who}; chmod {bits} {where}"
    return None


def scan_data_dir(town: Town) -> DataDir:
    """Rigs and symlinked folders in .dolt-data; a .dolt-data that is not a real folder is refused."""
    try:
        st = os.lstat(town.data_dir)
    except FileNotFoundError:
        return DataDir(())
    if not stat.S_ISDIR(st.st_mode):
        kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a folder"
        raise UnsafeFile(
            f"{town.data_dir} is {kind}; the rig databases must live in a real folder of the town "
            f"(to keep them on another disk, bind-mount it there): move it aside (mv {town.data_dir} "
            f"{town.data_dir}.bak), then retry"
        )
    privilege.begin()
    rigs: list[Rig] = []
    linked: list[Path] = []
    foreign: list[tuple[Path, str]] = []
    try:
        entries = sorted(os.scandir(town.data_dir), key=lambda e: e.name)
    except OSError:
        return DataDir(())
    untextual: list[Path] = []
    for entry in entries:
        if entry.name.startswith(".") or entry.name == PROBE_DATABASE:
            continue
        if not is_text(entry.name):
            if entry.is_dir(follow_symlinks=False) and os.path.lexists(os.path.join(entry.path, ".dolt")):
                untextual.append(Path(entry.path))
            continue
        if entry.is_symlink():
            if RIG_NAME.fullmatch(entry.name) and (is_dolt_database(entry.path) or os.path.isdir(entry.path)):
                linked.append(Path(entry.path))
            continue
        if entry.is_dir(follow_symlinks=False) and os.path.lexists(os.path.join(entry.path, ".dolt")):
            why = _foreign(entry.path)
            if why is not None:
                foreign.append((Path(entry.path), why))
            elif is_dolt_database(entry.path):
                rigs.append(Rig(entry.name, Path(entry.path)))
    by_case: dict[str, list[str]] = {}
    for rig in rigs:
        by_case.setdefault(rig.name.lower(), []).append(rig.name)
    clashes = tuple(tuple(names) for names in by_case.values() if len(names) > 1)
    return DataDir(tuple(rigs), tuple(linked), tuple(foreign), clashes, tuple(untextual))


def is_text(name: str) -> bool:
    """A file name that is UTF-8 text (os gives other bytes as lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def untextual_note(paths: tuple[Path, ...]) -> str:
    """One line for databases whose folder names are not text: served by Dolt, named by nothing."""
    named = ", ".join(str(path) for path in paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
    return (
        f"not a rig, as its folder name is not UTF-8 text (no command can name it): {named}; "
        "rename the folder to a rig name (letters, digits, _ and -)"
    )


def some_of(names: list[str], shown: int = 10) -> str:
    """Names for one line of text: a town of 1000 rigs gets the first few and a count
    (`gt-dolt list` and --json give them all)."""
    if len(names) <= shown + 2:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more"


def rigs_on_disk(town: Town) -> list[Rig]:
    return list(scan_data_dir(town).rigs)


def is_valid_rig_name(name: object) -> bool:
    return isinstance(name, str) and RIG_NAME.fullmatch(name) is not None and name.lower() not in RESERVED


def validate_rig_name(name: object) -> str:
    """Letters, digits, _ and -, 1-64 characters, not starting with -, not reserved."""
    if not isinstance(name, str) or not RIG_NAME.fullmatch(name):
        # Invoke takes whatever follows init-rig as the name, `--help` included
        asking = " (a command's help: gt-dolt --help init-rig)" if isinstance(name, str) and name[:1] == "-" else ""
        raise RigError(
            f"invalid rig name {name!r}: use 1-64 letters, digits, '_' or '-', "
            f"not starting with '-' (for example: gastown){asking}",
            exit_code=ExitCode.CONFIG,
        )
    if name.lower() in RESERVED:
        raise RigError(
            f"invalid rig name {name!r}: the server reserves it; choose another name", exit_code=ExitCode.CONFIG
        )
    return name


def clashing(name: str, existing: list[str]) -> str | None:
    """An existing rig whose name equals `name` but for case (MySQL names ignore case)."""
    return next((other for other in existing if other.lower() == name.lower()), None)
