"""The town's lock, daemon/dolt.lock: a kernel flock that Gas Town's `gt` takes too."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .errors import GastownError, LockTimeout
from .runfiles import ensure_daemon_dir
from .town import Town


@contextmanager
def town_lock(town: Town, wait: float) -> Iterator[None]:
    """Hold daemon/dolt.lock for a mutating step; never delete the file (it would split waiters)."""
    import filelock  # here, not at module level: read-only commands never lock (~15 ms import)

    ensure_daemon_dir(town.daemon_dir)
    # thread_local=False and a fresh object per call: two threads of one process exclude each
    # other exactly as two processes do, because each call opens its own file description.
    # An explicit mode: filelock would otherwise create it 0666 minus the umask (world-writable
    # under umask 0).
    lock = filelock.FileLock(
        str(town.lock_file), timeout=wait, mode=0o644, thread_local=False, fallback_to_soft=False
    )
    try:
        lock.acquire(poll_interval=0.01)
    except filelock.Timeout:
        raise LockTimeout(
            f"another gt-dolt or gt held {town.lock_file} for more than {wait:.0f}s; "
            "wait for it to finish, then check: gt-dolt status"
        ) from None
    except OSError as exc:
        raise GastownError(
            f"cannot take the town lock {town.lock_file}: {exc.strerror}; make {town.daemon_dir} "
            "a writable folder, then retry"
        ) from None
    try:
        yield
    finally:
        lock.release()
