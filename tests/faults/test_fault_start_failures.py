"""Cases 9, 10 and 13: the server dies while starting, never becomes ready, or daemon/ is unwritable."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TownFixture, fake_dolt
from faultkit import IN_MOUNTS, assert_clean, end, gt_dolt_popen, wait_until
from gastown_tasks.ops.errors import StartFailed
from gastown_tasks.ops.files.runfiles import read_state
from gastown_tasks.ops.server import server

pytestmark = pytest.mark.faults

TOWN_TASKS = """
from invoke import Collection
import gastown_tasks
ns = Collection()
gastown_tasks.add_dolt(ns)
"""


def assert_nothing_left(t: TownFixture) -> None:
    """No pid file, no process, and the state says it is not running."""
    assert not t.town.pid_file.exists()
    assert not t.servers()
    assert read_state(t.town).to_json().get("running") is False


# --- case 9: the server dies during start-up -------------------------------------------------


def test_unreadable_database_makes_a_real_dolt_exit_and_start_fails_with_the_log_tail(
    rigged_town: TownFixture,
) -> None:
    """A rig whose manifest is garbage: the real Dolt exits at once."""
    t = rigged_town
    t.rig("broken")  # a rig this test makes, then breaks: the fault is set up, not simulated
    (t.town.rig_dir("broken") / ".dolt" / "noms" / "manifest").write_text("this is not a manifest")
    done = t.gt_dolt("start")
    assert_clean(done, 1)
    assert "dolt sql-server exited with code 1 before it was ready" in done.stderr
    assert "the log lines below say why" in done.stderr
    assert f"last lines of {t.town.log_file}:" in done.stderr and "gastown-tasks: " in done.stderr
    broken = t.town.rig_dir("broken")
    assert f"rig broken at {broken} cannot be opened" in done.stderr  # Dolt's own "EOF" names no rig
    assert f"cd {broken} && " in done.stderr and " fsck" in done.stderr
    assert "rig hq " not in done.stderr
    assert_nothing_left(t)


def test_database_dolt_skips_fails_the_start_at_once_naming_the_rig_and_dolts_reason(
    rigged_town: TownFixture, dolt_binary: Path
) -> None:
    """A rig with a corrupt repo_state.json: the real Dolt starts but skips it.  Waiting for it
    to be listed could never succeed, so start fails from the log, not from --timeout.
    """
    t = rigged_town
    t.rig("second")
    shutil.rmtree(t.town.rig_dir("second") / ".dolt" / "repo_state.json", ignore_errors=True)
    (t.town.rig_dir("second") / ".dolt" / "repo_state.json").write_text("{{{ not json")
    done = t.gt_dolt("start", "--timeout", "600")
    assert_clean(done, 1)
    assert f"skipped rig second at {t.town.rig_dir('second')}" in done.stderr
    assert "invalid character" in done.stderr  # Dolt's own reason
    assert "not ready within" not in done.stderr
    assert_nothing_left(t)


def test_real_dolt_that_refuses_a_config_value_fails_the_start_with_dolts_reason(
    rigged_town: TownFixture,
) -> None:
    """A value our key check accepts but Dolt refuses (a system variable it will not take)."""
    t = rigged_town
    (t.root / "tasks.py").write_text(TOWN_TASKS)
    (t.root / "invoke.yaml").write_text("dolt:\n  server:\n    system_variables:\n      dolt_log_level: warn\n")
    done = t.gt_dolt("start")
    assert_clean(done, 1)
    assert "exited with code 1" in done.stderr and "dolt_log_level" in done.stderr
    assert_nothing_left(t)


def test_a_server_that_fails_every_login_ends_the_start_with_its_own_words_not_the_timeout(
    rigged_town: TownFixture,
) -> None:
    """A setting Dolt accepts at start but applies at every login (a session variable it refuses)."""
    t = rigged_town
    (t.root / "tasks.py").write_text(TOWN_TASKS)
    (t.root / "invoke.yaml").write_text(
        "dolt:\n  server:\n    user_session_vars:\n      - name: root\n        vars:\n          secure_file_priv: /\n"
    )
    done = t.gt_dolt("start", "--timeout", "30")
    assert_clean(done, 1)
    assert "answers but fails every login" in done.stderr and "secure_file_priv" in done.stderr
    assert "raise dolt.start_timeout" not in done.stderr
    assert done.stderr.count("\n") < 40  # one message and the log tail, not a flood
    assert_nothing_left(t)


def test_dolt_that_dies_at_start_fails_with_log_tail_and_no_pid_file(rigged_town: TownFixture) -> None:
    """A bad flag or a crash at start, via the named FAKE (dies-at-start)."""
    t = rigged_town
    settings = t.settings.with_overrides(binary=str(fake_dolt("dolt-fake-dies-at-start")))
    with pytest.raises(StartFailed) as err:
        server.start(t.town, settings)
    message = str(err.value)
    assert "exited with code 1" in message and "is locked by another dolt process" in message
    assert_nothing_left(t)


# --- case 10: readiness timeout --------------------------------------------------------------


def test_readiness_timeout_kills_the_child_and_says_what_it_waited_for(rigged_town: TownFixture) -> None:
    """The named FAKE never-ready stays alive and never listens."""
    t = rigged_town
    settings = t.settings.with_overrides(binary=str(fake_dolt("dolt-fake-never-ready")))
    with pytest.raises(StartFailed) as err:
        server.start(t.town, settings, timeout=1)
    assert "not ready within 1s" in str(err.value) and "never answered SQL" in str(err.value)
    assert "raise dolt.start_timeout (or --timeout)" in str(err.value)
    assert_nothing_left(t)


def test_gt_dolt_start_timeout_with_a_real_dolt_kills_it_and_the_next_start_works(
    rigged_town: TownFixture,
) -> None:
    """A real Dolt that is not ready within --timeout (frozen with SIGSTOP as soon as it exists, so
    no loaded machine can make it ready in time): it must not survive the timeout nor leave the data
    dir locked for the next start.
    """
    t = rigged_town
    job = gt_dolt_popen(t, "start", "--timeout", "1")
    try:
        wait_until(lambda: t.servers(), "dolt sql-server to be launched")
        t.servers()[0].suspend()
        _, err = job.communicate(timeout=120)
    finally:
        end(job)
    assert job.returncode == 1 and "Traceback" not in err, err
    assert "was not ready within 1s: it never answered SQL on 127.0.0.1:" in err
    assert_nothing_left(t)
    assert_clean(t.gt_dolt("start"), 0)
    assert t.query("SELECT 1") == [(1,)]


# --- case 13: daemon/ cannot be written ------------------------------------------------------


def test_daemon_that_is_a_file_fails_every_command_cleanly_and_starts_nothing(
    rigged_town: TownFixture,
) -> None:
    """Root ignores permissions, so the fault is daemon/ being a regular file (ENOTDIR/EEXIST)."""
    t = rigged_town
    shutil.rmtree(t.town.daemon_dir)  # creating the rig took the town lock, so daemon/ exists
    t.town.daemon_dir.write_text("not a folder\n")
    start = t.gt_dolt("start")
    assert_clean(start, 1)
    assert f"{t.town.daemon_dir} is a file, not a folder" in start.stderr
    assert not t.servers()
    for command in ("stop", "restart"):
        done = t.gt_dolt(command)
        assert_clean(done, 1)
        assert str(t.town.daemon_dir) in done.stderr
    status = t.gt_dolt("status")
    assert_clean(status, 3)
    assert f"{t.town.daemon_dir} is a file, not a folder" in status.stdout
    assert t.town.daemon_dir.read_text() == "not a folder\n"
    assert not t.servers()


@pytest.mark.needs_root("bind-mounts daemon/ read-only in a private mount namespace")
def test_read_only_daemon_fails_start_before_anything_is_started(rigged_town: TownFixture) -> None:
    """daemon/ bind-mounted read-only onto itself (EROFS binds root too), inside a private
    mount namespace that disappears with the command.
    """
    t = rigged_town
    before = sorted(p.name for p in t.town.daemon_dir.iterdir())
    command = ["unshare", "--mount", "--propagation", "private"]
    command += [sys.executable, str(IN_MOUNTS), f"ro:{t.town.daemon_dir}", "--"]
    for action, code in (("start", 1), ("stop", 1), ("status", 3), ("doctor", 1)):
        done = subprocess.run([*command, action], cwd=t.root, env=t.env(), capture_output=True, text=True, timeout=120)
        assert "mounts in place" in done.stderr  # the fault really was in place
        assert_clean(done, code)
        if action in ("start", "stop"):
            assert str(t.town.daemon_dir) in done.stderr and "the file system is read-only" in done.stderr
        if action == "doctor":
            assert f"fail daemon: {t.town.daemon_dir} is on a read-only mount" in done.stdout
        assert not t.servers()
    assert sorted(p.name for p in t.town.daemon_dir.iterdir()) == before
