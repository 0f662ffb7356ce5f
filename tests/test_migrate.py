"""migrate from the old .beads layout, with databases made by the real Dolt and read back via SQL."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import GT_DOLT, TownFixture, old_database
from faultkit import assert_clean
from gastown_tasks.ops.build.binary import dolt_env
from gastown_tasks.ops.errors import MigrationError
from gastown_tasks.ops.files import staging
from gastown_tasks.ops.rigs import migrate
from gastown_tasks.ops.server import server


def rows(t: TownFixture, rig: str) -> list[tuple]:
    return t.query("SELECT id, title FROM issues ORDER BY id", rig)


def test_migrate_moves_town_and_rig_databases_and_every_row_is_served(town: TownFixture, dolt_binary: Path) -> None:
    t = town
    hq = old_database(dolt_binary, t.root / ".beads" / "dolt" / "beads", [(1, "town bead")])
    gastown = old_database(dolt_binary, t.root / "gastown" / ".beads" / "dolt" / "beads", [(1, "a"), (2, "b")])
    (t.root / "gastown" / ".beads" / "issues.jsonl").write_text("{}\n")  # other bead files stay
    old_database(dolt_binary, t.root / ".hidden" / ".beads" / "dolt" / "beads", [(9, "skipped")])
    (t.root / "notarig" / ".beads" / "dolt" / "beads").mkdir(parents=True)  # no .dolt/: not a source

    done = t.gt_dolt("migrate")
    assert done.returncode == 0, done.stderr
    assert "summary: moved 2" in done.stdout
    assert not hq.exists() and not gastown.exists()
    assert not (t.root / ".beads").exists()  # emptied .beads/dolt and .beads removed
    assert not (t.root / "gastown" / ".beads" / "dolt").exists()
    assert (t.root / "gastown" / ".beads" / "issues.jsonl").exists()
    assert (t.root / ".hidden" / ".beads" / "dolt" / "beads").exists()

    server.start(t.town, t.settings)
    assert rows(t, "hq") == [(1, "town bead")]
    assert rows(t, "gastown") == [(1, "a"), (2, "b")]


def test_second_migrate_finds_nothing_to_do(town: TownFixture, dolt_binary: Path) -> None:
    old_database(dolt_binary, town.root / ".beads" / "dolt" / "beads", [(1, "x")])
    assert town.gt_dolt("migrate").returncode == 0
    again = town.gt_dolt("migrate")
    assert again.returncode == 0 and "nothing to migrate" in again.stdout


def test_dry_run_prints_source_target_and_size_and_changes_nothing(town: TownFixture, dolt_binary: Path) -> None:
    source = old_database(dolt_binary, town.root / "beads" / ".beads" / "dolt" / "beads", [(1, "x")])
    done = town.gt_dolt("migrate", "--dry-run")
    assert done.returncode == 0
    assert f"would move {source} -> {town.town.data_dir / 'beads'}" in done.stdout and "bytes" in done.stdout
    assert source.exists() and not (town.town.data_dir / "beads").exists()


def test_existing_target_is_skipped_and_its_source_left_untouched(rigged_town: TownFixture, dolt_binary: Path) -> None:
    t = rigged_town
    source = old_database(dolt_binary, t.root / ".beads" / "dolt" / "beads", [(1, "old")])
    done = t.gt_dolt("migrate")
    assert done.returncode == 0
    assert "skip" in done.stdout and "already exists" in done.stdout
    assert (source / ".dolt").is_dir()


def test_migrate_refuses_while_the_server_runs_and_changes_nothing(rigged_town: TownFixture, dolt_binary: Path) -> None:
    t = rigged_town
    source = old_database(dolt_binary, t.root / "gastown" / ".beads" / "dolt" / "beads", [(1, "x")])
    server.start(t.town, t.settings)
    done = t.gt_dolt("migrate")
    assert done.returncode == 1 and "stop it first" in done.stderr
    assert source.exists() and not (t.town.data_dir / "gastown").exists()


IN_A_MOUNT_NAMESPACE = """
import json, os, subprocess, sys
mount, data_dir, command = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3:]
subprocess.run(["mount", *mount], check=True)
print("mounted:", *mount, file=sys.stderr, flush=True)
code = subprocess.run(command).returncode
print("left in .dolt-data:", json.dumps(sorted(os.listdir(data_dir))), file=sys.stderr)
sys.exit(code)
"""


def migrate_in_a_mount_namespace(t: TownFixture, *mount: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """`gt-dolt migrate` after `mount MOUNT...`, both in a private mount namespace that ends with them
    (nothing outside the test sees the mount); also what .dolt-data held then, seen from inside."""
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", IN_A_MOUNT_NAMESPACE]
        + [json.dumps(mount), str(t.town.data_dir), *GT_DOLT, "migrate"],
        cwd=t.root,
        env=t.env(),
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert "mounted:" in done.stderr, done.stderr  # the other filesystem really was there
    left = json.loads(done.stderr.rsplit("left in .dolt-data: ", 1)[1])
    return done, left


def _force_exdev(monkeypatch: pytest.MonkeyPatch, source: Path) -> list[str]:
    """rename(2) of `source` fails with EXDEV, as across filesystems (by what it renames, however the
    call names it: the code renames through folder descriptors); returns the names it refused."""
    real = migrate.rename_noreplace
    moving = os.stat(source)
    refused: list[str] = []

    def rename(src_fd: int, src: str, dst_fd: int, dst: str) -> None:
        st = os.stat(src, dir_fd=src_fd, follow_symlinks=False)
        if (st.st_dev, st.st_ino) == (moving.st_dev, moving.st_ino):
            refused.append(src)
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        real(src_fd, src, dst_fd, dst)

    monkeypatch.setattr(migrate, "rename_noreplace", rename)
    return refused


def test_cross_filesystem_migration_copies_verifies_and_removes_the_source(
    town: TownFixture, dolt_binary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EXDEV injected into the rename, so anyone can run it; the real one is the next test."""
    t = town
    source = old_database(dolt_binary, t.root / "gastown" / ".beads" / "dolt" / "beads", [(1, "far"), (2, "away")])
    refused = _force_exdev(monkeypatch, source)
    lines: list[str] = []
    report = migrate.migrate_town(t.town, t.settings, echo=lines.append)
    monkeypatch.undo()
    assert refused == ["beads"]  # the move was tried as a rename first
    assert [m.rig for m in report.moved] == ["gastown"]
    assert any("is on another filesystem: copying" in line for line in lines), lines
    assert not source.exists()
    assert staging.leftovers(t.town.data_dir) == [] and not (t.town.data_dir / ".staging").exists()
    server.start(t.town, t.settings)
    assert rows(t, "gastown") == [(1, "far"), (2, "away")]


@pytest.mark.needs_root("bind-mounts the source's .beads folder in a private mount namespace")
def test_migration_across_a_real_mount_boundary_copies_verifies_and_removes_the_source(
    town: TownFixture, dolt_binary: Path
) -> None:
    """The source folder bind-mounted onto itself: the kernel refuses a rename across mounts (EXDEV)
    though both are on one disk, so the copy, the verification and the removal all happen for real."""
    t = town
    source = old_database(dolt_binary, t.root / "gastown" / ".beads" / "dolt" / "beads", [(1, "far"), (2, "away")])
    t.town.data_dir.mkdir()
    beads = str(t.root / "gastown" / ".beads")
    done, left = migrate_in_a_mount_namespace(t, "--bind", beads, beads)
    assert_clean(done, 0)
    assert f"{source} is on another filesystem: copying" in done.stdout
    assert f"copy verified and in place; removing the source {source}" in done.stdout
    assert left == ["gastown"] and not source.exists()
    server.start(t.town, t.settings)
    assert rows(t, "gastown") == [(1, "far"), (2, "away")]


def test_copy_failure_midway_leaves_the_source_intact_and_no_partial_target(
    town: TownFixture, dolt_binary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EXDEV and a full disk injected midway through the copy; the real full disk is the next test."""
    t = town
    source = old_database(dolt_binary, t.root / "gastown" / ".beads" / "dolt" / "beads", [(1, "keep me")])
    before = {p: p.stat().st_size for p in source.rglob("*") if p.is_file()}
    refused = _force_exdev(monkeypatch, source)
    copied = _fail_copy_midway(monkeypatch)
    with pytest.raises(MigrationError, match="the source is untouched"):
        migrate.migrate_town(t.town, t.settings, echo=lambda line: None)
    monkeypatch.undo()
    assert refused == ["beads"] and len(copied) == 3  # the copy really started, then failed
    assert not (t.town.data_dir / "gastown").exists()
    assert staging.leftovers(t.town.data_dir) == [] and not (t.town.data_dir / ".staging").exists()
    assert {p: p.stat().st_size for p in source.rglob("*") if p.is_file()} == before
    assert_dolt_reads(dolt_binary, source, "keep me")


@pytest.mark.needs_root("mounts a small tmpfs over .dolt-data in a private mount namespace")
def test_a_copy_onto_a_filesystem_too_small_leaves_the_source_intact_and_no_partial_target(
    town: TownFixture, dolt_binary: Path
) -> None:
    t = town
    source = old_database(dolt_binary, t.root / "gastown" / ".beads" / "dolt" / "beads", [(1, "keep me")])
    before = {p: p.stat().st_size for p in source.rglob("*") if p.is_file()}
    size = migrate.tree_size(source)
    t.town.data_dir.mkdir()
    done, left = migrate_in_a_mount_namespace(
        t, "-t", "tmpfs", "-o", f"size={size // 2}", "tmpfs", str(t.town.data_dir)
    )
    assert_clean(done, 1)
    assert "is on another filesystem: copying" in done.stdout and "the source is untouched" in done.stderr
    assert left == []  # no partial target, no staging folder
    assert {p: p.stat().st_size for p in source.rglob("*") if p.is_file()} == before
    assert_dolt_reads(dolt_binary, source, "keep me")


def assert_dolt_reads(dolt: Path, database: Path, title: str) -> None:
    done = subprocess.run(
        [str(dolt), "sql", "-q", "SELECT title FROM issues"],
        cwd=database,
        env=dolt_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and title in done.stdout, done.stdout + done.stderr


def _fail_copy_midway(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """copytree copies three files, then the disk is full; returns the files it copied."""
    real_copytree = shutil.copytree
    copied: list[str] = []

    def copy_then_fail(src: str, dst: str, **kwargs: object) -> object:
        if ".dolt-data" in dst:  # the migration's copy, not the copy its backup keeps
            if len(copied) == 3:
                raise OSError(28, "No space left on device")
            copied.append(src)
        return shutil.copy2(src, dst)

    def copytree(src: str, dst: str, *args: object, **kwargs: object) -> object:
        if not args:  # the package's call; copytree's own recursion passes copy_function on
            kwargs["copy_function"] = copy_then_fail
        return real_copytree(src, dst, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(migrate.shutil, "copytree", copytree)
    return copied
