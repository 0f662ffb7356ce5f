"""Least privilege: nobody with less power than the server's user may change what the server opens.

Dolt opens its config, its data dir and every file of every database by path, following links as
it goes.  Whoever may rename entries in a folder on those paths could swap in a config of theirs
(`listener.host: 0.0.0.0`) or a link to a file of the server's user (Dolt truncates and rewrites
it) between our checks and Dolt's reads.  So every such folder may be changed only by the server's
user or root:

- it belongs to one of them;
- it is not writable by every user (a sticky folder above the town, like /tmp, is fine: nobody
  can rename another user's entries there);
- it is writable by its group only when nobody but the server's user (and root) is in that group
  (a user-private group, as umask 002 systems make).

Inside a database (a rig folder and its whole `.dolt` tree) nothing may be a symlink, a FIFO, a
device or a socket, belong to another user, or be a file with a second name (a hard link planted
while the folder was open).  Files Dolt itself makes writable by every user (`config.json`,
`repo_state.json`) are `doctor`'s warning, not a refusal: their content cannot redirect a write.

The server runs as the caller: `gt-dolt` run by root in a town an ordinary user owns runs the
whole command as that user (commands/owner.py), and these rules then hold for that user.
"""

from __future__ import annotations

import functools
import grp
import os
import pwd
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Literal, NamedTuple

from ..errors import NotOurs, UnsafeFile
from ..town import Town
from . import safefs

SHOWN = 3  # problems named in one line; doctor lists them all


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return f"uid {uid}"


@functools.lru_cache(maxsize=64)
def group_members(gid: int) -> tuple[str, tuple[str, ...]]:
    """A group's name and every user in it: its listed members and the users whose primary group it is."""
    try:
        group = grp.getgrgid(gid)
    except (KeyError, OverflowError):
        return f"gid {gid}", ()
    members = set(group.gr_mem)
    members.update(entry.pw_name for entry in pwd.getpwall() if entry.pw_gid == gid)
    return group.gr_name, tuple(sorted(members))


def begin() -> None:
    """A check starts: group membership is read afresh (it changes while a long process runs)."""
    group_members.cache_clear()


def powerless_members(gid: int, user: int) -> tuple[str, ...]:
    """Members of the group with less power than `user`: everyone but that user and root."""
    keep = {user_name(user), user_name(0)}
    return tuple(name for name in group_members(gid)[1] if name not in keep)


@functools.lru_cache(maxsize=1)
def unmapped_uid() -> int | None:
    """The uid that files of users this user namespace does not map show as (the kernel's overflow
    uid), or None where every uid is mapped: only there is a file of uid 65534 really nobody's."""
    try:
        with open("/proc/self/uid_map", "rb") as uid_map:
            lines = uid_map.read(4096).split(b"\n")
        counted = sum(int(line.split()[2]) for line in lines if len(line.split()) == 3)
        if counted >= 2**32 - 1:
            return None
        with open("/proc/sys/kernel/overflowuid", "rb") as overflow:
            return int(overflow.read(64))
    except (OSError, ValueError):
        return None


class Writer(NamedTuple):
    """Someone with less power than the server's user who may change a folder's entries or a file."""

    kind: Literal["owner", "unmapped", "every user", "group"]
    who: str  # "uid 1001 (bob)", "every user", "group devs (bob, carol)"


def writer(st: os.stat_result, user: int, *, sticky_ok: bool = False) -> Writer | None:
    """Who, besides `user` and root, may change this folder's entries (or this file); None when
    nobody may.  A group nobody else is in (a user-private group) is no one else."""
    if st.st_uid not in (user, 0):
        if st.st_uid == unmapped_uid():
            return Writer("unmapped", f"a user this user namespace does not map (shown as uid {st.st_uid})")
        return Writer("owner", f"uid {st.st_uid} ({user_name(st.st_uid)})")
    sticky = sticky_ok and bool(st.st_mode & stat.S_ISVTX)
    if st.st_mode & stat.S_IWOTH and not sticky:
        return Writer("every user", "every user")
    if st.st_mode & stat.S_IWGRP and not sticky:
        name, _ = group_members(st.st_gid)
        others = powerless_members(st.st_gid, user)
        if others:
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            return Writer("group", f"group {name} ({shown})")
        if name.startswith("gid "):  # a group without an entry: its members cannot be known
            return Writer("group", f"group {name}")
    return None


def exposed(path: object, st: os.stat_result, user: int, *, sticky_ok: bool = False) -> str | None:
    """One line when `path` (already lstat-ed) may be changed by someone with less power than `user`."""
    found = writer(st, user, sticky_ok=sticky_ok)
    if found is None:
        return None
    if found.kind == "owner":
        return (
            f"{path} belongs to {found.who}, not to you: the server would open what they put there; "
            f"move it aside, or run gt-dolt as that user"
        )
    if found.kind == "unmapped":
        return (
            f"{path} belongs to {found.who}: from in here nobody can tell whether they have less power "
            f"than you; run gt-dolt outside the user namespace, or keep the town below folders of yours"
        )
    bits = "o-w" if found.kind == "every user" else "g-w"
    return (
        f"{path} is writable by {found.who}: they could swap the server's config or databases under it; "
        f"chmod {bits} {path}, then retry"
    )


def _lstat(path: os.PathLike[str] | str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (OSError, ValueError):
        return None


def _prefixes(path: str) -> list[str]:
    parts = Path(path).parts
    return [str(Path(*parts[: i + 1])) for i in range(len(parts))]


def ancestors(root: Path) -> list[str]:
    """The folders above the town, as the path is written and as it really is (a link on the way is
    guarded by the folder that holds it, and its target by the folders above that)."""
    found: dict[str, None] = {}
    for path in (os.path.abspath(root), os.path.realpath(root)):
        for prefix in _prefixes(path)[:-1]:
            found[prefix] = None
    return list(found)


def path_problems(path: Path, user: int | None = None) -> list[str]:
    """A path Dolt will write by path outside the town: every folder above it, and it when it
    exists, may be changed by nobody with less power than `user` (sticky folders above are fine)."""
    user = os.geteuid() if user is None else user
    begin()
    problems = []
    for folder in ancestors(path):
        st = _lstat(folder)
        if st is not None and stat.S_ISDIR(st.st_mode):
            problem = exposed(folder, st, user, sticky_ok=True)
            if problem:
                problems.append(problem)
    st = _lstat(path)
    if st is not None:
        problem = exposed(path, st, user)
        if problem:
            problems.append(problem)
    return problems


def town_folders(town: Town) -> list[Path]:
    """The town's own folders the server (or we, for it) opens by path."""
    data = town.data_dir
    return [
        town.root,
        data,
        data / ".dolt",
        data / ".doltcfg",
        data / ".dolt_dropped_databases",
        data / ".staging",  # migrate and init-rig build databases there (ops/files/staging.py)
        town.daemon_dir,
        town.sql_files_dir,
        town.dolt_root,
    ]


def town_problems(town: Town, user: int | None = None) -> list[str]:
    """Every folder above the town and every town folder the server opens by path that someone
    with less power than `user` (default: us) may change."""
    user = os.geteuid() if user is None else user
    begin()
    problems = []
    for folder in ancestors(town.root):
        st = _lstat(folder)
        if st is not None and stat.S_ISDIR(st.st_mode):
            problem = exposed(folder, st, user, sticky_ok=True)
            if problem:
                problems.append(f"{problem} (it holds the town)")
    # The town root may be entered through a symlink (the path gt compares): judge the real folder.
    for path in (Path(os.path.realpath(town.root)), *town_folders(town)[1:]):
        st = _lstat(path)
        if st is not None and not stat.S_ISLNK(st.st_mode):
            problem = exposed(path, st, user)
            if problem:
                problems.append(problem)
    return problems


def served_folders(town: Town) -> list[Path]:
    """Every folder in .dolt-data that Dolt opens as a database: each holding `.dolt`, hidden ones
    included (Dolt serves `.x` too), but not Dolt's own `.dolt` and `.doltcfg`."""
    try:
        entries = list(os.scandir(town.data_dir))
    except OSError:
        return []
    found = []
    for entry in entries:
        if entry.name in (".dolt", ".doltcfg", ".dolt_dropped_databases"):
            continue
        try:
            if entry.is_dir(follow_symlinks=False) and os.path.lexists(os.path.join(entry.path, ".dolt")):
                found.append(Path(entry.path))
        except OSError:
            continue
    return sorted(found)


def _odd(path: str, st: os.stat_result, user: int) -> str | None:
    """Why an entry of a database tree must not be opened by a server run as `user`."""
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"{path} is a symlink (to {target}): Dolt would follow it out of the database; remove it"
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
        return f"{path} is a FIFO, device or socket, never part of a Dolt database; remove it"
    if stat.S_ISREG(mode) and st.st_nlink > 1:
        return f"{path} has {st.st_nlink} names (a hard link): Dolt would rewrite the other names too; remove it"
    if stat.S_ISDIR(mode):
        return exposed(path, st, user)
    if st.st_uid not in (user, 0):
        return exposed(path, st, user)
    return None


def _walk(top: str) -> Iterator[tuple[str, os.stat_result]]:
    """Every entry under `top` (itself included), links never followed."""
    st = _lstat(top)
    if st is None:
        return
    yield top, st
    if not stat.S_ISDIR(st.st_mode):
        return
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                est = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            yield entry.path, est
            if stat.S_ISDIR(est.st_mode):
                stack.append(entry.path)


def database_problems(folder: Path, user: int | None = None) -> list[str]:
    """What in one database (its folder and its whole .dolt tree) a server run as `user` must not open."""
    user = os.geteuid() if user is None else user
    top = os.fspath(folder)
    problems = []
    st = _lstat(top)
    if st is None:
        return []
    problem = _odd(top, st, user)
    if problem:
        problems.append(problem)
    for path, est in _walk(os.path.join(top, ".dolt")):
        problem = _odd(path, est, user)
        if problem:
            problems.append(problem)
    return problems


def every_problem(town: Town) -> list[str]:
    """The town's folders, then every database Dolt would open."""
    problems = town_problems(town)
    for folder in served_folders(town):
        problems.extend(database_problems(folder))
    return problems


def in_one_line(problems: list[str]) -> str:
    more = len(problems) - SHOWN
    said = "; ".join(problems[:SHOWN])
    return said + (f"; and {more} more (gt-dolt doctor lists them)" if more > 0 else "")


def check_town(town: Town) -> None:
    """Before any Dolt of ours opens the town by path (the server, the Dolt CLI of a backup, a
    restore, an embedded `sql`): the folders above and in the town may be changed by nobody with
    less power than us; else NotOurs/UnsafeFile, one line naming the path and the fix."""
    euid = os.geteuid()
    try:
        owner = os.stat(town.root).st_uid
    except OSError as exc:
        raise safefs.failure(exc, town.root, "read") from None
    if owner not in (euid, 0) or (euid == 0 and owner != 0):
        raise NotOurs(
            f"{town.root} belongs to uid {owner} ({user_name(owner)}): run gt-dolt as that user "
            f"(the gt-dolt command does so by itself when root runs it); a server run by uid {euid} would "
            "hold more power than the people who can write its files"
        )
    for path in town_folders(town)[1:]:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise safefs.failure(exc, path, "read") from None
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            safefs.require_dir(path, root=town.root)  # raises, naming what is there instead
    problems = town_problems(town)
    if problems:
        raise UnsafeFile(in_one_line(problems))


def check_databases(folders: list[Path]) -> None:
    """Nothing in these databases is a link, a FIFO, another user's, a second name of a file, or a
    folder someone with less power than us may change."""
    begin()
    problems = [problem for folder in folders for problem in database_problems(folder)]
    if problems:
        raise UnsafeFile(f"Dolt would open what others control: {in_one_line(problems)}")
