"""Root in a town an ordinary user owns: the command runs as that user, so the server never does as root.

A server run by root over files an ordinary user can write would hand that user root's power
(docs/reliability.md, least privilege).  pg_ctl refuses root outright; gt-dolt, run by root in
alice's town, forks, becomes alice (her uid, her groups, HOME, USER and LOGNAME) and runs the
command there, saying so on stderr; the parent only waits and passes the exit code on.  Everything
the command writes (run files, the server itself) is then alice's, exactly as if she had run it,
and the tools she runs herself find it hers.

Root finds only towns of root's (ops/town.py): this is where a town that is not root's, but an
ordinary user's (the town folder, mayor/ and mayor/town.json all theirs), is taken up instead of
"not in a Gas Town workspace".  A user's town inside one of root's is never reached this way: root's
own town is found first.  Only the command layer does this: the operations (`gastown_tasks.ops`)
never change the uid of the process that calls them, and refuse such a town (`NotOurs`).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import stat
import sys
from pathlib import Path
from typing import NoReturn

from ..exits import Ended
from ..ops.errors import NotOurs
from ..ops.town import MARKER

_child = False


class RanAsOwner(Ended):
    """In the parent: the command has run (and said its say) in a child as the town's owner;
    `exit_code` is the child's."""


def in_child() -> bool:
    return _child


def finish(code: int) -> NoReturn:
    """The child's end: its output flushed, its exit code to the waiting parent, nothing else run
    (Invoke's remaining tasks belong to the parent)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def _preload() -> None:
    """Everything the command may import later, imported while root can still read it: the owner
    may not be able to read root's installation."""
    import importlib
    import pkgutil

    from .. import commands, ops

    for package in (ops, commands):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):  # ops/ has subpackages
            importlib.import_module(info.name)
    for name in ("pymysql", "filelock", "gzip", "json", "urllib.parse", "encodings.idna"):
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _become(entry: pwd.struct_passwd) -> None:
    os.initgroups(entry.pw_name, entry.pw_gid)
    os.setresgid(entry.pw_gid, entry.pw_gid, entry.pw_gid)
    os.setresuid(entry.pw_uid, entry.pw_uid, entry.pw_uid)
    os.environ.update(HOME=entry.pw_dir, USER=entry.pw_name, LOGNAME=entry.pw_name)


def _wait(pid: int) -> int:
    """The child's exit code; Ctrl-C reaches it (same process group) and it answers for itself."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        signal.signal(signal.SIGINT, previous)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _owner_of_town(folder: Path) -> int | None:
    """The ordinary user who owns a town at `folder` (the folder, mayor/ and mayor/town.json all
    theirs), or None."""
    try:
        owners = {os.stat(path, follow_symlinks=False).st_uid for path in (folder, folder / "mayor", folder / MARKER)}
        is_marker = stat.S_ISREG(os.stat(folder / MARKER, follow_symlinks=False).st_mode)
    except (OSError, ValueError):
        return None
    (uid,) = owners if len(owners) == 1 else (None,)
    return uid if is_marker and uid not in (None, 0) else None


def _users_town(configured: str | None) -> tuple[int, Path] | None:
    """Where root would work, when that is an ordinary user's town: the configured root,
    GT_TOWN_ROOT, else the nearest town above the current folder."""
    explicit = configured or os.environ.get("GT_TOWN_ROOT", "").strip()
    try:
        candidates = [Path(explicit).expanduser()] if explicit else [Path.cwd(), *Path.cwd().parents]
    except OSError:
        return None
    for folder in candidates:
        uid = _owner_of_town(folder)
        if uid is not None:
            return uid, folder
    return None


def become_town_owner(configured: str | None) -> bool:
    """Root where no town of root's is, in a town an ordinary user owns: go on as that user (in a
    child, True), or raise RanAsOwner in the parent once the child has done the command.  False:
    not root, or no such town (the caller's own error stands)."""
    global _child
    if os.geteuid() != 0 or _child:
        return False
    found = _users_town(configured)
    if found is None:
        return False
    uid, folder = found
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        raise NotOurs(
            f"{folder} belongs to uid {uid}, which has no user entry: gt-dolt would have to run as that uid "
            "and cannot; give the town to a real user (chown -R), then retry"
        ) from None
    _preload()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    pid = os.fork()
    if pid:
        raise RanAsOwner(_wait(pid))
    _child = True
    try:
        _become(entry)
    except OSError as exc:
        print(
            f"error: cannot run as {entry.pw_name} (uid {uid}), the owner of {folder}: {exc.strerror}", file=sys.stderr
        )
        finish(1)
    print(
        f"note: running as {entry.pw_name} (uid {uid}), who owns {folder}: gt-dolt never runs a town's "
        "server with more power than the people who can write its files",
        file=sys.stderr,
    )
    return True
