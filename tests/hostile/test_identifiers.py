"""Rule 5, identifiers are data: any database name any SQL user can create, and any bytes in a
folder name, are quoted or refused at the door, never pasted into SQL; and one bad rig never stops
work on the others.

The matrix: database names made through SQL (a backtick, a quote, a space, a dot, a semicolon,
parentheses, non-ASCII letters, a terminal escape; Dolt itself cannot make names with a backslash
or a percent sign), each beside an ordinary
rig: every command ends cleanly, and `backup` backs up every one of them, restorably.  Folder names
that are not UTF-8 are not rigs: listed as such, and the other rigs are served and backed up.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import TownFixture
from faultkit import assert_clean
from gastown_tasks.ops.build.binary import dolt_env
from gastown_tasks.ops.server import server
from gastown_tasks.ops.sql import sqlclient

pytestmark = pytest.mark.hostile

NAMES = {
    "backtick": "a`b",
    "double-backtick": "x``; DROP DATABASE hq; --",
    "quote": "it's",
    "parentheses": "p(x)*",
    "space": "two words",
    "dot": "v1.2",
    "semicolon": "a;b",
    "non-ascii": "r\u00efg\u00e5",
    "escape": "x\x1b[2Jy",
}
COMMANDS = (("status", 0), ("list", 0), ("doctor", 0), ("fix-metadata", 0), ("stop-rogue", 0))


def create(t: TownFixture, name: str) -> None:
    quoted = "`" + name.replace("`", "``") + "`"
    t.query(f"CREATE DATABASE {quoted}")
    t.query(f"CREATE TABLE {quoted}.beads (id INT PRIMARY KEY)")
    t.query(f"INSERT INTO {quoted}.beads VALUES (7)")


class TestIdentifiersAreData:
    @pytest.mark.parametrize("kind", list(NAMES))
    def test_a_database_with_any_name_is_backed_up_with_the_others_and_nothing_breaks(
        self, rigged_town: TownFixture, kind: str
    ) -> None:
        t = rigged_town
        server.start(t.town, t.settings)
        name = NAMES[kind]
        create(t, name)
        t.query("CREATE TABLE beads (id INT PRIMARY KEY)", "hq")
        for command, code in COMMANDS:
            done = t.gt_dolt(command)
            assert_clean(done, code)
        backed = t.gt_dolt("backup")
        if kind == "escape":  # no URL may hold it (Dolt refuses): said for that rig alone
            assert_clean(backed, 1)
            assert "its path holds control characters" in backed.stderr and "backed up rig hq" in backed.stdout
            return
        assert_clean(backed, 0)
        assert backed.stdout.count("backed up rig ") == 2, backed.stdout
        assert ("hq",) in t.query("SHOW DATABASES")  # nothing a name held ran as SQL
        records = json.loads(t.town.daemon_dir.joinpath("dolt-backups.json").read_text())
        assert set(records) == {"hq", name}
        quoted = "`" + name.replace("`", "``") + "`"
        t.query(f"DROP DATABASE {quoted}")
        url = records[name]["url"]
        conn = t.connect()
        with conn.cursor() as cur:
            cur.execute("CALL dolt_backup('restore', %s, %s)", (url, "restored"))
        conn.close()
        assert t.query("SELECT id FROM restored.beads") == [(7,)]  # the backup holds that database

    def test_one_rig_whose_backup_cannot_be_written_does_not_stop_the_others(self, rigged_town: TownFixture) -> None:
        t = rigged_town
        t.rig("gastown")
        t.rig("zeta")
        planted = t.town.backup_dir / "gastown"
        planted.mkdir(parents=True, mode=0o700)
        t.town.backup_dir.chmod(0o700)
        (planted / "notes.txt").write_text("not a Dolt backup\n")
        done = t.gt_dolt("backup")
        assert_clean(done, 1)
        assert "backed up rig hq" in done.stdout and "backed up rig zeta" in done.stdout
        assert "rig gastown was not backed up" in done.stderr and "holds other files" in done.stderr
        assert (planted / "notes.txt").read_text() == "not a Dolt backup\n" and not (planted / "manifest").exists()


class TestFolderNamesThatAreNotText:
    @pytest.mark.parametrize("running", [False, True], ids=["stopped", "running"])
    def test_a_database_folder_named_with_bytes_that_are_not_utf8_is_not_a_rig_and_harms_nothing(
        self, rigged_town: TownFixture, dolt_binary: Path, running: bool
    ) -> None:
        t = rigged_town
        odd = os.fsencode(t.town.data_dir) + b"/\xff\xfe-odd"
        os.mkdir(odd)
        subprocess.run([str(dolt_binary), "init"], cwd=odd, env=dolt_env(), check=True, capture_output=True, timeout=60)
        shutil.rmtree(os.fsdecode(odd) + "/.dolt/stats", ignore_errors=True)
        if running:
            assert_clean(t.gt_dolt("start"), 0)
        for command, code in (("status", 0 if running else 3), ("doctor", 0), ("start", 0), ("status", 0)):
            done = t.gt_dolt(command)
            assert_clean(done, code)
        listed = t.gt_dolt("list")
        assert_clean(listed, 0)
        assert "NOT A RIG: its folder name is not UTF-8 text" in listed.stdout and "\\udcff\\udcfe-odd" in listed.stdout
        as_json = json.loads(t.gt_dolt("list", "--json").stdout)
        assert [entry["name"] for entry in as_json if entry.get("untextual")] == ["\udcff\udcfe-odd"]
        doctor = t.gt_dolt("doctor")
        line = next(line for line in doctor.stdout.splitlines() if " rigs:" in line)
        assert line.startswith("warn") and "not UTF-8 text" in line
        backed = t.gt_dolt("backup")
        assert_clean(backed, 0)
        assert "backed up rig hq" in backed.stdout and backed.stdout.count("backed up rig ") == 1
        assert "hq" in (sqlclient.served_databases(t.settings) or [])
