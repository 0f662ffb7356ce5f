"""Which Invoke configuration a gt-dolt command line would see, found without importing Invoke.

gt-dolt takes its fast path only when no Invoke configuration source exists: no system or user
Invoke file, no INVOKE_* variable, and no project (a tasks.py above the current folder, with the
invoke.yaml beside it and whatever it configures in code).  Otherwise it hands the command to
Invoke, so both entry points see the same configuration.

A project's tasks.py is code: gt-dolt runs it only when it is the caller's (or root's) and nobody
else can write it or replace it (its folder is not writable by others), as git's safe.directory
guards a repository.  Otherwise it is ignored with a warning.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

CONFIG_SUFFIXES = ("yaml", "yml", "json", "py")


@dataclass(frozen=True)
class Project:
    root: Path | None = None  # the folder holding tasks.py (or tasks/), when trusted
    warnings: list[str] = field(default_factory=list)


def _untrusted(path: Path) -> str | None:
    try:
        st = os.stat(path)
        folder = os.stat(path.parent)
    except OSError as exc:
        return f"cannot read it ({exc.strerror})"
    if st.st_uid not in (os.geteuid(), 0):
        return f"it belongs to uid {st.st_uid}, not to you"
    if st.st_mode & stat.S_IWOTH:
        return "anyone can write it"
    if folder.st_mode & stat.S_IWOTH and not folder.st_mode & stat.S_ISVTX:
        return f"anyone can replace it ({path.parent} is world-writable)"
    return None


def _is_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):  # too long, not a folder, NUL bytes: not a tasks.py
        return False


def find_project(start: Path) -> Project:
    """The nearest tasks.py (or tasks/ package) at or above `start`, as Invoke's loader finds it."""
    for folder in (start, *start.parents):
        for candidate in (folder / "tasks.py", folder / "tasks" / "__init__.py"):
            if _is_file(candidate):
                why = _untrusted(candidate)
                if why is None:
                    return Project(folder)
                return Project(None, [f"gt-dolt: ignoring {candidate} ({why}); gt-dolt runs only your own code"])
    return Project()


def invoke_sources(project: Project, environ: Mapping[str, str] | None = None, home: Path | None = None) -> list[str]:
    """Every Invoke configuration source that exists; empty means gt-dolt's own defaults are the truth."""
    env = os.environ if environ is None else environ
    found = [f"${name}" for name in env if name.startswith("INVOKE_")]
    home = home or Path(os.path.expanduser("~"))
    for base in (Path("/etc/invoke"), home / ".invoke"):
        found += [str(path) for suffix in CONFIG_SUFFIXES if (path := base.with_suffix(f".{suffix}")).exists()]
    if project.root is not None:
        found.append(str(project.root / "tasks.py"))
    return found
