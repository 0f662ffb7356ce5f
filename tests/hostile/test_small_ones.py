"""Rule 7, the small ones from the same attack, each as a class of inputs rather than one case:
bounds on every wait and count a setting holds, backup targets that are no place for a backup,
records a hand edited, a remote town's backup, server paths outside the town, and doctor lines
that say only what is so."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from conftest import TownFixture, tree
from faultkit import assert_clean
from gastown_tasks.ops.server import server
from hostile import with_project

pytestmark = pytest.mark.hostile

BIG_VALUES = ("1e10", "9" * 9, "inf", "2592001")


class TestEveryWaitAndCountIsBounded:
    @pytest.mark.parametrize("value", BIG_VALUES)
    @pytest.mark.parametrize(
        ("args", "variable"),
        [
            (("watch", "--once", "--interval"), None),
            (("start", "--timeout"), None),
            (("stop", "--timeout"), None),
            (("status",), "INVOKE_DOLT_DRAIN_TIMEOUT"),
            (("status",), "INVOKE_DOLT_LOG_KEEP"),
            (("status",), "INVOKE_DOLT_LOG_MAX_MB"),
            (("status",), "INVOKE_DOLT_BACKUP_MAX_AGE_HOURS"),
        ],
        ids=["watch-interval", "start-timeout", "stop-timeout", "drain", "log-keep", "log-max-mb", "backup-age"],
    )
    def test_a_huge_value_is_a_config_error_not_a_traceback_or_a_hang(
        self, rigged_town: TownFixture, args: tuple[str, ...], variable: str | None, value: str
    ) -> None:
        t = rigged_town
        before = tree(t.root)
        done = t.gt_dolt(*args, **{variable: value}) if variable else t.gt_dolt(*args, value)
        assert_clean(done, 2)
        assert "at most" in done.stderr or "from 1 to 1000" in done.stderr or "0 or more" in done.stderr, done.stderr
        assert tree(t.root) == before and not t.servers()


def _outside_url(t: TownFixture, tmp: Path, where: str) -> str:
    town = str(t.root)
    return {
        "root": "file:///",
        "root-by-dots": "file:///tmp/../",
        "dots-into-the-data-dir": f"file://{town}/.dolt-backup/../.dolt-data/hq",
        "the-data-dir": f"file://{town}/.dolt-data/elsewhere",
        "the-daemon-folder": f"file://{town}/daemon/backup",
        "another-rigs-backup": f"file://{town}/.dolt-backup/gastown",
        "the-backups-folder-itself": f"file://{town}/.dolt-backup",
        "a-folder-of-other-files": tmp.as_uri(),
        "relative": "file://relative/path",
        "bad-escape": "file:///tmp/%zz",
        "a-link-into-the-data-dir": (tmp / "link").as_uri(),
        "root-with-four-slashes": "file:////",
        "encoded-dots": f"file://{town}/.dolt-backup/hq%2F..%2F..%2F.dolt-data%2Fhq",
        "nul": "file:///tmp/x%00y",
        "escape-not-utf8": "file:///tmp/%E2%82",
    }[where]


WHERE = (
    "root",
    "root-by-dots",
    "dots-into-the-data-dir",
    "the-data-dir",
    "the-daemon-folder",
    "another-rigs-backup",
    "the-backups-folder-itself",
    "a-folder-of-other-files",
    "relative",
    "bad-escape",
    "a-link-into-the-data-dir",
    "root-with-four-slashes",
    "encoded-dots",
    "nul",
    "escape-not-utf8",
)


class TestABackupGoesOnlyWhereABackupBelongs:
    @pytest.mark.parametrize("where", WHERE)
    def test_a_target_that_is_no_place_for_a_backup_is_refused_and_nothing_is_written(
        self, rigged_town: TownFixture, tmp_path: Path, where: str
    ) -> None:
        t = rigged_town
        t.rig("gastown")
        assert_clean(t.gt_dolt("backup", "--rig", "gastown"), 0)
        others = tmp_path / "others"
        others.mkdir()
        (others / "keep.txt").write_text("mine\n")
        (others / "link").symlink_to(t.town.data_dir)
        url = _outside_url(t, others, where)
        before = tree(t.root), tree(others)
        records = (t.town.daemon_dir / "dolt-backups.json").read_text()
        done = t.gt_dolt("backup", "--rig", "hq", "--to", url)
        assert_clean(done, 2)
        assert "backup URL" in done.stderr or "holds" in done.stderr, done.stderr
        assert (tree(t.root), tree(others)) == before
        assert (t.town.daemon_dir / "dolt-backups.json").read_text() == records  # gastown's record still true
        assert not Path("/manifest").exists()

    def test_a_target_outside_the_town_that_others_could_swap_is_refused(
        self, rigged_town: TownFixture, tmp_path: Path
    ) -> None:
        """Dolt writes the backup by path, as us: a folder others may rename in could send it anywhere."""
        t = rigged_town
        shared = tmp_path / "shared"
        shared.mkdir()
        shared.chmod(0o777)  # not sticky: anyone may rename what is in it
        done = t.gt_dolt("backup", "--rig", "hq", "--to", (shared / "hq").as_uri())
        assert_clean(done, 1)
        assert f"{shared} is writable by every user" in done.stderr and list(shared.iterdir()) == []
        shared.chmod(0o1777)  # sticky, as /tmp: only the owner of an entry may rename it
        assert_clean(t.gt_dolt("backup", "--rig", "hq", "--to", (shared / "hq").as_uri()), 0)

    def test_the_same_url_for_another_rig_is_refused_even_outside_the_town(
        self, rigged_town: TownFixture, tmp_path: Path
    ) -> None:
        t = rigged_town
        t.rig("gastown")
        url = (tmp_path / "shared-backup").as_uri()
        assert_clean(t.gt_dolt("backup", "--rig", "gastown", "--to", url), 0)
        done = t.gt_dolt("backup", "--rig", "hq", "--to", url)
        assert_clean(done, 2)
        assert "holds the backup of rig gastown" in done.stderr

    def test_a_remote_towns_backup_is_refused_like_its_restore(self, rigged_town: TownFixture) -> None:
        t = rigged_town
        before = tree(t.root)
        for args in (("backup",), ("restore", "--rig", "hq")):
            done = t.gt_dolt(*args, GT_DOLT_HOST="192.0.2.1", GT_DOLT_PASSWORD="x")
            assert_clean(done, 5)
            assert "is remote" in done.stderr
        assert tree(t.root) == before


class TestRecordsAHandEdited:
    @pytest.mark.parametrize(
        "at",
        [
            "2020-01-01T00:00:00",
            "2020-01-01",
            "not a time",
            "9999-12-31T23:59:59+00:00",
            12,
            None,
            "2020-01-01T00:00:00+14:00",
        ],
        ids=["naive", "date-only", "text", "future", "number", "null", "far-zone"],
    )
    def test_any_time_in_the_backup_record_is_read_without_a_traceback(
        self, rigged_town: TownFixture, at: object
    ) -> None:
        t = rigged_town
        t.town.daemon_dir.mkdir(exist_ok=True)
        record = t.town.daemon_dir / "dolt-backups.json"
        record.write_text(json.dumps({"hq": {"url": "file:///x", "at": at, "seconds": 1}}))
        record.chmod(0o600)
        two_days_ago = time.time() - 2 * 86400
        os.utime(t.town.data_dir / "hq", (two_days_ago, two_days_ago))
        for command, code in (("status", 3), ("doctor", 0)):
            done = t.gt_dolt(command)
            assert_clean(done, code)
            assert "no backup in the last 24h of: hq" in done.stdout  # a 2020 time is old; the rest is no record


class TestDoctorSaysOnlyWhatIsSo:
    def test_a_rig_never_backed_up_is_never_called_backed_up(self, rigged_town: TownFixture) -> None:
        t = rigged_town
        line = next(line for line in t.gt_dolt("doctor").stdout.splitlines() if " backups:" in line)
        assert "every rig backed up" not in line and "never backed up yet" in line and "hq" in line
        assert_clean(t.gt_dolt("backup"), 0)
        line = next(line for line in t.gt_dolt("doctor").stdout.splitlines() if " backups:" in line)
        assert "every rig backed up in the last 24h" in line


SERVER_PATHS = {  # each outside the town, in the test's own folder (Dolt creates what it names)
    "secure-file-priv-everywhere": lambda out: "  system_variables:\n    secure_file_priv: ''\n",
    "secure-file-priv-outside": lambda out: f"  system_variables:\n    secure_file_priv: {out}\n",
    "privilege-file-outside": lambda out: f"  privilege_file: {out / 'privileges.db'}\n",
    "branch-control-outside": lambda out: f"  branch_control_file: {out / 'branch_control.db'}\n",
    "cfg-dir-outside": lambda out: f"  cfg_dir: {out / 'doltcfg'}\n",
    "escaping-by-dots": lambda out: "  privilege_file: ../../privileges.db\n",
}


class TestServerPathsStayInTheTown:
    @pytest.mark.parametrize("setting", list(SERVER_PATHS))
    def test_a_path_where_the_server_writes_outside_the_town_needs_an_explicit_yes(
        self, rigged_town: TownFixture, tmp_path: Path, setting: str
    ) -> None:
        t = rigged_town
        outside = tmp_path / "outside"
        outside.mkdir()
        snippet = "".join(f"  {line}\n" for line in SERVER_PATHS[setting](outside).splitlines())
        with_project(t, "dolt:\n  server:\n" + snippet)
        done = t.gt_dolt("start")
        assert_clean(done, 2)
        assert "dolt.allow_outside_paths: true" in done.stderr and not t.servers()
        allowed = t.gt_dolt("start", INVOKE_DOLT_ALLOW_OUTSIDE_PATHS="true")
        assert_clean(allowed, 0)
        server.stop(t.town, t.settings)

    def test_paths_inside_the_town_need_nothing(self, rigged_town: TownFixture) -> None:
        t = rigged_town
        with_project(t, f"dolt:\n  server:\n    privilege_file: {t.town.data_dir / '.doltcfg' / 'privileges.db'}\n")
        assert_clean(t.gt_dolt("start"), 0)
