"""The town's lock, daemon/dolt.lock: a kernel flock that Gas Town's `gt` takes too.

The lock file is opened like every run file (ops/safefs.py: reached from the town without following
a link, O_NOFOLLOW | O_NONBLOCK, used only when fstat shows a regular file of ours with one name)
and never truncated or deleted: deleting it would split waiters across two inodes.  filelock locks
that very descriptor (`lock_descriptor`, the flock its FileLock takes), so nobody can swap the file
between the checks and the lock.  Not filelock's FileLock: it opens by path, following links in
the folders on the way (it realpaths and creates them), and locks a FIFO or a second name as
readily; and a Ctrl-C that lands while one of its lock objects is collected is swallowed
("Exception ignored"), so the command would go on after it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import GastownError, LockTimeout, Remedy
from ..polling import poll_until
from ..town import Town
from . import safefs
from .runfiles import ensure_daemon_dir

LOCK_MODE = 0o600  # readable is enough to flock: only we (and `gt`, as us) may take it


ANNOUNCE_AFTER = 1.0  # seconds of waiting for a lock before saying who holds it


def lock_holders(fd: int) -> list[int]:
    """The pids holding a lock on the file open as `fd`, from the kernel's own table (/proc/locks;
    empty where there is none).  Waiters ("->" lines) are not holders."""
    st = os.fstat(fd)
    try:
        with open("/proc/locks", "rb") as table:
            text = table.read(1 << 20).decode("ascii", "replace")
    except OSError:
        return []
    device = (os.major(st.st_dev), os.minor(st.st_dev))
    exact: list[int] = []
    same_inode: list[int] = []  # some file systems show another device number there
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[1] == "->":
            continue
        try:
            major, minor, inode = fields[5].split(":")
            pid = int(fields[4])
            if int(inode) != st.st_ino or pid <= 0:
                continue
            found = exact if (int(major, 16), int(minor, 16)) == device else same_inode
        except ValueError:
            continue
        found.append(pid)
    return sorted(set(exact or same_inode))


def held_by(fd: int, fallback: str) -> str:
    """Who holds the lock, for a person: each holder's pid and command, else `fallback`."""
    from ..host.procs import describe_pid

    pids = lock_holders(fd)
    return ", ".join(f"pid {pid} ({describe_pid(pid)})" for pid in pids) if pids else fallback


def holder_of(path: Path, root: Path) -> str | None:
    """Who holds the lock file at `path` ("pid N (command)"), or None when nobody is seen holding it
    (or it is missing, or not a plain file of ours: never followed).  Only reads the kernel's
    table: taking the lock, even shared and for an instant, could make its holder-to-be fail."""
    from ..host.procs import describe_pid

    try:
        with safefs.open_file(path, root=root) as fd:
            pids = lock_holders(fd)
    except (FileNotFoundError, GastownError, OSError):
        return None
    return ", ".join(f"pid {pid} ({describe_pid(pid)})" for pid in pids) or None


def say_on_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@contextmanager
def file_lock(
    path: Path, root: Path, wait: float, holder: str, say: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold an exclusive flock on `path` for the block; LockTimeout after `wait` seconds naming who
    holds it.  With `say`, a wait longer than a second says so, once, with the holder."""
    from filelock import lock_descriptor, unlock_descriptor  # only the commands that lock pay for it

    with safefs.open_file(path, os.O_RDWR | os.O_CREAT, root=root, mode=LOCK_MODE) as fd:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, LOCK_MODE)  # an older 0644 lock let any user hold the town hostage
        started = time.monotonic()
        announced = [say is None]

        def attempt() -> bool:
            if lock_descriptor(fd, blocking=False):
                return True
            if not announced[0] and time.monotonic() - started >= ANNOUNCE_AFTER and say is not None:
                announced[0] = True
                say(f"waiting for {path}: {held_by(fd, holder)} holds it (up to {wait:.0f}s)")
            return False

        try:
            got = poll_until(attempt, wait, max_delay=0.01)
        except OSError as exc:
            raise safefs.failure(exc, path, "lock") from None
        if not got:
            raise LockTimeout(
                f"{held_by(fd, holder)} held {path} for more than {wait:.0f}s; wait for it to finish, "
                f"then {Remedy.STATUS}"
            )
        try:
            yield
        finally:
            unlock_descriptor(fd)


@contextmanager
def town_lock(town: Town, wait: float, say: Callable[[str], None] | None = say_on_stderr) -> Iterator[None]:
    """Hold daemon/dolt.lock for a mutating step (start, stop, init-rig, migrate, fixes)."""
    ensure_daemon_dir(town)
    with file_lock(town.lock_file, town.root, wait, "another gt-dolt or gt", say):
        yield
