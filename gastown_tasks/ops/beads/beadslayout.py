"""Where beads (`bd`) keeps a rig's issues: its beads dir, redirects, and databases outside the server.

The rigs, as Gas Town's `gt` v1.0 names them: the town's own `.beads` is rig `hq`; every other
top-level folder of the town (not hidden, not a link) is the rig of that name.  A rig's beads dir
is, as bd and gt find it, `<folder>/mayor/rig/.beads` when that exists, else `<folder>/.beads`;
a `redirect` file in it names another beads dir (relative to the folder that holds the beads dir,
or absolute), followed as gt's `ResolveBeadsDir` follows it: at most 4 hops, a redirect to itself
ignored.  A redirect that leaves the town, or passes a symlink on the way, is not followed: it is
reported.

Databases a beads dir can hold outside the town's server (each a folder with `.dolt` in it):
- `embeddeddolt/<db>/`: bd 1.0's default (`bd init`), with `"dolt_mode": "embedded"`;
- `dolt/<db>/`: bd running a server of its own (`bd init --server --prefix P`: `dolt/P`), or the
  older `dolt/beads` layout.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import NamedTuple

from ..errors import GastownError
from ..files import safefs
from ..files.datadir import RESERVED, RIG_NAME
from ..town import Town

HQ = "hq"
REDIRECT = "redirect"
REDIRECT_HOPS = 4  # gt: the first hop, then resolveBeadsDirWithDepth(…, 3)
LAYOUTS = ("embeddeddolt", "dolt")
EMBEDDED_LOCK = ".lock"  # bd's flock in embeddeddolt/, held while bd uses the embedded database
NO_LINKS = "gt-dolt never follows a link out of the town: move the data itself into the town, or out of it"


class LocalDatabase(NamedTuple):
    """A Dolt database in a beads dir: data the town's server does not serve."""

    path: Path
    layout: str  # "embeddeddolt" or "dolt"

    @property
    def name(self) -> str:
        return self.path.name


class RigBeads(NamedTuple):
    """One rig's beads dir as bd would use it, and what it holds outside the server."""

    rig: str
    dir: Path  # after redirects
    databases: tuple[LocalDatabase, ...] = ()
    problem: str | None = None  # a redirect that could not be followed: nothing is done there


def _kind(path: Path) -> int | None:
    try:
        return stat.S_IFMT(os.lstat(path).st_mode)
    except (OSError, ValueError):
        return None


def inside(town: Town, path: Path) -> bool:
    """`path` is in the town lexically and for real, and no component of it below the town root is a
    symlink (the safety check runs on the real path; the logical one is what gt compares)."""
    clean = Path(os.path.normpath(path))
    try:
        parts = clean.relative_to(town.root).parts
    except ValueError:
        return False
    here = town.root
    for part in parts:
        here = here / part
        if _kind(here) == stat.S_IFLNK:
            return False
    real_root = os.path.realpath(town.root)
    real = os.path.realpath(clean)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def _read_redirect(town: Town, beads_dir: Path) -> str | None:
    try:
        raw = safefs.read_bytes(beads_dir / REDIRECT, 4096, root=town.root)
    except GastownError:
        return None
    text = raw.decode("utf-8", errors="replace").strip() if raw is not None else ""
    return text or None


def follow_redirects(town: Town, beads_dir: Path) -> tuple[Path, str | None]:
    """(the beads dir bd uses, why a redirect was not followed or None)."""
    start = beads_dir
    for _ in range(REDIRECT_HOPS):
        if not os.path.lexists(beads_dir / REDIRECT):  # nearly every beads dir: no redirect
            return beads_dir, None
        target = _read_redirect(town, beads_dir) if inside(town, beads_dir) else None
        if target is None:
            return beads_dir, None
        resolved = Path(os.path.normpath(os.path.join(beads_dir.parent, target)))
        if resolved in (beads_dir, start):
            return beads_dir, None  # gt ignores a redirect to itself
        if not inside(town, resolved):
            return beads_dir, (
                f"{beads_dir / REDIRECT} points to {target}, outside the town or through a symlink: "
                "gt-dolt never follows it (fix the redirect, or move that beads dir into the town)"
            )
        beads_dir = resolved
    return beads_dir, None


def metadata_dir(town: Town, rig: str) -> Path:
    """Where gt's init-rig writes a rig's beads metadata (before redirects): gt's FindRigBeadsDir."""
    if rig == HQ:
        return town.root / ".beads"
    nested = town.root / rig / "mayor" / "rig" / ".beads"
    if _kind(nested) == stat.S_IFDIR and inside(town, nested):
        return nested
    return town.root / rig / ".beads"


def local_databases(town: Town, beads_dir: Path) -> tuple[tuple[LocalDatabase, ...], list[Path]]:
    """(every Dolt database in `embeddeddolt/` and `dolt/` of a beads dir, the entries there that
    are links to one: never followed, reported)."""
    found, linked = [], []
    for layout in LAYOUTS:
        parent = beads_dir / layout
        if _kind(parent) != stat.S_IFDIR or not inside(town, parent):
            continue
        try:
            names = sorted(os.listdir(parent))
        except OSError:
            continue
        for name in names:
            if name.startswith(".") or not os.path.isdir(parent / name / ".dolt"):
                continue
            if _kind(parent / name) == stat.S_IFLNK:
                linked.append(parent / name)
            else:
                found.append(LocalDatabase(parent / name, layout))
    return tuple(found), linked


def layout_folders(town: Town) -> list[Path]:
    """Every `embeddeddolt/` and `dolt/` folder of the town's beads dirs (where a migration removes
    its sources, and a killed one may leave a `.discarded-…` folder behind)."""
    found = []
    for rig in rig_folders(town):
        for beads in rig_beads(town, rig):
            found += [beads.dir / layout for layout in LAYOUTS if _kind(beads.dir / layout) == stat.S_IFDIR]
    return [folder for folder in found if inside(town, folder)]


def rig_folders(town: Town) -> list[str]:
    """The rigs a town's beads can belong to: hq, and every top-level folder (not hidden, not a link)."""
    rigs = [HQ]
    try:
        entries = sorted(os.scandir(town.root), key=lambda e: e.name)
    except OSError:
        return rigs
    rigs += [e.name for e in entries if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)]
    return rigs


def rig_beads(town: Town, rig: str) -> list[RigBeads]:
    """The beads dirs of one rig (the one gt's migrate reads, `<folder>/.beads` after redirects, and
    the one its metadata lives in when that differs), each with the databases it holds."""
    work = town.root if rig == HQ else town.root / rig
    seen: list[Path] = []
    found = []
    for start in (work / ".beads", metadata_dir(town, rig)):
        if _kind(start) == stat.S_IFLNK:
            if start not in seen:
                seen.append(start)
                found.append(RigBeads(rig, start, (), f"{start} is a symlink; {NO_LINKS}"))
            continue
        if _kind(start) != stat.S_IFDIR:
            continue
        resolved, problem = follow_redirects(town, start)
        if resolved in seen:
            continue
        seen.append(resolved)
        databases: tuple[LocalDatabase, ...] = ()
        if problem is None:
            databases, linked = local_databases(town, resolved)
            linked = [resolved / layout for layout in LAYOUTS if _kind(resolved / layout) == stat.S_IFLNK] + linked
            problem = f"{linked[0]} is a symlink; {NO_LINKS}" if linked else None
        found.append(RigBeads(rig, resolved, databases, problem))
    return found


def outside_the_server(town: Town) -> list[RigBeads]:
    """Every beads dir of the town that holds a database (or a redirect gt-dolt cannot follow)."""
    return [b for rig in rig_folders(town) for b in rig_beads(town, rig) if b.databases or b.problem]


def valid_rig(rig: str) -> bool:
    return RIG_NAME.fullmatch(rig) is not None and rig.lower() not in RESERVED
