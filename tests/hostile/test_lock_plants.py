"""The town lock and the watch lock against plants at their paths (no server needed).

A link, a FIFO, a folder, a device, a second name or someone else's file at the lock path is refused
with one line naming it, never followed, truncated or chmod-ed, never blocked on; so is one swapped
in just before the lock file is opened, and a daemon folder swapped for a link then leads nowhere
outside the town.  Every lock attempt runs with a bound: a hang fails the test.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from faultkit import tree_snapshot
from gastown_tasks.ops.errors import LockTimeout, UnsafeFile
from gastown_tasks.ops.files.locking import file_lock, town_lock
from gastown_tasks.ops.town import Town
from hostile import Canary
from hostile import plant as hostile_plant

pytestmark = pytest.mark.hostile

BOUND = 60  # seconds a lock attempt may take before the test calls it a hang
NOBODY = 65534
HOLD = """
import fcntl, sys, time
fd = open(sys.argv[1], "r")
fcntl.flock(fd, fcntl.LOCK_EX)
print("holding", flush=True)
time.sleep(600)
"""

Taker = Callable[[Town], AbstractContextManager[None]]
LOCKS: dict[str, tuple[Callable[[Town], Path], Taker]] = {
    "town lock": (lambda town: town.lock_file, lambda town: town_lock(town, wait=0, say=None)),
    "watch lock": (
        lambda town: town.watch_lock,
        lambda town: file_lock(town.watch_lock, town.root, 0, "another gt-dolt watch"),
    ),
}


@pytest.fixture
def town(tmp_path: Path) -> Town:
    root = tmp_path / "town"
    (root / "mayor").mkdir(parents=True)
    (root / "mayor" / "town.json").write_text('{"name": "test-town"}\n')
    (root / "daemon").mkdir()
    return Town(root.resolve())


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the town with a secret file, a folder and another town's lock files: bait."""
    canary = Canary(tmp_path / "outside")
    canary.folder.mkdir(parents=True)
    canary.file.write_text("canary: never written, truncated or chmod-ed\n")
    canary.file.chmod(0o600)
    for name in ("dolt.lock", "dolt-watch.lock"):
        (canary.root / name).write_text("another town's lock: keep\n")
        (canary.root / name).chmod(0o644)
    return canary.root


def bounded(take: Callable[[], object]) -> BaseException | None:
    """Run `take` in a thread; what it raised (None if nothing).  A run past BOUND fails the test."""
    raised: list[BaseException] = []

    def run() -> None:
        try:
            take()
        except BaseException as exc:  # reported to the test, which asserts on it
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(BOUND)
    assert not thread.is_alive(), f"the lock attempt did not end within {BOUND}s (blocked on a plant?)"
    return raised[0] if raised else None


def hold_once(taker: Taker, town: Town) -> Callable[[], None]:
    def take() -> None:
        with taker(town):
            pass

    return take


def plant(path: Path, kind: str, outside: Path) -> None:
    """hostile.py's plants, and two of a lock's own: a link to another town's lock, a second name."""
    if kind == "link-to-lock-outside":
        path.symlink_to(outside / path.name)
    elif kind == "hard-link":
        os.link(outside / "secret.txt", path)  # a file of ours, with a second name outside the town
    else:
        canary = Canary(outside)
        hostile_plant(path, kind, canary.folder, canary)


KINDS = ("link-to-file", "link-to-lock-outside", "link-to-folder", "fifo", "folder", "dev-zero", "hard-link")
WHAT = {
    "link-to-file": "a symlink to",
    "link-to-lock-outside": "a symlink to",
    "link-to-folder": "a symlink to",
    "fifo": "a FIFO (named pipe)",
    "folder": "a folder",
    "dev-zero": "a symlink to /dev/zero",
    "hard-link": "a hard link (2 names)",
}


def assert_one_line_naming(exc: BaseException | None, path: Path, what: str) -> None:
    assert isinstance(exc, UnsafeFile), repr(exc)
    message = str(exc)
    assert f"{path} is {what}" in message and "\n" not in message, message


@pytest.mark.parametrize("lock", LOCKS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_plant_at_the_lock_path_is_refused_in_one_line_and_left_as_it_was(
    town: Town, outside: Path, lock: str, kind: str
) -> None:
    where, taker = LOCKS[lock]
    path = where(town)
    plant(path, kind, outside)
    before_outside, before_plant = tree_snapshot(outside), path.lstat()
    exc = bounded(hold_once(taker, town))
    assert_one_line_naming(exc, path, WHAT[kind])
    assert tree_snapshot(outside) == before_outside  # nothing truncated, chmod-ed or created there
    after = path.lstat()
    assert (after.st_ino, after.st_mode) == (before_plant.st_ino, before_plant.st_mode)  # not replaced
    for name in ("dolt.lock", "dolt-watch.lock", "secret.txt"):
        with open(outside / name, "rb") as other:
            fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # nothing left locked out there


@pytest.mark.needs_root("plants a lock file that belongs to another user (chown)")
@pytest.mark.parametrize("lock", LOCKS)
def test_someone_elses_file_at_the_lock_path_is_refused(town: Town, lock: str) -> None:
    where, taker = LOCKS[lock]
    path = where(town)
    path.write_text("theirs\n")
    os.chown(path, NOBODY, NOBODY)
    exc = bounded(hold_once(taker, town))
    assert_one_line_naming(exc, path, f"owned by uid {NOBODY}")
    assert path.read_text() == "theirs\n" and path.stat().st_uid == NOBODY


@pytest.fixture
def swap_on_open(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path, Callable[[], None]], None]]:
    """Run `swap` once, just before the lock file is first opened (by its path, or by its name in
    its folder): the moment between the folder checks and the open, when another user would strike."""
    real_open = os.open

    def arm(path: Path, swap: Callable[[], None]) -> None:
        armed = [True]

        def opening(file: str, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
            if armed[0] and os.fspath(file) == (path.name if dir_fd is not None else str(path)):
                armed[0] = False
                swap()
            return real_open(file, flags, mode, dir_fd=dir_fd)

        monkeypatch.setattr(os, "open", opening)

    yield arm


@pytest.mark.parametrize("lock", LOCKS)
def test_a_fifo_swapped_in_as_the_lock_is_opened_is_refused_not_held(
    town: Town, lock: str, swap_on_open: Callable[[Path, Callable[[], None]], None]
) -> None:
    where, taker = LOCKS[lock]
    path = where(town)
    swap_on_open(path, lambda: os.mkfifo(path))
    exc = bounded(hold_once(taker, town))
    assert_one_line_naming(exc, path, "a FIFO (named pipe)")
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # given back
    finally:
        os.close(fd)


@pytest.mark.parametrize("lock", LOCKS)
def test_a_daemon_folder_swapped_for_a_link_as_the_lock_is_opened_never_leads_outside(
    town: Town, outside: Path, lock: str, swap_on_open: Callable[[Path, Callable[[], None]], None]
) -> None:
    where, taker = LOCKS[lock]
    path = where(town)
    before = tree_snapshot(outside)
    moved = town.root / "daemon.moved"

    def swap() -> None:
        town.daemon_dir.rename(moved)
        town.daemon_dir.symlink_to(outside)

    swap_on_open(path, swap)
    assert bounded(hold_once(taker, town)) is None  # the lock was taken in the folder that was checked
    assert town.daemon_dir.is_symlink()  # the swap did happen
    assert (moved / path.name).is_file() and tree_snapshot(outside) == before  # nothing made or changed there
    with open(outside / path.name, "rb") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # and nothing left locked


@pytest.mark.parametrize("lock", LOCKS)
def test_the_lock_keeps_what_is_in_its_file_and_makes_it_private(town: Town, lock: str) -> None:
    where, taker = LOCKS[lock]
    path = where(town)
    path.write_bytes(b"gt wrote this\n")
    path.chmod(0o644)  # as an older version left it
    assert bounded(hold_once(taker, town)) is None
    assert path.read_bytes() == b"gt wrote this\n" and path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("lock", LOCKS)
def test_a_lock_another_process_holds_is_a_lock_timeout_naming_it(town: Town, lock: str) -> None:
    where, taker = LOCKS[lock]
    path = where(town)
    path.touch(mode=0o600)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        exc = bounded(hold_once(taker, town))
        assert isinstance(exc, LockTimeout) and f"pid {holder.pid} (" in str(exc), repr(exc)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert bounded(hold_once(taker, town)) is None  # free again once its holder is gone


def test_the_town_lock_is_a_flock_others_see_and_is_given_back(town: Town) -> None:
    with town_lock(town, wait=0, say=None), open(town.lock_file, "rb") as other, pytest.raises(BlockingIOError):
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(town.lock_file, "rb") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_a_wait_for_the_town_lock_says_who_holds_it_once_then_times_out(town: Town) -> None:
    said: list[str] = []
    with town_lock(town, wait=0, say=None):
        exc = bounded(hold_once(lambda t: town_lock(t, wait=1.5, say=said.append), town))
    assert isinstance(exc, LockTimeout) and f"pid {os.getpid()} (" in str(exc), repr(exc)
    assert len(said) == 1 and said[0].startswith(f"waiting for {town.lock_file}: pid {os.getpid()} ("), said
