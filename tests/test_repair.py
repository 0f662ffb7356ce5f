"""cleanup, init and rollback with the real Dolt (and the real bd for rollback): never a row lost."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from conftest import TownFixture, old_database, tree
from gastown_tasks.ops.build.binary import dolt_env
from gastown_tasks.ops.server import server
from gastown_tasks.ops.town import Town

KILL_AT = Path(__file__).parent / "kill_at.py"


def dolt_init(dolt: Path, folder: Path) -> Path:
    folder.mkdir(parents=True)
    subprocess.run([str(dolt), "init"], cwd=folder, env=dolt_env(), check=True, capture_output=True)
    return folder


def beads_metadata(folder: Path, database: str) -> None:
    (folder / ".beads").mkdir(parents=True, exist_ok=True)
    meta = {"backend": "dolt", "database": "dolt", "dolt_mode": "server", "dolt_database": database}
    (folder / ".beads" / "metadata.json").write_text(json.dumps(meta))


def orphans_town(t: TownFixture, dolt: Path, template_db: Path) -> None:
    """hq (named by its beads), gt (named by the beads of rig gastown), and two orphans: `stray`
    with a table of rows, `empty` as dolt init left it."""
    t.rig("hq")
    shutil.copytree(template_db, t.town.data_dir / "gt")
    beads_metadata(t.root / "gastown", "gt")
    shutil.copytree(template_db, t.town.data_dir / "stray")
    dolt_init(dolt, t.town.data_dir / "empty")


def test_cleanup_removes_an_empty_orphan_and_moves_one_with_rows_where_restore_serves_every_row(
    town: TownFixture, dolt_binary: Path, template_db: Path
) -> None:
    t = town
    orphans_town(t, dolt_binary, template_db)
    before = tree(t.town.data_dir)

    dry = t.gt_dolt("cleanup", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would remove {t.town.data_dir / 'empty'}" in dry.stdout and "as dolt init left it" in dry.stdout
    assert f"would move {t.town.data_dir / 'stray'}" in dry.stdout and "holds data" in dry.stdout
    assert "hq" not in dry.stdout and "/gt " not in dry.stdout
    unasked = t.gt_dolt("cleanup")
    assert unasked.returncode == 0 and "--yes" in unasked.stdout
    assert tree(t.town.data_dir) == before and not (t.root / ".dolt-backup").exists()

    done = t.gt_dolt("cleanup", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["done"] is True
    by_name = {o["name"]: o for o in report["orphans"]}
    assert set(by_name) == {"empty", "stray"} and by_name["empty"]["action"] == "remove"
    kept = Path(by_name["stray"]["destination"])
    assert kept.parent == t.root / ".dolt-backup" / "orphans" and (kept / ".dolt").is_dir()
    assert sorted(p.name for p in t.town.data_dir.iterdir() if not p.name.startswith(".")) == ["gt", "hq"]

    again = t.gt_dolt("cleanup", "--dry-run")
    assert again.returncode == 0 and "no orphan databases" in again.stdout

    restored = t.gt_dolt("restore", "--rig", "stray", "--from", kept.as_uri())
    assert restored.returncode == 0, restored.stderr
    server.start(t.town, t.settings)
    assert t.query("SELECT id, title FROM issues", "stray") == [(1, "template row")]
    assert t.query("SELECT id, title FROM issues", "gt") == [(1, "template row")]
    assert (kept / ".dolt").is_dir()  # restore copies; the set-aside database stays until you remove it


def test_cleanup_with_its_backup_folder_planted_as_a_symlink_changes_nothing_in_one_line(
    town: TownFixture, dolt_binary: Path, template_db: Path, tmp_path: Path
) -> None:
    t = town
    orphans_town(t, dolt_binary, template_db)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (t.root / ".dolt-backup").symlink_to(elsewhere)
    before = tree(t.town.data_dir)
    done = t.gt_dolt("cleanup", "--yes")
    assert done.returncode != 0 and ".dolt-backup" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert tree(t.town.data_dir) == before and list(elsewhere.iterdir()) == []


def test_cleanup_refuses_to_act_while_the_server_runs_and_its_dry_run_still_reports(
    town: TownFixture, dolt_binary: Path, template_db: Path
) -> None:
    t = town
    orphans_town(t, dolt_binary, template_db)
    server.start(t.town, t.settings)
    before = tree(t.town.data_dir)
    dry = t.gt_dolt("cleanup", "--dry-run")
    assert dry.returncode == 0 and "would move" in dry.stdout and "would remove" in dry.stdout
    refused = t.gt_dolt("cleanup", "--yes")
    assert refused.returncode != 0 and "stop it first" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert t.query("SELECT COUNT(*) FROM issues", "stray") == [(1,)]
    assert tree(t.town.data_dir) == before


def test_init_migrates_local_data_creates_a_missing_database_leaves_healthy_rigs_and_is_idempotent(
    town: TownFixture, dolt_binary: Path
) -> None:
    t = town
    t.rig("hq")
    beads_metadata(t.root / "gastown", "gastown")  # server mode, no database anywhere: created
    beads_metadata(t.root / "wyvern", "wy")  # a database named unlike its rig: created under that name
    old_database(dolt_binary, t.root / "beads" / ".beads" / "dolt" / "beads", [(1, "kept"), (2, "also kept")])
    beads_metadata(t.root / "beads", "beads")  # server mode, data still local: migrated
    hq_before = tree(t.town.data_dir / "hq")

    dry = t.gt_dolt("init", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would create database gastown" in dry.stdout and "would create database wy" in dry.stdout
    assert f"would migrate {t.root / 'beads' / '.beads' / 'dolt' / 'beads'}" in dry.stdout
    assert sorted(p.name for p in t.town.data_dir.iterdir() if not p.name.startswith(".")) == ["hq"]

    done = t.gt_dolt("init", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    actions = {r["rig"]: r["action"] for r in json.loads(done.stdout)["rigs"]}
    assert actions == {"gastown": "create", "wyvern": "create", "beads": "migrate"}
    assert tree(t.town.data_dir / "hq") == hq_before
    assert not (t.root / "wy").exists()  # no beads made for a rig that is not one

    again = t.gt_dolt("init")
    assert again.returncode == 0 and "nothing to repair" in again.stdout
    server.start(t.town, t.settings)
    assert t.query("SELECT id, title FROM issues ORDER BY id", "beads") == [(1, "kept"), (2, "also kept")]
    assert {"gastown", "wy", "hq", "beads"} <= {row[0] for row in t.query("SHOW DATABASES")}


def counts(dolt: Path, database: Path) -> dict[str, int]:
    """Rows per table, as Dolt reads the database (with a Dolt root of its own, outside the town)."""
    from gastown_tasks.ops.rigs.dbfiles import counting_env, table_counts

    with tempfile.TemporaryDirectory() as scratch:
        return table_counts(dolt, database, counting_env(Town(Path(scratch)), dolt))


def migrated_town(t: TownFixture, dolt: Path) -> tuple[Path, bytes]:
    """Rig gastown's issues in its old beads layout, with its metadata; migrated, then served."""
    source = old_database(dolt, t.root / "gastown" / ".beads" / "dolt" / "beads", [(1, "a"), (2, "b")])
    metadata = json.dumps({"backend": "dolt", "database": "beads", "dolt_mode": "embedded"}).encode()
    (t.root / "gastown" / ".beads" / "metadata.json").write_bytes(metadata)
    done = t.gt_dolt("migrate")
    assert done.returncode == 0, done.stderr
    assert f"kept what this migration moves in {t.root / '.dolt-backup' / 'migrations'}" in done.stdout
    assert json.loads((t.root / "gastown" / ".beads" / "metadata.json").read_text())["dolt_mode"] == "server"
    server.start(t.town, t.settings)
    return source, metadata


def test_rollback_stops_the_server_puts_the_database_and_metadata_back_and_sets_the_migrated_copy_aside(
    town: TownFixture, dolt_binary: Path
) -> None:
    t = town
    source, metadata = migrated_town(t, dolt_binary)
    listed = t.gt_dolt("rollback", "--list", "--json")
    assert listed.returncode == 0 and [b["rigs"] for b in json.loads(listed.stdout)] == [["gastown"]]
    dry = t.gt_dolt("rollback", "--dry-run")
    assert dry.returncode == 0 and f"would put back {source}" in dry.stdout and not source.exists()

    done = t.gt_dolt("rollback")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "stopping the server" in done.stdout and "rig gastown: bd reads" in done.stdout
    assert not t.servers()
    assert counts(dolt_binary, source) == {"issues": 2}
    assert (t.root / "gastown" / ".beads" / "metadata.json").read_bytes() == metadata
    assert not (t.town.data_dir / "gastown").exists()
    aside = list((t.root / ".dolt-backup" / "orphans").iterdir())
    assert [p.name.split("-")[0] for p in aside] == ["gastown"] and (aside[0] / ".dolt").is_dir()

    twice = t.gt_dolt("rollback")
    assert twice.returncode == 0 and "rolled back already" in twice.stdout
    again = t.gt_dolt("migrate")  # and forward again: the same rows served
    assert again.returncode == 0, again.stderr
    server.start(t.town, t.settings)
    assert t.query("SELECT id, title FROM issues ORDER BY id", "gastown") == [(1, "a"), (2, "b")]


def test_rollback_refuses_a_rig_changed_since_naming_it_and_force_keeps_the_change_in_the_set_aside_copy(
    town: TownFixture, dolt_binary: Path
) -> None:
    t = town
    source, _ = migrated_town(t, dolt_binary)
    t.query("INSERT INTO issues VALUES (3, 'new since')", "gastown")
    t.query("CALL DOLT_COMMIT('-Am', 'after the migration')", "gastown")
    refused = t.gt_dolt("rollback")
    assert refused.returncode != 0 and "gastown (new commits on main)" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert t.servers() and not source.exists()
    assert t.query("SELECT COUNT(*) FROM issues", "gastown") == [(3,)]

    forced = t.gt_dolt("rollback", "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert counts(dolt_binary, source) == {"issues": 2}
    aside = next((t.root / ".dolt-backup" / "orphans").iterdir())
    restored = t.gt_dolt("restore", "--rig", "gastown", "--as", "since", "--from", aside.as_uri())
    assert restored.returncode == 0, restored.stderr
    server.start(t.town, t.settings)
    assert t.query("SELECT title FROM issues WHERE id = 3", "since") == [("new since",)]


def test_rollback_of_what_is_no_migration_backup_is_one_line_and_exit_2(town: TownFixture, dolt_binary: Path) -> None:
    t = town
    none = t.gt_dolt("rollback")
    assert none.returncode == 2 and "no migration backups" in none.stderr
    (t.root / ".dolt-backup" / "migrations" / "20260101T000000Z").mkdir(parents=True)  # no record
    for name in ("20260101T000000Z", "/etc", "../x"):
        bad = t.gt_dolt("rollback", "--backup", name)
        assert bad.returncode == 2 and "is not a migration backup" in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1

    planted = t.root / ".dolt-backup" / "migrations" / "20260101T000000Z"  # a record that leads out of the town
    (planted / "databases" / "gastown" / ".dolt").mkdir(parents=True)
    outside = t.root.parent / "outside" / "beads"
    entry = {"rig": "gastown", "source": str(outside), "target": str(t.town.data_dir / "gastown")}
    record = {"kind": "gastown-tasks migration backup", "version": 1, "rigs": [entry | {"copy": "databases/gastown"}]}
    (planted / "migration.json").write_text(json.dumps(record | {"beads": []}))
    led_out = t.gt_dolt("rollback")
    assert led_out.returncode == 1 and "outside the town" in led_out.stderr, led_out.stderr
    assert not outside.parent.exists()
    (planted.parent / "20270101T000000Z").symlink_to(planted)  # the newest, but a link: never a backup
    linked = t.gt_dolt("rollback", "--backup", "20270101T000000Z")
    assert linked.returncode == 2 and "is not a migration backup" in linked.stderr


def test_rollback_interrupted_at_any_instant_leaves_bd_the_old_state_or_the_new_and_a_rerun_completes_it(
    town: TownFixture, dolt_binary: Path, tmp_path: Path
) -> None:
    """Killed (kill -9; Ctrl-C at every 5th) just before each of its changes to the file system."""
    t = town
    source, metadata = migrated_town(t, dolt_binary)
    server.stop(t.town, t.settings)
    template = tmp_path / "template"
    shutil.copytree(t.root, template, symlinks=True)  # the backup names the town's paths: runs happen there
    count = tmp_path / "count"

    def killed(at: int, how: str) -> subprocess.CompletedProcess[str]:
        shutil.rmtree(t.root)
        shutil.copytree(template, t.root, symlinks=True)
        argv = [sys.executable, "-P", str(KILL_AT), str(at), how, "rollback"]
        return subprocess.run(
            argv, cwd=t.root, env=t.env(KILL_AT_COUNT=str(count)), capture_output=True, text=True, timeout=300
        )

    assert killed(0, "KILL").returncode == 0
    instants = int(count.read_text())
    assert instants > 5, instants
    for at in range(1, instants + 1):
        done = killed(at, "INT" if at % 5 == 0 else "KILL")
        assert "Traceback" not in done.stderr and "kill_at: " in done.stderr, done.stderr
        if (t.root / "gastown" / ".beads" / "metadata.json").read_bytes() == metadata:  # bd reads its own again
            assert counts(dolt_binary, source) == {"issues": 2}, f"instant {at}"
        else:  # bd reads the server's
            assert counts(dolt_binary, t.town.data_dir / "gastown") == {"issues": 2}, f"instant {at}"
        rerun = t.gt_dolt("rollback")
        assert rerun.returncode == 0, f"instant {at}: {rerun.stdout} {rerun.stderr}"
        assert (t.root / "gastown" / ".beads" / "metadata.json").read_bytes() == metadata
        assert counts(dolt_binary, source) == {"issues": 2} and not (t.town.data_dir / "gastown").exists()
        assert not list(t.root.rglob(".staging")) and not list(t.root.rglob(".discarded-*")), f"instant {at}"
