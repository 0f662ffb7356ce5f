"""Helpers for the hostile-workspace tests: plants, a canary outside the town, bounded child runs.

A plant puts something other than what gt-dolt writes at a position in the town (a symlink to a
canary file or folder outside the town, a FIFO, a folder, a link to /dev/zero, an empty file,
50 MB of garbage).  The canary is snapshotted (bytes, modes, sizes, mtimes) before and after: it
must be unchanged, whatever the commands did.  Every child runs with a timeout, so a hang fails
the test instead of stalling the suite.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from conftest import GT_DOLT, TownFixture, end
from faultkit import tree_snapshot

UNSAFE = ("link-to-file", "link-to-folder", "fifo", "folder", "dev-zero")
JUNK = ("empty", "garbage")
PLANTS = UNSAFE + JUNK
GARBAGE_BYTES = 50 * 1024 * 1024
COMMAND_TIMEOUT = 90


@dataclass(frozen=True)
class Canary:
    """Things outside the town that a planted link points at; they must never change."""

    root: Path

    @property
    def file(self) -> Path:
        return self.root / "secret.txt"

    @property
    def folder(self) -> Path:
        return self.root / "outside"

    def snapshot(self) -> dict[str, tuple]:
        snap = tree_snapshot(self.root)
        snap["."] = ("dir", self.root.stat().st_mode)
        return snap


def make_canary(root: Path, old_db: Path) -> Canary:
    """A private secret file and a folder holding an old-layout database (a migration's bait)."""
    canary = Canary(root)
    canary.folder.mkdir(parents=True)
    canary.file.write_text("canary: never to be read into the town, written, moved or chmod-ed\n")
    canary.file.chmod(0o600)
    bait = canary.folder / "gastown" / ".beads" / "dolt" / "beads"
    bait.parent.mkdir(parents=True)
    shutil.copytree(old_db, bait, symlinks=True)
    return canary


def remove(path: Path) -> None:
    if path.is_symlink() or path.is_file() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def plant(path: Path, kind: str, target_folder: Path, canary: Canary) -> None:
    remove(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "link-to-file":
        path.symlink_to(canary.file)
    elif kind == "link-to-folder":
        path.symlink_to(target_folder)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        with open(path, "wb") as out:
            block = os.urandom(1024 * 1024)
            for _ in range(GARBAGE_BYTES // len(block)):
                out.write(block)
    else:
        raise ValueError(kind)


def gt(t: TownFixture, *args: str, timeout: float = COMMAND_TIMEOUT, **env: str) -> subprocess.CompletedProcess[str]:
    """gt-dolt as a user runs it; a hang fails the test (TimeoutExpired names the command)."""
    return subprocess.run(
        [*GT_DOLT, *args],
        cwd=t.root,
        env=t.env(**env),
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def on_a_terminal(t: TownFixture, *args: str) -> tuple[int, bytes]:
    """gt-dolt writing to a terminal (a pty for stdout and stderr): its exit code and every byte it
    wrote, read until it exits and closes the terminal, within COMMAND_TIMEOUT."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([*GT_DOLT, *args], cwd=t.root, env=t.env(), stdout=slave, stderr=slave)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + COMMAND_TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child exited and the terminal is closed
                break
            if not chunk:
                break
            seen += chunk
        return proc.wait(timeout=COMMAND_TIMEOUT), seen
    finally:
        os.close(master)
        end(proc)
