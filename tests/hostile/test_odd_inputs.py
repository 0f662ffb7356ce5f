"""Smaller holes a hostile user found: a lock others could hold, a rotation that could lose the log,
state files built to crash or to grow, a closed stdout, terminal escapes, extra listeners."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import GT_DOLT, TownFixture
from faultkit import assert_clean
from gastown_tasks.ops.files.runfiles import STATE_FILE_LIMIT
from gastown_tasks.ops.server import server
from hostile import on_a_terminal

pytestmark = pytest.mark.hostile
NOBODY = 65534


def test_the_town_lock_is_private_so_no_other_user_can_hold_the_town_hostage(rigged_town: TownFixture) -> None:
    t = rigged_town
    t.town.lock_file.chmod(0o644)  # as an older version left it
    assert_clean(t.gt_dolt("init-rig", "second"), 0)
    assert t.town.lock_file.stat().st_mode & 0o777 == 0o600


@pytest.mark.needs_root("opens the lock as another user (setpriv)")
def test_another_user_cannot_open_the_town_lock(rigged_town: TownFixture) -> None:
    t = rigged_town
    t.town.lock_file.chmod(0o644)  # as an older version left it
    assert_clean(t.gt_dolt("init-rig", "second"), 0)
    grab = subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            f"open({str(t.town.lock_file)!r})",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert grab.returncode == 1 and "PermissionError: [Errno 13] Permission denied" in grab.stderr, grab.stderr


def test_a_rotation_that_cannot_shift_the_old_logs_loses_nothing(rigged_town: TownFixture) -> None:
    t = rigged_town
    t.town.log_file.write_text("".join(f"line {i}\n" for i in range(1000)))
    t.town.log_file.chmod(0o600)
    planted = t.town.log_file.with_name("dolt.log.3.gz")
    (planted / "x").mkdir(parents=True)
    done = t.gt_dolt("logs", "--rotate")
    assert_clean(done, 1)
    assert str(planted) in done.stderr
    assert t.town.log_file.read_text().count("\n") == 1000  # refused before anything was touched
    (planted / "x").rmdir()
    planted.rmdir()
    assert_clean(t.gt_dolt("logs", "--rotate"), 0)
    rotated = t.town.log_file.with_name("dolt.log.1.gz")
    assert gzip.decompress(rotated.read_bytes()).decode().count("\n") == 1000
    assert t.town.log_file.read_text() == ""


def test_a_rotation_cut_short_after_the_truncate_is_recovered_not_deleted(rigged_town: TownFixture) -> None:
    t = rigged_town
    staging = t.town.daemon_dir / ".dolt.log.rotating.gz"
    staging.write_bytes(gzip.compress(b"the only copy of these lines\n"))
    staging.chmod(0o600)
    t.town.log_file.write_text("new\n")
    t.town.log_file.chmod(0o600)
    done = t.gt_dolt("logs", "--rotate")
    assert_clean(done, 0)
    assert "kept the log of an interrupted rotation as" in done.stdout
    kept = [p for p in t.town.daemon_dir.iterdir() if ".recovered-" in p.name]
    assert len(kept) == 1 and gzip.decompress(kept[0].read_bytes()) == b"the only copy of these lines\n"


def test_a_state_file_nested_beyond_pythons_recursion_limit_is_unknown_not_a_crash(rigged_town: TownFixture) -> None:
    t = rigged_town
    t.town.state_file.write_text('{"running": true, "x": ' + "[" * 5000 + "]" * 5000 + "}")
    t.town.state_file.chmod(0o600)
    for args, code in ((["status"], 3), (["doctor"], 0), (["doctor", "--fix"], 0), (["stop"], 0), (["start"], 0)):
        done = t.gt_dolt(*args)
        assert_clean(done, code)


def test_keys_another_tool_wrote_never_make_the_state_file_larger_than_it_is_read(rigged_town: TownFixture) -> None:
    t = rigged_town
    big = {"running": False, "notes_of_another_tool": ["x" * 100] * 4000}
    t.town.state_file.write_text(json.dumps(big, separators=(",", ":")))
    t.town.state_file.chmod(0o600)
    assert_clean(t.gt_dolt("start"), 0)
    assert_clean(t.gt_dolt("stop"), 0)
    assert t.town.state_file.stat().st_size < STATE_FILE_LIMIT
    assert_clean(t.gt_dolt("status"), 3)


def test_commands_with_stdout_closed_do_their_work_without_a_traceback(rigged_town: TownFixture) -> None:
    t = rigged_town
    for args, code in ((["init-rig", "quiet"], 0), (["status"], 3), (["logs"], 0), (["list"], 0)):
        done = subprocess.run(
            [*GT_DOLT, *args],
            cwd=t.root,
            env=t.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            close_fds=True,
            preexec_fn=lambda: os.close(1),
        )
        assert (done.returncode, done.stderr) == (code, ""), (args, done.stderr)  # no traceback, no complaint
    assert t.town.rig_dir("quiet").is_dir()


def test_escape_sequences_in_names_reach_a_terminal_as_visible_text(rigged_town: TownFixture) -> None:
    """Any SQL user can create a database named to clear the screen and print a fake status."""
    t = rigged_town
    server.start(t.town, t.settings)
    t.query("CREATE DATABASE `x\x1b[2J\x1b[1;32mALL GOOD`")
    _, seen = on_a_terminal(t, "status")
    assert b"\x1b[" not in seen and b"x\\x1b[2J\\x1b[1;32mALL GOOD" in seen


@pytest.mark.parametrize("listener", ["mcp_server", "remotesapi"])
def test_extra_listeners_on_every_interface_need_a_password_too(rigged_town: TownFixture, listener: str) -> None:
    t = rigged_town
    (t.root / "tasks.py").write_text(
        "from invoke import Collection\nimport gastown_tasks\nns = Collection()\ngastown_tasks.add_dolt(ns)\n"
    )
    (t.root / "invoke.yaml").write_text(f"dolt:\n  server:\n    {listener}:\n      port: 1\n")
    done = t.gt_dolt("start")
    assert_clean(done, 2)
    assert f"dolt.server.{listener} opens a port on every interface" in done.stderr and not t.servers()


@pytest.mark.needs_root("the note is about a server run as root")
def test_a_server_run_as_root_without_a_password_says_what_that_exposes(rigged_town: TownFixture) -> None:
    done = rigged_town.gt_dolt("start")
    assert_clean(done, 0)
    assert "every local user can reach it on loopback" in done.stdout and "dolt.password" in done.stdout


def test_the_rig_folder_a_status_lists_is_not_a_path_through_a_planted_link(rigged_town: TownFixture) -> None:
    """Output names what is there: a planted link's target is shown, never followed."""
    t = rigged_town
    Path(t.town.pid_file).symlink_to("/etc/\x1b[2Jpasswd")
    done = t.gt_dolt("status")
    assert_clean(done, 1)
    assert "is a symlink to /etc/" in done.stdout
