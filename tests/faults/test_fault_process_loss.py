"""Cases 1, 8 and 12: the server is killed, ignores SIGTERM, or loses its data dir while it runs."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import TownFixture, first_line, spawn_fake_server
from faultkit import alive, assert_clean, end, kill_9, wait_for_sql
from gastown_tasks.ops.files.runfiles import read_pid_file, read_state
from gastown_tasks.ops.server import server

pytestmark = pytest.mark.faults


def test_sigkilled_server_reads_stopped_with_pid_file_left_and_start_brings_back_committed_rows(
    rigged_town: TownFixture,
) -> None:
    """Case 1, real Dolt: SIGKILL, then status (exit 1), start recovers, the rows are there."""
    t = rigged_town
    assert_clean(t.gt_dolt("start"), 0)
    pid = read_pid_file(t.town).pid
    assert pid is not None
    t.query("CREATE TABLE beads (id INT PRIMARY KEY, title VARCHAR(40))", "hq")
    t.query("INSERT INTO beads VALUES (1, 'before the kill'), (2, 'also committed')", "hq")
    t.query("CALL DOLT_COMMIT('-Am', 'committed before the kill')", "hq")
    t.query("INSERT INTO beads VALUES (3, 'autocommitted, not dolt-committed')", "hq")

    kill_9(pid)

    status = t.gt_dolt("status")
    assert_clean(status, 1)
    assert "is not running (a stale pid file was left)" in status.stdout
    assert f"names pid {pid}, which is not this town's server" in status.stdout

    start = t.gt_dolt("start")
    assert_clean(start, 0)
    assert "removed a stale pid file" in start.stdout and "dolt sql-server started" in start.stdout
    assert t.query("SELECT id, title FROM beads ORDER BY id", "hq") == [
        (1, "before the kill"),
        (2, "also committed"),
        (3, "autocommitted, not dolt-committed"),
    ]
    assert t.query("SELECT message FROM dolt_log LIMIT 1", "hq") == [("committed before the kill",)]
    assert_clean(t.gt_dolt("status"), 0)


def test_stop_after_sigkill_cleans_the_stale_pid_file_and_says_not_running(rigged_town: TownFixture) -> None:
    t = rigged_town
    started = server.start(t.town, t.settings)
    kill_9(started.pid)
    stop = t.gt_dolt("stop")
    assert_clean(stop, 0)
    assert "removed a stale pid file" in stop.stdout and "is not running" in stop.stdout
    assert not t.town.pid_file.exists()
    assert read_state(t.town).to_json()["running"] is False
    assert_clean(t.gt_dolt("status"), 3)


def _ignores_sigterm(t: TownFixture) -> subprocess.Popen[str]:
    """The FAKE that ignores SIGTERM, serving this town's data dir on its port (plain TCP)."""
    fake = spawn_fake_server("dolt-fake-ignores-sigterm", t, port=t.port)
    assert "listening" in first_line(fake)
    return fake


def test_stop_escalates_to_sigkill_when_sigterm_is_ignored(rigged_town: TownFixture) -> None:
    """Case 8 through the ops API (a fake: a real Dolt always honours SIGTERM)."""
    t = rigged_town
    fake = _ignores_sigterm(t)
    try:
        result = server.stop(t.town, t.settings, timeout=0.5)
        assert result.was_running and result.killed and result.pid == fake.pid
        fake.wait(timeout=10)  # psutil reaped it already; the point is that it is gone
        assert not t.servers()
    finally:
        end(fake)


def test_gt_dolt_stop_escalates_to_sigkill_after_its_timeout_and_says_so(rigged_town: TownFixture) -> None:
    """Case 8 through gt-dolt: exit 0, the message names SIGKILL and the timeout."""
    t = rigged_town
    fake = _ignores_sigterm(t)
    try:
        done = t.gt_dolt("stop", "--timeout", "0.5")
        assert_clean(done, 0)
        assert "ignored SIGTERM for 0.5s and was killed (SIGKILL)" in done.stdout
        assert f"dolt sql-server stopped (pid {fake.pid})" in done.stdout
        assert fake.wait(timeout=10) == -9
        assert not t.servers()
    finally:
        end(fake)


def test_stop_still_stops_a_server_whose_data_dir_was_deleted(rigged_town: TownFixture) -> None:
    """Case 12, real Dolt: rm -rf .dolt-data while it runs; stop ends the process."""
    t = rigged_town
    started = server.start(t.town, t.settings)
    shutil.rmtree(t.town.data_dir)
    assert_clean(t.gt_dolt("status"), 0)
    stop = t.gt_dolt("stop")
    assert_clean(stop, 0)
    assert f"dolt sql-server stopped (pid {started.pid})" in stop.stdout
    assert not alive(started.pid)
    assert not t.town.pid_file.exists()


def test_stop_finds_a_server_by_its_port_when_data_dir_and_pid_file_are_both_gone(
    rigged_town: TownFixture,
) -> None:
    """Case 12 without any help from our files: the port and the --data-dir flag prove it is ours."""
    t = rigged_town
    started = server.start(t.town, t.settings)
    wait_for_sql(t)
    shutil.rmtree(t.town.data_dir)
    t.town.pid_file.unlink()
    t.town.state_file.unlink()
    stop = t.gt_dolt("stop")
    assert_clean(stop, 0)
    assert f"dolt sql-server stopped (pid {started.pid})" in stop.stdout
    assert not alive(started.pid)


def test_gt_dolt_stop_of_a_server_started_by_a_long_lived_python_process_is_a_clean_stop(
    rigged_town: TownFixture,
) -> None:
    """Real Dolt, started through the ops API by this (pytest) process, stopped by gt-dolt.

    The exited server stays a zombie until this process reaps it; stop must count that as
    exited, not wait out --timeout and report that SIGTERM was ignored.
    """
    t = rigged_town
    started = server.start(t.town, t.settings)
    stop = t.gt_dolt("stop")
    assert_clean(stop, 0)
    assert f"dolt sql-server stopped (pid {started.pid})" in stop.stdout
    assert "SIGKILL" not in stop.stdout
    assert not alive(started.pid)
