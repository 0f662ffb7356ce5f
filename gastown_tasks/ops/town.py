"""Finding a Gas Town workspace and the paths it shares with Gas Town's own `gt dolt`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import NotInTown

WORKTREE_DIRS = frozenset({"polecats", "crew"})


@dataclass(frozen=True)
class Town:
    """A town root and the files both tools agree on."""

    root: Path

    @property
    def data_dir(self) -> Path:
        return self.root / ".dolt-data"

    @property
    def daemon_dir(self) -> Path:
        return self.root / "daemon"

    @property
    def pid_file(self) -> Path:
        return self.daemon_dir / "dolt.pid"

    @property
    def log_file(self) -> Path:
        return self.daemon_dir / "dolt.log"

    @property
    def state_file(self) -> Path:
        return self.daemon_dir / "dolt-state.json"

    @property
    def lock_file(self) -> Path:
        return self.daemon_dir / "dolt.lock"

    def rig_dir(self, name: str) -> Path:
        return self.data_dir / name


def _is_town(path: Path) -> bool:
    return (path / "mayor" / "town.json").is_file()


def find_town_root(
    start: Path | str | None = None,
    *,
    configured: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """configured root > walk up to mayor/town.json > outermost mayor/ > GT_TOWN_ROOT.

    Inside a polecats/ or crew/ worktree a nested town (a rig's own clone) is not the town: the
    walk goes on to the outermost one, as Gas Town's workspace finder does.
    """
    if configured:
        root = Path(configured).expanduser()
        if not root.is_dir():
            raise NotInTown(f"the configured town root {root} is not a folder; fix dolt.town_root")
        return root.resolve()

    here = Path(start or Path.cwd()).resolve()
    in_worktree = bool(WORKTREE_DIRS.intersection(here.parts))
    marked: Path | None = None
    mayor_only: Path | None = None
    for folder in (here, *here.parents):
        if _is_town(folder):
            if not in_worktree:
                return folder
            marked = folder
        elif (folder / "mayor").is_dir():
            mayor_only = folder
    if marked or mayor_only:
        return marked or mayor_only  # type: ignore[return-value]

    env = os.environ if environ is None else environ
    fallback = env.get("GT_TOWN_ROOT", "").strip()
    if fallback:
        root = Path(fallback).expanduser()
        if root.is_dir():
            return root.resolve()
        raise NotInTown(f"GT_TOWN_ROOT={fallback} is not a folder; fix or unset it")
    raise NotInTown(
        f"not in a Gas Town workspace: no mayor/town.json in {here} or any folder above it; "
        "cd into your town, or set GT_TOWN_ROOT (or dolt.town_root)"
    )


def find_town(
    start: Path | str | None = None,
    *,
    configured: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Town:
    return Town(find_town_root(start, configured=configured, environ=environ))
