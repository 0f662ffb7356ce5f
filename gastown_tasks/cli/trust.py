"""Which Invoke configuration a gt-dolt command line would see, found without importing Invoke.

gt-dolt takes its fast path only when no Invoke configuration source exists: no system or user
Invoke file, no INVOKE_* variable, and no project (a tasks.py above the current folder, with the
invoke.yaml beside it and whatever it configures in code).  Otherwise it hands the command to
Invoke, so both entry points see the same configuration.

A project is code and configuration, and gt-dolt may run as root.  So the project is found exactly
as Invoke's loader finds it (the nearest entry named tasks.py, of any kind, or a tasks/ package),
and it is used only when nobody but the caller (or root) can change what Invoke would load: the
project folder and every folder above it, tasks.py, every other .py beside it, invoke.{yaml,yml,
json,py} and __pycache__/ all belong to the caller or root, and none is writable by group or others
(a folder above may be, with the sticky bit, as /tmp).  So does everything else Python could import
from the project folder (a folder, .pyc or extension module with an importable name): Invoke puts
that folder first on Python's path, so a folder named `decimal` or `psutil` there would be imported
instead of the real module by the code that runs after it.  Otherwise the project is ignored with a
warning naming what was wrong, as git's safe.directory guards a repository.  The system and user
Invoke files, which Invoke always reads, must pass the same test, or gt-dolt refuses to run.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

CONFIG_SUFFIXES = ("yaml", "yml", "json", "py")
WRITABLE_BY_OTHERS = stat.S_IWGRP | stat.S_IWOTH


class Project(NamedTuple):
    root: Path | None = None  # the folder holding tasks.py (or tasks/), when trusted
    warnings: tuple[str, ...] = ()


def _owner_ok(st: os.stat_result) -> bool:
    return st.st_uid in (os.geteuid(), 0)


def file_problem(path: Path, *, regular: bool = True) -> str | None:
    """Why Invoke must not read or run `path` for us (a file, or with regular=False anything Python
    could import, folders included); None when only we (or root) can change it."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"cannot read it ({exc.strerror})"
    if stat.S_ISLNK(st.st_mode):
        return "it is a symlink"
    if regular and not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    if not _owner_ok(st):
        return f"it belongs to uid {st.st_uid}, not to you or root"
    if st.st_mode & WRITABLE_BY_OTHERS:
        return "others can write it"
    return None


def folder_problem(path: Path, *, sticky_ok: bool) -> str | None:
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"cannot read {path} ({exc.strerror})"
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a real folder"
    if not _owner_ok(st):
        return f"{path} belongs to uid {st.st_uid}, not to you or root"
    if st.st_mode & WRITABLE_BY_OTHERS and not (sticky_ok and st.st_mode & stat.S_ISVTX):
        return f"others can write in {path}"
    return None


def _loaded_files(folder: Path, candidate: Path) -> Iterator[Path]:
    """What Invoke reads or Python may import from the project: tasks, its neighbours, configs, caches."""
    yield candidate
    for entry in sorted(folder.iterdir()):
        if entry.suffix == ".py" or entry.name in {f"invoke.{s}" for s in CONFIG_SUFFIXES}:
            yield entry
    package = candidate.parent
    if package != folder:  # a tasks/ package: every module in it
        yield from (entry for entry in sorted(package.iterdir()) if entry.suffix == ".py")
    for holder in {folder, package}:
        cache = holder / "__pycache__"
        if os.path.lexists(cache):
            yield from sorted(cache.iterdir())


IMPORTABLE_SUFFIXES = (".py", ".pyc", ".so")


def _importable(folder: Path) -> Iterator[Path]:
    """Entries of `folder` that `import <name>` could find while it is on Python's path."""
    for entry in sorted(folder.iterdir()):
        stem, dot, _ = entry.name.partition(".")
        if not stem.isidentifier():
            continue
        if not dot or entry.name.endswith(IMPORTABLE_SUFFIXES):  # a folder (package or namespace), a module
            yield entry


def _untrusted(folder: Path, candidate: Path) -> str | None:
    for above in (folder.parent, *folder.parent.parents):
        why = folder_problem(above, sticky_ok=True)
        if why is not None:
            return why
    for holder in {folder, candidate.parent}:
        why = folder_problem(holder, sticky_ok=False)
        if why is not None:
            return why
    cache = folder / "__pycache__"
    if os.path.lexists(cache) and (why := folder_problem(cache, sticky_ok=False)) is not None:
        return why
    try:
        for path in _loaded_files(folder, candidate):
            why = file_problem(path)
            if why is not None:
                return f"{path}: {why}"
        for holder in {folder, candidate.parent}:
            for path in _importable(holder):
                why = file_problem(path, regular=False)
                if why is not None:
                    return (
                        f"{path}: {why}, and Python would import from it (Invoke puts {holder} first on "
                        "the import path): keep the project's tasks.py in a folder only you can change"
                    )
    except OSError as exc:
        return f"cannot list {folder} ({exc.strerror})"
    return None


def _entries(folder: Path) -> set[str]:
    try:
        return set(os.listdir(folder))
    except (OSError, ValueError):
        return set()


def find_project(start: Path) -> Project:
    """The project Invoke's loader would load from `start`: the nearest entry named tasks.py (of any
    kind) or a tasks/ package with an __init__.py, walking up; it stops there, as Invoke does."""
    for folder in (start, *start.parents):
        names = _entries(folder)
        if "tasks.py" in names:
            candidate = folder / "tasks.py"
        elif "tasks" in names and os.path.lexists(folder / "tasks" / "__init__.py"):
            candidate = folder / "tasks" / "__init__.py"
        else:
            continue
        why = _untrusted(folder, candidate)
        if why is None:
            return Project(folder)
        return Project(
            None,
            (
                f"gt-dolt: not loading the project in {folder} ({why}); gt-dolt runs only code "
                "and configuration that nobody but you (or root) can change",
            ),
        )
    return Project()


def invoke_files(home: Path | None = None) -> list[Path]:
    """The system and user Invoke configuration files that exist (Invoke reads them always)."""
    home = home or Path(os.path.expanduser("~"))
    found = []
    for base in (Path("/etc/invoke"), home / ".invoke"):
        found += [path for suffix in CONFIG_SUFFIXES if os.path.lexists(path := base.with_suffix(f".{suffix}"))]
    return found


def untrusted_invoke_files(home: Path | None = None) -> list[str]:
    return [f"{path}: {why}" for path in invoke_files(home) if (why := file_problem(path)) is not None]


def invoke_sources(project: Project, environ: Mapping[str, str] | None = None, home: Path | None = None) -> list[str]:
    """Every Invoke configuration source that exists; empty means gt-dolt's own defaults are the truth."""
    env = os.environ if environ is None else environ
    found = [f"${name}" for name in env if name.startswith("INVOKE_")]
    found += [str(path) for path in invoke_files(home)]
    if project.root is not None:
        found.append(str(project.root / "tasks.py"))
    return found
