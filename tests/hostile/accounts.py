"""Other users for the hostile tests: made by the test that asks, deleted after it (root only).

A second user (and a group they share) exists only for the test that asks for it: `useradd` with
a home in the test's own temp folder and no login shell, `userdel`/`groupdel` at teardown.  These
need root (CI runs as root); each test that uses them is marked `root_only`.  Import the fixtures
into a test module to use them (`from accounts import accounts, open_folder, shared_dolt`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gastown_tasks.ops.binary import find_dolt

# The tests that need root (a second user, chown, mount namespaces): skipped in an ordinary
# user's run until the suite's own root-only marker replaces this one name.
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: makes users, chowns, mounts (CI runs as root)")


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
        run(
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
        import pwd

        entry = pwd.getpwnam(name)
        return User(name, entry.pw_uid, entry.pw_gid)

    def group(self, *members: User) -> tuple[str, int]:
        """A group shared by `members` (none of them has it as their own group)."""
        name = f"gtg{secrets.token_hex(4)}"
        run(["groupadd", name])
        self.groups.append(name)
        for member in members:
            run(["usermod", "-aG", name, member.name])
        import grp

        return name, grp.getgrnam(name).gr_gid

    def remove(self) -> None:
        for name in self.users:
            subprocess.run(["userdel", name], capture_output=True, timeout=60)
        for name in self.groups:
            subprocess.run(["groupdel", name], capture_output=True, timeout=60)
        # the users' own groups go with them (--user-group); whatever userdel left is removed too
        for name in self.users:
            subprocess.run(["groupdel", name], capture_output=True, timeout=60)


def run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr}"


@pytest.fixture
def accounts(tmp_path: Path) -> Iterator[Accounts]:
    """Users and groups made for this test only (root only), removed after it."""
    made = Accounts(tmp_path / "homes")
    try:
        yield made
    finally:
        made.remove()


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A root-owned folder every user may enter (pytest's own temp folders are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="gastown-hostile-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def shared_dolt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
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
