"""Finding a Gas Town workspace, and the paths it shares with Gas Town's own `gt dolt`.

The town's path is the one gt computes from the same shell: the working folder as the shell gave
it ($PWD, when it names the very folder we are in, as Go's os.Getwd reads it), made absolute and
cleaned without resolving links, then walked up.  gt compares that path with a running server's
`--config` argument to decide whether the server is the town's, so a town entered through a
symlink keeps the symlinked path here too.  Checks that decide safety (whose files these are, what
is inside the town, which process serves which folder) look at the real files and paths.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from .errors import NotInTown

WORKTREE_DIRS = frozenset({"polecats", "crew"})
MARKER = Path("mayor") / "town.json"


class Town(NamedTuple):
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

    @property
    def config_file(self) -> Path:
        """The managed sql-server config, where Gas Town's `gt` keeps it too."""
        return self.data_dir / "config.yaml"

    @property
    def sql_files_dir(self) -> Path:
        """The only folder SQL may read or write files in (secure_file_priv)."""
        return self.daemon_dir / "sql-files"

    @property
    def watch_log(self) -> Path:
        return self.daemon_dir / "dolt-watch.log"

    @property
    def watch_lock(self) -> Path:
        return self.daemon_dir / "dolt-watch.lock"

    @property
    def backup_dir(self) -> Path:
        return self.root / ".dolt-backup"

    @property
    def dolt_root(self) -> Path:
        """The server's own DOLT_ROOT_PATH in a clustered town (role and epoch live there)."""
        return self.root / ".dolt-root"

    def rig_dir(self, name: str) -> Path:
        return self.data_dir / name

    def relative(self, path: Path) -> str:
        """A path as users see it in messages: relative to the town when it is inside."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


def _exists(path: Path, kind: int) -> bool:
    try:
        return stat.S_IFMT(os.stat(path).st_mode) == kind
    except (OSError, ValueError):  # a path too long, a NUL byte, a file in the way: not there
        return False


def _trusted(path: Path) -> bool:
    """Made by us or root: a marker another user planted in a folder of theirs is not our town."""
    try:
        return os.stat(path).st_uid in (os.geteuid(), 0)
    except (OSError, ValueError):
        return False


def _is_town(path: Path) -> bool:
    return _exists(path / MARKER, stat.S_IFREG) and _trusted(path) and _trusted(path / MARKER)


def logical_cwd(environ: Mapping[str, str] | None = None) -> Path:
    """The working folder as the shell gave it: $PWD when it is absolute and is this very folder
    (Go's os.Getwd, which gt uses), else the real one."""
    env = os.environ if environ is None else environ
    pwd = env.get("PWD", "")
    try:
        here = os.stat(".")
    except OSError:
        here = None
    if pwd.startswith("/") and here is not None:
        try:
            if os.path.samestat(os.stat(pwd), here):
                return Path(os.path.normpath(pwd))
        except (OSError, ValueError):
            pass
    return Path(os.getcwd())


def absolute(path: Path | str, environ: Mapping[str, str] | None = None) -> Path:
    """`path` made absolute from the logical working folder and cleaned, links kept (Go's filepath.Abs)."""
    path = Path(path).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else logical_cwd(environ) / path))


def _explicit_root(value: str, where: str, environ: Mapping[str, str] | None) -> Path:
    root = absolute(value, environ)
    if not _is_town(root):
        raise NotInTown(
            f"{where}={value} is not a Gas Town workspace: it has no {MARKER} of yours (or root's); "
            f"point {where} at the folder that holds mayor/town.json, or unset it"
        )
    return root


def find_town_root(
    start: Path | str | None = None,
    *,
    configured: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path:
    """configured root > walk up to mayor/town.json > outermost bare mayor/ > GT_TOWN_ROOT.

    Inside a polecats/ or crew/ worktree a nested town (a rig's own clone) is not the town: the
    walk goes on to the outermost one, as Gas Town's workspace finder does.  A configured root and
    GT_TOWN_ROOT must hold mayor/town.json: a mistyped variable must not create run files in some
    unrelated folder.
    """
    if configured:
        return _explicit_root(os.fspath(configured), "dolt.town_root", environ)

    here = absolute(start, environ) if start else logical_cwd(environ)
    in_worktree = bool(WORKTREE_DIRS.intersection(here.parts))
    marked: Path | None = None
    mayor_only: Path | None = None
    for folder in (here, *here.parents):
        if _is_town(folder):
            if not in_worktree:
                return folder
            marked = folder
        elif _exists(folder / "mayor", stat.S_IFDIR) and _trusted(folder) and _trusted(folder / "mayor"):
            mayor_only = folder
    found = marked or mayor_only
    if found is not None:
        return found

    env = os.environ if environ is None else environ
    fallback = env.get("GT_TOWN_ROOT", "").strip()
    if fallback:
        return _explicit_root(fallback, "GT_TOWN_ROOT", environ)
    raise NotInTown(
        f"not in a Gas Town workspace: neither mayor/town.json nor a mayor/ folder in {here} or any "
        "folder above it; cd into your town, or set GT_TOWN_ROOT (or dolt.town_root) to the folder "
        "that holds mayor/town.json"
    )


def find_town(
    start: Path | str | None = None,
    *,
    configured: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Town:
    return Town(find_town_root(start, configured=configured, environ=environ))
