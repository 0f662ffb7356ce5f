"""The town's lock, daemon/dolt.lock: a kernel flock that Gas Town's `gt` takes too.

The lock file is opened like every run file (no link followed, no FIFO blocked on, a regular file
of ours) and never truncated or deleted: deleting it would split waiters across two inodes.
The flock is taken on that very descriptor, so nobody can swap the file between the checks and
the lock.  (filelock opens by path, which a town writable by others could redirect.)
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import safefs
from .errors import LockTimeout, Remedy
from .polling import poll_until
from .runfiles import ensure_daemon_dir
from .town import Town

LOCK_MODE = 0o600  # readable is enough to flock: only we (and `gt`, as us) may take it


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise


@contextmanager
def file_lock(path: Path, root: Path, wait: float, holder: str) -> Iterator[None]:
    """Hold an exclusive flock on `path` for the block; LockTimeout after `wait` seconds."""
    with safefs.open_file(path, os.O_RDWR | os.O_CREAT, root=root, mode=LOCK_MODE) as fd:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, LOCK_MODE)  # an older 0644 lock let any user hold the town hostage
        try:
            got = poll_until(lambda: _try_flock(fd), wait, max_delay=0.01)
        except OSError as exc:
            raise safefs.failure(exc, path, "lock") from None
        if not got:
            raise LockTimeout(
                f"{holder} held {path} for more than {wait:.0f}s; wait for it to finish, then {Remedy.STATUS}"
            )
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


@contextmanager
def town_lock(town: Town, wait: float) -> Iterator[None]:
    """Hold daemon/dolt.lock for a mutating step (start, stop, init-rig, migrate, fixes)."""
    ensure_daemon_dir(town)
    with file_lock(town.lock_file, town.root, wait, "another gt-dolt or gt"):
        yield
