"""A server of ours never opens a database or folder someone else controls, and never mistakes another
town's server for ours; SQL cannot write files anywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pymysql
import pytest

from conftest import TownFixture, cleanup_town, make_town, old_database
from faultkit import alive, assert_clean
from gastown_tasks.ops.server import server

pytestmark = pytest.mark.hostile
NOBODY = 65534
root_only = pytest.mark.needs_root("plants another user's files (chown)")


def test_a_migration_source_whose_dolt_folder_is_a_symlink_is_skipped(
    town: TownFixture, dolt_binary: Path, tmp_path: Path
) -> None:
    t = town
    victim = old_database(dolt_binary, tmp_path / "victim", [(1, "TOPSECRET")])
    source = t.root / "evil" / ".beads" / "dolt" / "beads"
    source.mkdir(parents=True)
    (source / ".dolt").symlink_to(victim / ".dolt")
    done = t.gt_dolt("migrate")
    assert_clean(done, 0)
    assert f"{source / '.dolt'} is a symlink" in done.stdout
    assert not t.town.rig_dir("evil").exists() and (victim / ".dolt").is_dir()


@root_only
def test_another_users_database_is_neither_migrated_nor_served(town: TownFixture, dolt_binary: Path) -> None:
    t = town
    t.rig("hq")
    source = old_database(dolt_binary, t.root / "evil" / ".beads" / "dolt" / "beads", [(1, "planted")])
    for path in (source, source / ".dolt"):
        os.chown(path, NOBODY, NOBODY)
    moved = t.gt_dolt("migrate")
    assert_clean(moved, 0)
    assert "belongs to uid 65534, not to you" in moved.stdout and not t.town.rig_dir("evil").exists()
    shutil.copytree(source, t.town.rig_dir("evil"), symlinks=True)
    for path in (t.town.rig_dir("evil"), t.town.rig_dir("evil") / ".dolt"):
        os.chown(path, NOBODY, NOBODY)
    start = t.gt_dolt("start")
    assert_clean(start, 1)
    assert f"{t.town.rig_dir('evil')} belongs to uid 65534" in start.stderr and not t.servers()
    assert_clean(t.gt_dolt("doctor"), 1)


def test_a_rig_whose_dolt_folder_is_a_symlink_is_not_served(rigged_town: TownFixture, tmp_path: Path) -> None:
    t = rigged_town
    outside = tmp_path / "outside"
    shutil.move(t.town.rig_dir("hq") / ".dolt", outside)
    (t.town.rig_dir("hq") / ".dolt").symlink_to(outside)
    done = t.gt_dolt("start")
    assert_clean(done, 1)
    assert f"{t.town.rig_dir('hq') / '.dolt'} is a symlink" in done.stderr and not t.servers()


@pytest.mark.parametrize("name", [".doltcfg", ".dolt"])
def test_the_data_dirs_own_dolt_folders_must_be_real(rigged_town: TownFixture, tmp_path: Path, name: str) -> None:
    """.doltcfg holds users and grants; .dolt the server's state: a link would put them outside."""
    t = rigged_town
    outside = tmp_path / "outside"
    outside.mkdir()
    target = t.town.data_dir / name
    shutil.rmtree(target, ignore_errors=True)
    target.symlink_to(outside)
    done = t.gt_dolt("start")
    assert_clean(done, 1)
    assert f"{target} is a symlink" in done.stderr and list(outside.iterdir()) == []


@pytest.mark.parametrize("folder", ["root", "data", "daemon"])
def test_a_town_folder_writable_by_every_user_stops_the_start(rigged_town: TownFixture, folder: str) -> None:
    t = rigged_town
    path = {"root": t.root, "data": t.town.data_dir, "daemon": t.town.daemon_dir}[folder]
    path.chmod(0o777)
    try:
        done = t.gt_dolt("start")
        assert_clean(done, 1)
        assert f"{path} is writable by every user" in done.stderr and f"chmod o-w {path}" in done.stderr
    finally:
        path.chmod(0o755)


def test_rigs_that_differ_only_by_case_are_refused_and_reported(rigged_town: TownFixture) -> None:
    t = rigged_town
    shutil.copytree(t.town.rig_dir("hq"), t.town.rig_dir("HQ"), symlinks=True)
    start = t.gt_dolt("start")
    assert_clean(start, 1)
    assert "differ only by case" in start.stderr and not t.servers()
    assert_clean(t.gt_dolt("doctor"), 1)


@root_only
def test_a_town_marker_another_user_planted_in_their_folder_is_not_a_town(rigged_town: TownFixture) -> None:
    t = rigged_town
    theirs = t.root / "rigA"
    (theirs / "mayor").mkdir(parents=True)
    (theirs / "mayor" / "town.json").write_text("{}")
    (theirs / "src").mkdir()
    for path in (theirs, theirs / "mayor", theirs / "mayor" / "town.json"):
        os.chown(path, NOBODY, NOBODY)
    done = subprocess.run(
        [*__import__("conftest").GT_DOLT, "status", "--json"],
        cwd=theirs / "src",
        env=t.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3 and f'"data_dir": "{t.town.data_dir}"' in done.stdout  # the real town


def test_another_towns_server_is_not_ours_even_when_a_symlink_says_so(tmp_path: Path, dolt_binary: Path) -> None:
    """Town B's .dolt-data replaced by a link to A's after B's server started: A must not adopt it."""
    a, b = make_town(tmp_path / "a"), make_town(tmp_path / "b")
    try:
        a.rig("hq")
        b.rig("hq")
        b_server = server.start(b.town, b.settings)
        b.town.data_dir.rename(b.root / ".dd-real")
        b.town.data_dir.symlink_to(a.town.data_dir)
        status = a.gt_dolt("status", GT_DOLT_PORT=str(b.port))
        assert_clean(status, 3)
        assert status.stdout.startswith("dolt sql-server is not running\n")
        assert f"port {b.port} is held by pid {b_server.pid}" in status.stdout
        assert "which is not this town's server" in status.stdout
        for command in ("stop", "stop-rogue"):
            assert_clean(a.gt_dolt(command, GT_DOLT_PORT=str(b.port)), 0)
        assert alive(b_server.pid)
    finally:
        cleanup_town(a)
        b.town.data_dir.unlink()
        (b.root / ".dd-real").rename(b.town.data_dir)
        cleanup_town(b)


def test_sql_cannot_write_files_outside_the_towns_sql_files_folder(rigged_town: TownFixture, tmp_path: Path) -> None:
    t = rigged_town
    server.start(t.town, t.settings)
    outside = tmp_path / "written-by-sql.txt"
    with pytest.raises(pymysql.err.MySQLError, match="secure-file-priv"):
        t.query(f"SELECT 'x' INTO OUTFILE '{outside}'")
    assert not outside.exists()
    assert t.query("SELECT @@secure_file_priv") == [(str(t.town.sql_files_dir),)]
    assert (t.town.sql_files_dir.stat().st_mode & 0o777) == 0o700


def test_the_servers_files_are_private_even_under_umask_0(rigged_town: TownFixture) -> None:
    t = rigged_town
    done = t.gt_dolt("start", umask=0)
    assert_clean(done, 0)

    def reachable(path: Path) -> bool:  # every folder from .dolt-data down lets others in
        return all(
            folder.stat().st_mode & 0o001 for folder in path.parents if t.town.data_dir in (folder, *folder.parents)
        )

    writable = [p for p in t.town.data_dir.rglob("*") if not p.is_symlink() and p.stat().st_mode & 0o002]
    assert [str(p) for p in writable if reachable(p)] == []  # Dolt makes some files 0666; none is reachable


@root_only
@pytest.mark.parametrize("running", [True, False], ids=["running", "stopped"])
@pytest.mark.parametrize("planted", ["others-folder", "link-inside"])
def test_backups_are_never_written_through_a_folder_or_link_another_user_planted(
    rigged_town: TownFixture, tmp_path: Path, running: bool, planted: str
) -> None:
    """The server writes backups by path as the caller: .dolt-backup and what is in it must be ours."""
    t = rigged_town
    loot = tmp_path / "loot"
    loot.mkdir()
    t.town.backup_dir.mkdir(mode=0o777)
    t.town.backup_dir.chmod(0o777)
    if planted == "others-folder":
        os.chown(t.town.backup_dir, NOBODY, NOBODY)
    (t.town.backup_dir / "hq").symlink_to(loot)
    if running:
        server.start(t.town, t.settings)
    done = t.gt_dolt("backup")
    assert_clean(done, 1)
    assert str(t.town.backup_dir) in done.stderr
    assert list(loot.iterdir()) == []
    check = next(line for line in t.gt_dolt("doctor").stdout.splitlines() if "server folders" in line)
    assert check.startswith("fail") and str(t.town.backup_dir) in check
