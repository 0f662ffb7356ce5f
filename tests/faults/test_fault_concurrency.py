"""Cases 7 and 11: many commands at once, and Ctrl-C in the middle of a start."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import TownFixture, fake_dolt
from faultkit import alive, assert_clean, audit_events, end, gt_dolt_popen, wait_until
from gastown_tasks.ops.files.locking import town_lock
from gastown_tasks.ops.files.runfiles import read_pid_file, read_state
from gastown_tasks.ops.server import server

pytestmark = pytest.mark.faults


def assert_consistent(t: TownFixture) -> None:
    """status, the pid file and the state file all agree with the processes."""
    servers = t.servers()
    status = t.gt_dolt("status", "--json")
    report = json.loads(status.stdout)
    assert len(servers) <= 1, [p.pid for p in servers]
    if servers:
        assert status.returncode == 0 and report["running"] and report["pid"] == servers[0].pid
        assert read_pid_file(t.town).pid == servers[0].pid
        state = read_state(t.town).to_json()
        assert state["running"] is True and state["pid"] == servers[0].pid
    else:
        assert status.returncode == 3 and not report["running"], status.stdout
        assert not t.town.pid_file.exists()
        assert read_state(t.town).to_json().get("running") is not True


# --- case 7 ----------------------------------------------------------------------------------


def test_ten_concurrent_gt_dolt_starts_leave_exactly_one_server_and_all_exit_0(
    rigged_town: TownFixture,
) -> None:
    t = rigged_town
    with ThreadPoolExecutor(max_workers=10) as pool:
        runs = list(pool.map(lambda _: t.gt_dolt("start"), range(10)))
    for run in runs:
        assert_clean(run, 0)
    assert sum("dolt sql-server started:" in r.stdout for r in runs) == 1
    assert sum("dolt sql-server already running:" in r.stdout for r in runs) == 9
    assert len(t.servers()) == 1
    assert t.query("SELECT 1") == [(1,)]
    assert_consistent(t)


def test_concurrent_starts_in_one_process_leave_one_server(rigged_town: TownFixture) -> None:
    t = rigged_town
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: server.start(t.town, t.settings), range(4)))
    assert sum(r.started for r in results) == 1
    assert len({r.pid for r in results}) == 1
    assert len(t.servers()) == 1


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_starts_and_stops_end_in_a_state_status_agrees_with(rigged_town: TownFixture, round_: int) -> None:
    t = rigged_town
    commands = ["start", "stop", "start", "stop", "start", "restart", "stop", "start"]
    commands = commands[round_:] + commands[:round_]
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        runs = list(pool.map(lambda command: t.gt_dolt(command), commands))
    for run in runs:
        assert_clean(run, 0)
    assert_consistent(t)


# --- case 11 ---------------------------------------------------------------------------------


def _ctrl_c(job: subprocess.Popen[str]) -> tuple[int, str, str]:
    """What a terminal does on Ctrl-C: SIGINT to the foreground job's process group."""
    os.killpg(job.pid, signal.SIGINT)
    out, err = job.communicate(timeout=120)
    return job.returncode, out, err


def _lock_is_free(t: TownFixture) -> bool:
    try:
        with town_lock(t.town, wait=0):
            return True
    except Exception:
        return False


def test_ctrl_c_while_waiting_for_readiness_kills_the_child_and_releases_the_lock(
    rigged_town: TownFixture,
) -> None:
    """A fake that never answers keeps start waiting; Ctrl-C then must leave nothing behind."""
    t = rigged_town
    job = gt_dolt_popen(t, "start", "--timeout", "600", INVOKE_DOLT_BINARY=str(fake_dolt("dolt-fake-never-ready")))
    try:
        wait_until(lambda: t.servers() and t.town.pid_file.exists(), "the fake server to be launched and recorded")
        child = t.servers()[0].pid
        code, _, err = _ctrl_c(job)
    finally:
        end(job)
    assert code == 130 and "interrupted" in err and "Traceback" not in err
    assert not alive(child) and not t.servers()
    assert not t.town.pid_file.exists()
    assert read_state(t.town).to_json()["running"] is False
    assert _lock_is_free(t)


def test_ctrl_c_during_a_real_start_leaves_no_untracked_server_and_releases_the_lock(
    rigged_town: TownFixture,
) -> None:
    """Real Dolt: Ctrl-C while the server it launched is not yet ready (frozen with SIGSTOP as soon
    as it exists, so the start is certainly still waiting): the start is undone, exit 130, and no
    server is left that no pid file names.
    """
    t = rigged_town
    job = gt_dolt_popen(t, "start")
    try:
        wait_until(lambda: t.servers(), "dolt sql-server to be launched")
        launched = t.servers()[0]
        launched.suspend()
        assert job.poll() is None, "the start finished before its server could be frozen"
        code, _, err = _ctrl_c(job)
    finally:
        end(job)
    assert code == 130 and "interrupted" in err and "Traceback" not in err, err
    assert not alive(launched.pid) and not t.servers()
    assert_consistent(t)  # no server that the pid file, the state and status do not all name
    assert _lock_is_free(t)
    assert_clean(t.gt_dolt("start"), 0)


def test_ctrl_c_while_waiting_for_the_town_lock_starts_nothing(rigged_town: TownFixture, tmp_path: Path) -> None:
    t = rigged_town
    audit = tmp_path / "audit.jsonl"
    with town_lock(t.town, wait=0):
        job = gt_dolt_popen(t, "start", audit=audit)
        try:

            def tried_the_lock() -> bool:
                return any(
                    e["event"] == "open-write" and e["paths"] == [str(t.town.lock_file)] for e in audit_events(audit)
                )

            wait_until(tried_the_lock, "gt-dolt start to open the lock file (we hold it, so it waits)")
            code, _, err = _ctrl_c(job)
        finally:
            end(job)
    assert code == 130 and "interrupted" in err and "Traceback" not in err
    assert not t.servers() and not t.town.pid_file.exists()
    assert not [e for e in audit_events(audit) if e["event"] == "subprocess.Popen"]
    assert _lock_is_free(t)


def test_lock_is_a_kernel_flock_that_other_tools_see(rigged_town: TownFixture) -> None:
    """Gas Town's gt takes the same flock: while we hold it, another holder must wait."""
    t = rigged_town
    with town_lock(t.town, wait=0), open(t.town.lock_file, "rb") as other, pytest.raises(BlockingIOError):
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert _lock_is_free(t)
