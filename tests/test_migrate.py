"""migrate from the old .beads layout, with databases made by the real Dolt and read back via SQL."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import TownFixture, old_database
from gastown_tasks.ops import migrate, server, staging
from gastown_tasks.ops.binary import dolt_env
from gastown_tasks.ops.errors import MigrationError


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


@contextlib.contextmanager
def other_filesystem(path: Path, size: str = "256m") -> Iterator[str]:
    """Mount a tmpfs at `path` when allowed (root); otherwise say that EXDEV must be injected."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )
    try:
        yield "tmpfs" if mounted else "injected"
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(path)], check=False)


def _force_exdev(monkeypatch: pytest.MonkeyPatch, source: Path) -> None:
    real = migrate.rename_noreplace

    def rename(src_fd: int, src: str, dst_fd: int, dst: str) -> None:
        if Path(os.readlink(f"/proc/self/fd/{src_fd}")) / src == source.resolve():
            raise OSError(18, "Invalid cross-device link")
        real(src_fd, src, dst_fd, dst)

    monkeypatch.setattr(migrate, "rename_noreplace", rename)


def test_cross_filesystem_migration_copies_verifies_and_removes_the_source(
    town: TownFixture, dolt_binary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = town
    with other_filesystem(t.root / "gastown" / ".beads") as how:
        source = old_database(dolt_binary, t.root / "gastown" / ".beads" / "dolt" / "beads", [(1, "far"), (2, "away")])
        if how == "injected":
            _force_exdev(monkeypatch, source)
        else:
            assert os.stat(source).st_dev != os.stat(t.root).st_dev
        lines: list[str] = []
        report = migrate.migrate_town(t.town, t.settings, echo=lines.append)
        assert [m.rig for m in report.moved] == ["gastown"]
        assert any("another filesystem" in line for line in lines)
        assert not source.exists()
        assert staging.leftovers(t.town.data_dir) == [] and not (t.town.data_dir / ".staging").exists()
    server.start(t.town, t.settings)
    assert rows(t, "gastown") == [(1, "far"), (2, "away")]


def test_copy_failure_midway_leaves_the_source_intact_and_no_partial_target(
    town: TownFixture, dolt_binary: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = town
    source = old_database(dolt_binary, t.root / "gastown" / ".beads" / "dolt" / "beads", [(1, "keep me")])
    before = {p: p.stat().st_size for p in source.rglob("*") if p.is_file()}
    size = migrate.tree_size(source)
    # A real fault where allowed: .dolt-data on a tmpfs too small for the database, so the rename
    # fails with EXDEV and the copy runs out of space midway.  Elsewhere both are injected.
    with other_filesystem(t.town.data_dir, size=f"{size // 2}") as how:
        if how == "injected":
            _force_exdev(monkeypatch, source)
            _fail_copy_midway(monkeypatch)
        with pytest.raises(MigrationError, match="the source is untouched"):
            migrate.migrate_town(t.town, t.settings, echo=lambda line: None)
        assert not (t.town.data_dir / "gastown").exists()
        assert staging.leftovers(t.town.data_dir) == [] and not (t.town.data_dir / ".staging").exists()
    monkeypatch.undo()
    assert {p: p.stat().st_size for p in source.rglob("*") if p.is_file()} == before
    done = subprocess.run(
        [str(dolt_binary), "sql", "-q", "SELECT title FROM issues"],
        cwd=source,
        env=dolt_env(),
        capture_output=True,
        text=True,
    )
    assert "keep me" in done.stdout


def _fail_copy_midway(monkeypatch: pytest.MonkeyPatch) -> None:
    real_copytree = shutil.copytree
    copied: list[str] = []

    def copy_then_fail(src: str, dst: str, **kwargs: object) -> object:
        if len(copied) == 3:
            raise OSError(28, "No space left on device")
        copied.append(src)
        return shutil.copy2(src, dst)

    def copytree(src: str, dst: str, *args: object, **kw: object) -> object:
        # shutil's copytree calls itself with positional arguments (copy_function is the third)
        if len(args) >= 3:
            args = (*args[:2], copy_then_fail, *args[3:])
        else:
            kw["copy_function"] = copy_then_fail
        return real_copytree(src, dst, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(migrate.shutil, "copytree", copytree)
