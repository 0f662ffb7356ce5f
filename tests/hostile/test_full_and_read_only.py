"""A full disk (ENOSPC, a small tmpfs) and a read-only file system (EROFS, a read-only bind mount).

Each runs in a private mount namespace (`unshare`), so the mounts exist only for that command.
Each command fails with one clear line naming the path, and leaves nothing half-made: no server,
no temporary file, no partial rig.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TownFixture, old_database
from faultkit import IN_MOUNTS, assert_clean

pytestmark = pytest.mark.hostile


needs_namespaces = pytest.mark.needs_root("mounts a tmpfs or a read-only bind in a private mount namespace")


def in_mounts(t: TownFixture, specs: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    command = ["unshare", "--mount", "--propagation", "private", sys.executable, str(IN_MOUNTS), *specs, "--", *args]
    done = subprocess.run(
        command, cwd=t.root, env=t.env(), capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )
    assert "mounts in place" in done.stderr, done.stderr  # the fault really was in place
    return done


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name != ".dolt")


@needs_namespaces
def test_start_on_a_full_disk_fails_in_one_line_and_leaves_no_server(rigged_town: TownFixture) -> None:
    t = rigged_town
    daemon = str(t.town.daemon_dir)
    done = in_mounts(t, [f"tmpfs:{daemon}:64k", f"fill:{daemon}"], "start")
    assert_clean(done, 1)
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no space left" in errors[0] and daemon in errors[0], done.stderr
    assert not t.servers()


@needs_namespaces
def test_init_rig_on_a_full_disk_fails_in_one_line_and_makes_no_rig(rigged_town: TownFixture) -> None:
    t = rigged_town
    data = str(t.town.data_dir)
    done = in_mounts(t, [f"tmpfs:{data}:256k", f"fill:{data}"], "init-rig", "fresh")
    assert_clean(done, 1)
    assert done.stderr.count("error:") == 1 and "fresh" in done.stderr, done.stderr
    assert not (t.town.data_dir / "fresh").exists() and leftovers(t.town.data_dir) == []


@needs_namespaces
def test_migrate_onto_a_full_disk_keeps_the_source_and_leaves_no_partial_copy(
    town: TownFixture, dolt_binary: Path
) -> None:
    t = town
    source = old_database(dolt_binary, t.root / "gastown" / ".beads" / "dolt" / "beads", [(1, "keep me")])
    before = sorted(str(p.relative_to(source)) for p in source.rglob("*"))
    t.town.data_dir.mkdir()
    data = str(t.town.data_dir)
    done = in_mounts(t, [f"tmpfs:{data}:64k", f"fill:{data}"], "migrate")  # another, full file system
    assert_clean(done, 1)
    assert "the source is untouched" in done.stderr and done.stderr.count("error:") == 1, done.stderr
    assert sorted(str(p.relative_to(source)) for p in source.rglob("*")) == before


@needs_namespaces
def test_init_rig_on_a_read_only_data_dir_fails_in_one_line(rigged_town: TownFixture) -> None:
    t = rigged_town
    done = in_mounts(t, [f"ro:{t.town.data_dir}"], "init-rig", "fresh")
    assert_clean(done, 1)
    assert "read-only" in done.stderr and str(t.town.data_dir) in done.stderr, done.stderr
    assert not (t.town.data_dir / "fresh").exists()


@needs_namespaces
def test_start_on_a_read_only_data_dir_fails_before_anything_runs(rigged_town: TownFixture) -> None:
    """The managed config lives in .dolt-data: it cannot be written, so nothing is started."""
    t = rigged_town
    done = in_mounts(t, [f"ro:{t.town.data_dir}"], "start")
    assert_clean(done, 1)
    assert "read-only" in done.stderr and str(t.town.config_file) in done.stderr, done.stderr
    assert not t.servers() and not t.town.pid_file.exists()
