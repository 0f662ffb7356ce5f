"""list and init-rig against a real Dolt: on disk when stopped, through the server when running."""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import TownFixture
from gastown_tasks.ops.server import server


def test_init_rig_while_stopped_makes_a_database_the_next_start_serves(town: TownFixture) -> None:
    done = town.gt_dolt("init-rig", "gastown")
    assert done.returncode == 0, done.stderr
    assert "created rig gastown" in done.stdout
    assert (town.town.data_dir / "gastown" / ".dolt" / "noms" / "manifest").is_file()
    assert "gastown" in server.start(town.town, town.settings).databases


def test_init_rig_while_running_is_served_at_once_without_restart(rigged_town: TownFixture) -> None:
    t = rigged_town
    started = server.start(t.town, t.settings)
    done = t.gt_dolt("init-rig", "beads")
    assert done.returncode == 0, done.stderr
    assert "served now" in done.stdout
    t.query("CREATE TABLE issues (id INT PRIMARY KEY)", "beads")
    assert t.query("SHOW TABLES", "beads") == [("issues",)]
    assert [p.pid for p in t.servers()] == [started.pid]
    assert (t.town.data_dir / "beads" / ".dolt").is_dir()


def test_init_rig_of_an_existing_rig_says_where_it_is(rigged_town: TownFixture) -> None:
    done = rigged_town.gt_dolt("init-rig", "hq")
    assert done.returncode == 1
    assert "already exists" in done.stderr and str(rigged_town.town.data_dir / "hq") in done.stderr


def test_init_rig_without_any_identity_names_the_commands_and_leaves_no_folder(
    town: TownFixture, tmp_path: Path, dolt_binary: Path
) -> None:
    empty_home = tmp_path / "nobody"
    empty_home.mkdir()
    done = town.gt_dolt(
        "init-rig",
        "gastown",
        DOLT_ROOT_PATH=str(empty_home),
        HOME=str(empty_home),
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        INVOKE_DOLT_BINARY=str(dolt_binary),
    )
    assert done.returncode == 1
    assert 'dolt config --global --add user.name "Your Name"' in done.stderr
    assert 'dolt config --global --add user.email "you@example.com"' in done.stderr
    assert not town.town.data_dir.exists()  # checked before anything was made


def test_list_shows_rigs_with_served_state_in_one_column_and_ignores_non_databases(rigged_town: TownFixture) -> None:
    t = rigged_town
    t.rig("gastown")
    (t.town.data_dir / "notes").mkdir()
    (t.town.data_dir / "README.txt").write_text("not a rig")
    stopped = json.loads(t.gt_dolt("list", "--json").stdout)
    assert [(r["name"], r["served"]) for r in stopped] == [("gastown", None), ("hq", None)]
    server.start(t.town, t.settings)
    running = json.loads(t.gt_dolt("list", "--json").stdout)
    assert [(r["name"], r["served"]) for r in running] == [("gastown", True), ("hq", True)]
    text = t.gt_dolt("list").stdout
    assert "hq" in text and "served" in text
    assert len({line.index("  served") for line in text.splitlines()}) == 1  # paths of two lengths


def test_a_commands_help_after_its_name_shows_the_help_and_creates_nothing(rigged_town: TownFixture) -> None:
    t = rigged_town
    before = sorted(os.listdir(t.town.data_dir))
    for asked in (["init-rig", "--help"], ["init-rig", "-h"], ["init-rig", "gastown", "--help"]):
        done = t.gt_dolt(*asked)
        assert done.returncode == 0 and "Create a rig database" in done.stdout, asked
    assert sorted(os.listdir(t.town.data_dir)) == before
    # invoke dolt.init-rig takes a --help after init-rig as the name: one line that says where help is
    done = t.gt_dolt("init-rig", "--name=--help")
    assert done.returncode == 2 and "gt-dolt --help init-rig" in done.stderr and "Traceback" not in done.stderr


def test_list_with_no_rigs_says_how_to_create_one(town: TownFixture) -> None:
    done = town.gt_dolt("list")
    assert done.returncode == 0 and "gt-dolt init-rig <name>" in done.stdout
    assert json.loads(town.gt_dolt("list", "--json").stdout) == []
