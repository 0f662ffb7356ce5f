"""Helpers for the hostile-workspace tests: plants, a canary outside the town, bounded child runs.

A plant puts something other than what gt-dolt writes at a position in the town (a symlink to a
canary file or folder outside the town, a FIFO, a folder, a link to /dev/zero, an empty file,
50 MB of garbage).  The canary is snapshotted (bytes, modes, sizes, mtimes) before and after: it
must be unchanged, whatever the commands did.  Every child runs with a timeout, so a hang fails
the test instead of stalling the suite.

Other users (root only): a second user, and a group they share, exist only for the test that asks
(`accounts`): `useradd` with a home in the test's own temp folder and no login shell, removed at
teardown.  Import a fixture into a test module to use it (`from hostile import accounts_fixture`,
then ask for `accounts`).
"""

from __future__ import annotations

import grp
import os
import pty
import pwd
import secrets
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import GT_DOLT, TownFixture, end
from faultkit import tree_snapshot, wait_until
from gastown_tasks.ops.build.binary import find_dolt
from gastown_tasks.ops.sql import sqlclient

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


PROJECT_TASKS = "from invoke import Collection\nimport gastown_tasks\nns = Collection()\ngastown_tasks.add_dolt(ns)\n"


def with_project(t: TownFixture, invoke_yaml: str) -> None:
    """The town as a project of its own: a tasks.py adding the dolt collection, and its invoke.yaml."""
    (t.root / "tasks.py").write_text(PROJECT_TASKS)
    (t.root / "invoke.yaml").write_text(invoke_yaml)


def wait_answering(t: TownFixture, port: int | None = None) -> None:
    """Until a server answers SQL on the town's port (or `port`)."""
    settings = t.settings.with_overrides(port=port or t.port)
    wait_until(lambda: sqlclient.served_databases(settings, timeout=1) is not None, f"a server to answer on {port}")


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


# The tests that need root (a second user, chown, mount namespaces): skipped in an ordinary
# user's run until the suite's own root-only marker replaces this one name.
root_only = pytest.mark.needs_root("makes users and groups, chowns folders to them (CI runs as root)")


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int  # the user's own (private) group

    def run_as(self) -> list[str]:
        """The prefix that runs a command as this user, with only its own groups."""
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups"]


@dataclass
class Accounts:
    home: Path
    users: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)

    def user(self) -> User:
        name = f"gth{secrets.token_hex(4)}"
        home = self.home / name
        run_root(
            [
                "useradd",
                "--no-create-home",
                "--home-dir",
                str(home),
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
                name,
            ]
        )
        self.users.append(name)
        entry = pwd.getpwnam(name)
        return User(name, entry.pw_uid, entry.pw_gid)

    def group(self, *members: User) -> tuple[str, int]:
        """A group shared by `members` (none of them has it as their own group)."""
        name = f"gtg{secrets.token_hex(4)}"
        run_root(["groupadd", name])
        self.groups.append(name)
        for member in members:
            run_root(["usermod", "-aG", name, member.name])
        return name, grp.getgrnam(name).gr_gid

    def remove(self) -> None:
        for name in self.users:
            subprocess.run(["userdel", name], capture_output=True, timeout=60)
        for name in self.groups:
            subprocess.run(["groupdel", name], capture_output=True, timeout=60)
        # the users' own groups go with them (--user-group); whatever userdel left is removed too
        for name in self.users:
            subprocess.run(["groupdel", name], capture_output=True, timeout=60)


def run_root(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr}"


@pytest.fixture(name="accounts")
def accounts_fixture(tmp_path: Path) -> Iterator[Accounts]:
    """Users and groups made for this test only (root only), removed after it."""
    made = Accounts(tmp_path / "homes")
    try:
        yield made
    finally:
        made.remove()


@pytest.fixture(name="open_folder")
def open_folder_fixture() -> Iterator[Path]:
    """A root-owned folder every user may enter (pytest's own temp folders are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="gastown-hostile-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(name="shared_dolt", scope="session")
def shared_dolt_fixture() -> Iterator[Path]:
    """The pinned Dolt where every user can run it (root's cache is root's alone): a link, or a copy."""
    folder = Path(tempfile.mkdtemp(prefix="gastown-dolt-"))
    folder.chmod(0o755)
    (folder / "bin").mkdir(mode=0o755)
    target = folder / "bin" / "dolt"
    source = find_dolt()
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
    target.chmod(0o755)
    try:
        yield target
    finally:
        shutil.rmtree(folder, ignore_errors=True)
