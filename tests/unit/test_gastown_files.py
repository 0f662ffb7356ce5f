"""What gt keeps in a town's files, read as gt v1.0 reads it; the town path as gt computes it; the
beads layouts and redirects; the staging area.  No Dolt, no gt: the files only."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gastown_tasks.ops.beads import beadslayout, gtconfig
from gastown_tasks.ops.errors import ConfigError
from gastown_tasks.ops.files import staging
from gastown_tasks.ops.town import Town, find_town_root, logical_cwd


def _town(root: Path) -> Town:
    (root / "mayor").mkdir(parents=True)
    (root / "mayor" / "town.json").write_text("{}\n")
    return Town(root)


def _config(town: Town, text: str) -> None:
    town.data_dir.mkdir(exist_ok=True)
    town.config_file.write_text(text)


def _daemon_json(town: Town, port: object) -> None:
    (town.root / "mayor" / "daemon.json").write_text(
        json.dumps({"type": "daemon-patrol-config", "env": {"GT_DOLT_PORT": port}})
    )


GTS_CONFIG = """# Dolt SQL server configuration — managed by Gas Town (gt dolt start)
log_level: warning

listener:
  port: 3411
  max_connections: 1000

data_dir: "/x/.dolt-data"
"""
DOLTS_OWN = """# log_level: info
listener:
  host: 127.0.0.1
  port: 34567
  # max_connections: 1000
"""


@pytest.mark.parametrize(
    ("text", "port"),
    [
        (GTS_CONFIG, 3411),
        (DOLTS_OWN, 34567),  # what dolt sql-server writes when started by hand in .dolt-data
        ("listener: {host: 127.0.0.1, port: 3999}\n", 3999),
        ('listener:\n  port: "3411"\n', None),  # a string: gt's YAML decoding into an int fails
        ("listener:\n  tls:\n    port: 1\n  host: x\n", None),  # a nested port is not listener.port
        ("metrics:\n  port: 9100\n", None),
        ("listener:\n  port: 70000\n", None),
        ("# listener:\n#   port: 3411\n", None),
    ],
)
def test_listener_port_is_read_as_gts_yaml_decoding_reads_it(text: str, port: int | None) -> None:
    assert gtconfig.listener_port(text) == port


def test_gts_order_without_gt_dolt_port_daemon_json_then_config_yaml_then_3307(tmp_path: Path) -> None:
    town = _town(tmp_path / "town")
    assert gtconfig.gt_port(town, {})[:2] == (3307, gtconfig.FROM_DEFAULT)
    _config(town, GTS_CONFIG)
    assert gtconfig.gt_port(town, {})[:2] == (3411, gtconfig.FROM_CONFIG_YAML)
    _daemon_json(town, "3412")
    assert gtconfig.gt_port(town, {})[:2] == (3412, gtconfig.FROM_DAEMON_JSON)


def test_with_gt_dolt_port_set_config_yaml_wins_and_daemon_json_is_not_read(tmp_path: Path) -> None:
    town = _town(tmp_path / "town")
    _daemon_json(town, "3412")
    assert gtconfig.gt_port(town, {"GT_DOLT_PORT": "3500"})[:2] == (3500, gtconfig.FROM_ENV)
    _config(town, GTS_CONFIG)
    port, source, pinned, notes = gtconfig.gt_port(town, {"GT_DOLT_PORT": "3500"})
    assert (port, source, pinned) == (3411, gtconfig.FROM_CONFIG_YAML, 3412)
    assert any("GT_DOLT_PORT=3500 is not used" in note for note in notes)


def test_ours_rank_above_gts_and_say_so(tmp_path: Path) -> None:
    town = _town(tmp_path / "town")
    _config(town, GTS_CONFIG)
    choice = gtconfig.resolve(town, ("4001", "dolt.port in the Invoke config"), {})
    assert (choice.port, choice.gt_port) == (4001, 3411)
    assert choice.differs is not None and "until a start records 4001" in choice.differs
    assert gtconfig.resolve(town, None, {}).differs is None


def test_a_start_on_another_port_than_daemon_json_names_is_refused_with_the_way_to_move_the_town(
    tmp_path: Path,
) -> None:
    town = _town(tmp_path / "town")
    _daemon_json(town, "3412")
    gtconfig.check_start(town, 3412)
    with pytest.raises(ConfigError, match="gt config set dolt.port 3413"):
        gtconfig.check_start(town, 3413)


@pytest.mark.parametrize("value", ["abc", 3412, ""])
def test_an_unusable_daemon_json_port_is_ignored_as_gt_ignores_it_and_noted(tmp_path: Path, value: object) -> None:
    town = _town(tmp_path / "town")
    _daemon_json(town, value)
    port, _, pinned, notes = gtconfig.gt_port(town, {})
    assert (port, pinned) == (3307, None) and notes


def test_a_planted_config_yaml_is_a_note_for_reads_and_daemon_json_one_refuses_a_start(tmp_path: Path) -> None:
    town = _town(tmp_path / "town")
    town.data_dir.mkdir()
    os.mkfifo(town.config_file)
    port, _, _, notes = gtconfig.gt_port(town, {})
    assert port == 3307 and any("FIFO" in note for note in notes)
    (town.root / "mayor" / "daemon.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(ConfigError, match="daemon.json cannot be read"):
        gtconfig.check_start(town, 3307)


def test_daemon_env_gives_the_log_level_gt_would_use(tmp_path: Path) -> None:
    town = _town(tmp_path / "town")
    (town.root / "daemon").mkdir()
    (town.root / "daemon" / "daemon.env").write_text("# gt's daemon\nGT_DOLT_PORT=1\nGT_DOLT_LOGLEVEL=debug\n")
    assert gtconfig.log_level(town) == "debug"


# --- the town path -------------------------------------------------------------------------------


def test_the_town_entered_through_a_symlink_keeps_the_symlinked_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = _town(tmp_path / "real").root
    (real / "rig").mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    monkeypatch.chdir(link / "rig")
    assert logical_cwd({"PWD": str(link / "rig")}) == link / "rig"
    assert find_town_root(environ={"PWD": str(link / "rig")}) == link
    assert find_town_root(environ={"PWD": str(link / "rig") + "/"}) == link  # cleaned, as filepath.Abs does
    assert find_town_root(environ={}) == real  # no $PWD: the real folder, as os.Getwd gives it
    assert find_town_root(environ={"PWD": str(tmp_path)}) == real  # a $PWD that is another folder is ignored


# --- beads layouts -------------------------------------------------------------------------------


def _database(folder: Path) -> Path:
    (folder / ".dolt" / "noms").mkdir(parents=True)
    return folder


def test_redirects_are_followed_as_gt_follows_them_and_never_out_of_the_town(tmp_path: Path) -> None:
    town = _town(tmp_path / "town")
    rig = town.root / "gastown"
    (rig / ".beads").mkdir(parents=True)
    (rig / ".beads" / "redirect").write_text("mayor/rig/.beads\n")
    _database(rig / "mayor" / "rig" / ".beads" / "embeddeddolt" / "gt")
    [found] = beadslayout.rig_beads(town, "gastown")
    assert found.dir == rig / "mayor" / "rig" / ".beads" and [db.name for db in found.databases] == ["gt"]
    (rig / ".beads" / "redirect").write_text(str(tmp_path / "elsewhere" / ".beads"))
    assert any("outside the town" in (b.problem or "") for b in beadslayout.rig_beads(town, "gastown"))


def test_links_in_a_beads_dir_are_reported_never_followed(tmp_path: Path) -> None:
    town = _town(tmp_path / "town")
    outside = _database(tmp_path / "outside" / "db")
    (town.root / ".beads" / "dolt").mkdir(parents=True)
    (town.root / ".beads" / "dolt" / "beads").symlink_to(outside)
    [found] = beadslayout.rig_beads(town, "hq")
    assert found.databases == () and "is a symlink" in (found.problem or "")


# --- the staging area ----------------------------------------------------------------------------


def test_a_stage_is_committed_with_one_rename_and_never_over_something_there(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with staging.staged(data, "rig", root=tmp_path) as stage:
        _database(stage.path)
        assert not (data / "rig").exists()
        stage.commit()
    assert (data / "rig" / ".dolt").is_dir() and not (data / ".staging").exists()
    with staging.staged(data, "rig", root=tmp_path) as stage:
        stage.path.mkdir()
        with pytest.raises(FileExistsError):
            stage.commit()
    assert os.listdir(data) == ["rig"]


def test_what_a_killed_stage_or_discard_left_is_recognised_and_swept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _database(data / ".staging" / "rig.0123456789ab" / "rig")
    _database(data / ".init-rig-abcd1234")  # what earlier versions staged: served by Dolt as a database
    _database(data / ".discarded-gt-0123456789ab")
    _database(data / "kept")
    assert len(staging.leftovers(data)) == 3
    assert len(staging.sweep(data, root=tmp_path)) == 3
    assert sorted(os.listdir(data)) == [".staging", "kept"] and staging.leftovers(data) == []
