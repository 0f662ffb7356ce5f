"""Rule 1, least privilege: the server never holds more power than the people who can write its files.

The matrix: every folder the server opens by path (and one above the town), times everyone who
might be able to change it: every user (o+w), a group with another member (g+w, root only: the
group and its member are made by the test), another owner (root only).  Each is refused by
`start` before anything runs, naming the path and the remedy, and failed by `doctor`.  Inside a
database, a link, a FIFO or a second name of a file is refused the same way, and the file it
points at is never touched.  Root in an ordinary user's town runs the command as that user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from conftest import GT_DOLT, TownFixture, cleanup_town, make_town
from faultkit import assert_clean
from gastown_tasks.ops.errors import NotOurs
from gastown_tasks.ops.server import server
from hostile import Accounts, User, accounts_fixture, open_folder_fixture, root_only, shared_dolt_fixture  # noqa: F401

pytestmark = pytest.mark.hostile

RESTORE = ("restore", "--rig", "hq", "--as", "copy")
# Each folder the server opens by path, made when a fresh town lacks it.
FOLDERS: dict[str, Callable[[TownFixture], Path]] = {
    "town-root": lambda t: t.root,
    "dolt-data": lambda t: t.town.data_dir,
    "data-dir-own-dolt": lambda t: t.town.data_dir / ".dolt",
    "doltcfg": lambda t: t.town.data_dir / ".doltcfg",
    "daemon": lambda t: t.town.daemon_dir,
    "sql-files": lambda t: t.town.sql_files_dir,
    "rig": lambda t: t.town.rig_dir("hq"),
    "rig-dolt": lambda t: t.town.rig_dir("hq") / ".dolt",
    "rig-noms": lambda t: t.town.rig_dir("hq") / ".dolt" / "noms",
    "rig-noms-oldgen": lambda t: t.town.rig_dir("hq") / ".dolt" / "noms" / "oldgen",
    "hidden-database": lambda t: t.town.data_dir / ".hidden" / ".dolt" / "noms",  # Dolt serves `.x` too
}


def folder_at(t: TownFixture, position: str) -> Path:
    path = FOLDERS[position](t)
    if position == "hidden-database":
        shutil.copytree(t.town.rig_dir("hq"), t.town.data_dir / ".hidden", symlinks=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


def refused_everywhere(t: TownFixture, path: Path, *said: str) -> None:
    """start refuses before anything runs, naming `path` and what to do; doctor fails on it."""
    start = t.gt_dolt("start")
    assert_clean(start, 1)
    for text in (str(path), *said):
        assert text in start.stderr, start.stderr
    assert not t.servers() and not t.town.pid_file.exists()
    doctor = t.gt_dolt("doctor")
    assert_clean(doctor, 1)
    line = next(line for line in doctor.stdout.splitlines() if " privilege:" in line)
    assert line.startswith("fail") and str(path) in line, doctor.stdout


class TestLeastPrivilege:
    @pytest.mark.parametrize("position", list(FOLDERS))
    def test_a_folder_every_user_may_change_is_refused_by_start_and_failed_by_doctor(
        self, rigged_town: TownFixture, position: str
    ) -> None:
        t = rigged_town
        path = folder_at(t, position)
        path.chmod(path.stat().st_mode | 0o002)
        refused_everywhere(t, path, f"chmod o-w {path}")

    @pytest.mark.parametrize(
        ("position", "args"),
        [
            *((p, a) for p in ("dolt-data", "daemon") for a in (("backup",), RESTORE, ("sql", "-q", "SELECT 1"))),
            ("rig-noms", ("backup",)),
            ("rig-noms", ("sql", "-q", "SELECT 1")),
        ],
    )
    def test_every_command_that_runs_dolt_on_the_town_refuses_it_too(
        self, rigged_town: TownFixture, position: str, args: tuple[str, ...]
    ) -> None:
        """Not only the server: the Dolt CLI of a backup, a restore or an embedded `sql` opens the
        town (or the rig) by path as us, too; a rig it will not open is said, never skipped silently."""
        t = rigged_town
        assert_clean(t.gt_dolt("backup"), 0)
        path = folder_at(t, position)
        path.chmod(path.stat().st_mode | 0o002)
        before = sorted(p.name for p in t.town.data_dir.iterdir())
        done = t.gt_dolt(*args)
        assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
        assert str(path) in done.stderr and f"chmod o-w {path}" in done.stderr, done.stderr
        assert sorted(p.name for p in t.town.data_dir.iterdir()) == before

    @pytest.mark.parametrize("mode", [0o777, 0o1777], ids=["open", "sticky-as-tmp"])
    def test_a_folder_above_the_town_that_every_user_may_change_is_refused_unless_sticky(
        self, tmp_path: Path, mode: int
    ) -> None:
        """Whoever may rename entries above the town could swap the whole town under the server;
        in a sticky folder (as /tmp) nobody may rename another's entries."""
        above = tmp_path / "above"
        t = make_town(above / "town")
        try:
            t.rig("hq")
            above.chmod(mode)
            if mode == 0o777:
                refused_everywhere(t, above, f"chmod o-w {above}", "(it holds the town)")
            else:
                assert_clean(t.gt_dolt("start"), 0)
                line = next(line for line in t.gt_dolt("doctor").stdout.splitlines() if " privilege:" in line)
                assert line.startswith("ok"), line
        finally:
            above.chmod(0o755)
            cleanup_town(t)

    @root_only
    @pytest.mark.parametrize("position", list(FOLDERS))
    def test_a_folder_a_group_with_another_member_may_change_is_refused(
        self,
        rigged_town: TownFixture,
        accounts: Accounts,
        position: str,
    ) -> None:
        t = rigged_town
        other = accounts.user()
        group, gid = accounts.group(other)
        path = folder_at(t, position)
        os.chown(path, -1, gid)
        path.chmod(path.stat().st_mode | 0o020)
        refused_everywhere(t, path, f"group {group} ({other.name})", f"chmod g-w {path}")

    @root_only
    @pytest.mark.parametrize("position", [p for p in FOLDERS if p != "town-root"])
    def test_a_folder_another_user_owns_is_refused(
        self,
        rigged_town: TownFixture,
        accounts: Accounts,
        position: str,
    ) -> None:
        t = rigged_town
        other = accounts.user()
        path = folder_at(t, position)
        os.chown(path, other.uid, other.gid)
        refused_everywhere(t, path, f"belongs to uid {other.uid}")

    @root_only
    @pytest.mark.parametrize("position", ["dolt-data", "rig-noms"])
    def test_a_group_nobody_else_is_in_may_write(self, rigged_town: TownFixture, position: str) -> None:
        """A user-private group (umask 002 systems) is no one else: root's own group here."""
        t = rigged_town
        path = folder_at(t, position)
        os.chown(path, -1, 0)
        path.chmod(path.stat().st_mode | 0o020)
        assert_clean(t.gt_dolt("start"), 0)
        line = next(line for line in t.gt_dolt("doctor").stdout.splitlines() if " privilege:" in line)
        assert line.startswith("ok"), line


# What can be planted inside a database: each must make start refuse without Dolt ever opening it.
def _link_to_canary(folder: Path, canary: Path) -> Path:
    victim = folder / "journal.idx"
    victim.unlink()
    victim.symlink_to(canary)
    return victim


def _config_link(folder: Path, canary: Path) -> Path:
    victim = folder.parent / "repo_state.json"
    victim.unlink()
    victim.symlink_to(canary)
    return victim


def _fifo(folder: Path, canary: Path) -> Path:
    victim = folder / "planted.fifo"
    os.mkfifo(victim)
    return victim


def _hard_link(folder: Path, canary: Path) -> Path:
    victim = folder / "planted-name"
    os.link(canary, victim)
    return victim


PLANTED: dict[str, Callable[[Path, Path], Path]] = {
    "symlink-in-noms": _link_to_canary,
    "symlink-for-repo-state": _config_link,
    "fifo-in-noms": _fifo,
    "hard-link-in-noms": _hard_link,
}


class TestNothingInADatabaseLeadsOut:
    @pytest.mark.parametrize("plant", list(PLANTED))
    def test_a_plant_inside_a_database_stops_the_start_and_the_file_it_names_is_untouched(
        self, rigged_town: TownFixture, tmp_path: Path, plant: str
    ) -> None:
        t = rigged_town
        canary = tmp_path / "canary.txt"
        canary.write_text("never truncated, never rewritten\n")
        before = canary.read_bytes(), canary.stat().st_mode
        victim = PLANTED[plant](t.town.rig_dir("hq") / ".dolt" / "noms", canary)
        refused_everywhere(t, victim, "remove it")
        assert (canary.read_bytes(), canary.stat().st_mode) == before

    @root_only
    def test_a_group_member_who_swaps_a_noms_file_for_a_link_never_gets_root_to_write_through_it(
        self, accounts: Accounts, open_folder: Path, tmp_path: Path
    ) -> None:
        """The issue's critical: a group member replaces a file in noms with a link to a root-owned
        file outside the town; root's Dolt would truncate and rewrite it.  The start refuses first."""
        t = make_town(open_folder / "town")
        try:
            t.rig("hq")
            attacker = accounts.user()
            group, gid = accounts.group(attacker)
            noms = t.town.rig_dir("hq") / ".dolt" / "noms"
            for path in (t.root, t.town.data_dir, t.town.rig_dir("hq"), noms.parent):
                path.chmod(path.stat().st_mode | 0o005)  # the attacker may reach noms ...
            os.chown(noms, -1, gid)
            noms.chmod(0o775)  # ... and write in it, through the group
            canary = tmp_path / "root-owned.txt"
            canary.write_text("root's file\n")
            before = canary.read_bytes()
            swap = f"import os; os.remove('journal.idx'); os.symlink({str(canary)!r}, 'journal.idx')"
            done = subprocess.run(
                [*attacker.run_as(), "/usr/bin/python3", "-c", swap],
                cwd=noms,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr  # the attack itself worked
            refused_everywhere(t, noms, f"group {group} ({attacker.name})")
            assert canary.read_bytes() == before
        finally:
            cleanup_town(t)

    @root_only
    def test_a_group_member_cannot_swap_the_config_because_the_start_refuses_their_folder(
        self,
        rigged_town: TownFixture,
        accounts: Accounts,
    ) -> None:
        """The issue's other critical: a group member who can write .dolt-data renames their own
        config.yaml (listener.host 0.0.0.0) over ours after the spawn.  No spawn happens."""
        t = rigged_town
        attacker = accounts.user()
        group, gid = accounts.group(attacker)
        os.chown(t.town.data_dir, -1, gid)
        t.town.data_dir.chmod(0o775)
        refused_everywhere(t, t.town.data_dir, f"group {group} ({attacker.name})", f"chmod g-w {t.town.data_dir}")
        assert not t.town.config_file.exists() or "0.0.0.0" not in t.town.config_file.read_text()


def _owned_town(owner: User, folder: Path) -> TownFixture:
    """A town an ordinary user made: every file of it theirs."""
    t = make_town(folder / "town")
    home = folder / "dolt-home"
    (home / ".dolt").mkdir(parents=True)
    (home / ".dolt" / "config_global.json").write_text(
        json.dumps({"user.name": "owner", "user.email": "owner@gastown.invalid", "metrics.disabled": "true"})
    )
    for path in (t.root, *t.root.rglob("*"), home, *home.rglob("*")):
        os.chown(path, owner.uid, owner.gid, follow_symlinks=False)
    return t


class TestRootInAnOrdinaryUsersTown:
    @root_only
    def test_root_runs_every_command_as_the_towns_owner_and_says_so(
        self,
        accounts: Accounts,
        open_folder: Path,
        shared_dolt: Path,
    ) -> None:
        owner = accounts.user()
        t = _owned_town(owner, open_folder)
        env = {"INVOKE_DOLT_BINARY": str(shared_dolt), "DOLT_ROOT_PATH": str(open_folder / "dolt-home")}
        try:
            made = t.gt_dolt("init-rig", "hq", **env)
            assert_clean(made, 0)
            assert t.town.rig_dir("hq").stat().st_uid == owner.uid
            started = t.gt_dolt("start", **env)
            assert_clean(started, 0)
            assert f"running as {owner.name} (uid {owner.uid})" in started.stderr
            pid = int(t.town.pid_file.read_text())
            assert psutil.Process(pid).uids().effective == owner.uid  # the server is the owner's, not root's
            assert t.town.pid_file.stat().st_uid == owner.uid and t.town.log_file.stat().st_uid == owner.uid
            as_root = t.gt_dolt("status", "--json", **env)
            assert_clean(as_root, 0)
            assert json.loads(as_root.stdout)["pid"] == pid
            as_owner = subprocess.run(
                [*owner.run_as(), *GT_DOLT, "status", "--json"],
                cwd=t.root,
                env=t.env(**env, HOME=str(open_folder / "dolt-home")),  # as `sudo -u` would set it
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert_clean(as_owner, 0)
            assert json.loads(as_owner.stdout)["pid"] == pid  # the tools the owner runs find it theirs
            stopped = t.gt_dolt("stop", **env)
            assert_clean(stopped, 0)
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        finally:
            for proc in t.servers():
                proc.kill()

    @root_only
    def test_the_operations_refuse_an_ordinary_users_town_when_root_calls_them(
        self,
        accounts: Accounts,
        open_folder: Path,
    ) -> None:
        """A library call never changes its caller's uid: it says who should run it."""
        owner = accounts.user()
        t = _owned_town(owner, open_folder)
        with pytest.raises(NotOurs, match=f"belongs to uid {owner.uid} \\({owner.name}\\): run gt-dolt as that user"):
            server.start(t.town, t.settings)
        assert not t.servers()
