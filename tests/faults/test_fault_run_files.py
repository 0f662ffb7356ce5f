"""Cases 2, 3 and 4: daemon/dolt.pid and daemon/dolt-state.json that lie, are garbage, or are cut short."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psutil
import pytest

from conftest import TownFixture, spawn_dolt_by_hand
from faultkit import (
    alive,
    assert_clean,
    audit_events,
    audited_gt_dolt,
    end,
    kill_9,
    sleeper,
    wait_for_sql,
)
from gastown_tasks.ops.files.runfiles import read_pid_file, read_state
from gastown_tasks.ops.server import server

pytestmark = pytest.mark.faults


def _signals_to(events: list[dict], pid: int) -> list[dict]:
    return [e for e in events if e["event"] in ("os.kill", "os.killpg") and e["pid"] == pid]


# --- case 2: the pid file names a live process that is not ours ------------------------------


@pytest.mark.parametrize("recorded_in_state", [False, True], ids=["pid-file-only", "pid-and-state-files"])
def test_pid_file_naming_a_live_unrelated_process_reads_not_running_and_nothing_signals_it(
    rigged_town: TownFixture, tmp_path: Path, recorded_in_state: bool
) -> None:
    """Pid reuse: the recorded pid now belongs to a live non-Dolt process.

    status, stop and start run under an audit hook that logs (and refuses) any signal to it.
    """
    t = rigged_town
    other = sleeper()
    audit = tmp_path / "audit.jsonl"
    try:

        def plant() -> None:
            t.town.daemon_dir.mkdir(exist_ok=True)
            t.town.pid_file.write_text(f"{other.pid}\n")
            if recorded_in_state:
                earlier = psutil.Process(other.pid).create_time() - 3600  # the server that had the pid
                state = {"running": True, "pid": other.pid, "create_time": earlier, "port": t.port}
                t.town.state_file.write_text(json.dumps(state))

        plant()
        status = audited_gt_dolt(t, audit, "status", GT_AUDIT_PROTECT=str(other.pid))
        assert_clean(status, 1)
        assert f"names pid {other.pid}, which is not this town's server" in status.stdout

        stop = audited_gt_dolt(t, audit, "stop", GT_AUDIT_PROTECT=str(other.pid))
        assert_clean(stop, 0)
        assert "is not running" in stop.stdout and "removed a stale pid file" in stop.stdout
        assert alive(other.pid)

        plant()
        start = audited_gt_dolt(t, audit, "start", GT_AUDIT_PROTECT=str(other.pid))
        assert_clean(start, 0)
        assert "removed a stale pid file" in start.stdout and "dolt sql-server started" in start.stdout
        new_pid = read_pid_file(t.town).pid
        assert new_pid not in (None, other.pid) and [p.pid for p in t.servers()] == [new_pid]

        assert alive(other.pid)
        assert _signals_to(audit_events(audit), other.pid) == []
    finally:
        end(other)


def test_pid_file_naming_the_caller_itself_is_never_signalled(rigged_town: TownFixture, tmp_path: Path) -> None:
    """The pid file names the process that runs gt-dolt (here: pytest); stop must not touch it."""
    t = rigged_town
    audit = tmp_path / "audit.jsonl"
    t.town.daemon_dir.mkdir(exist_ok=True)
    t.town.pid_file.write_text(f"{os.getpid()}\n")
    stop = audited_gt_dolt(t, audit, "stop", GT_AUDIT_PROTECT=str(os.getpid()))
    assert_clean(stop, 0)
    assert _signals_to(audit_events(audit), os.getpid()) == []


# --- case 3: pid files that hold no usable pid -----------------------------------------------

BAD_PID_FILES = {
    "empty": b"",
    "blank-lines": b"\n \n",
    "garbage": b"not a pid\n",
    "minus-one": b"-1\n",
    "zero": b"0\n",
    "huge": b"99999999999999999999\n",
    "thousands-of-digits": b"9" * 5000 + b"\n",
    "non-ascii-digit": "\u00b2\n".encode(),
    "binary": b"\xff\xfe\x00\x01",
    "two-lines-stale-pid-and-nonce": b"4194303\nnonce-from-gt\n",
}


@pytest.mark.parametrize("content", BAD_PID_FILES.values(), ids=BAD_PID_FILES.keys())
def test_bad_pid_file_is_reported_and_start_replaces_it(rigged_town: TownFixture, content: bytes) -> None:
    t = rigged_town
    t.town.daemon_dir.mkdir(exist_ok=True)
    t.town.pid_file.write_bytes(content)

    status = t.gt_dolt("status")
    assert_clean(status, 1)
    assert "a stale pid file was left" in status.stdout

    start = t.gt_dolt("start")
    assert_clean(start, 0)
    assert "removed a stale pid file" in start.stdout
    started = read_pid_file(t.town)
    assert started.problem is None and [p.pid for p in t.servers()] == [started.pid]
    assert_clean(t.gt_dolt("status"), 0)


@pytest.mark.parametrize("content", BAD_PID_FILES.values(), ids=BAD_PID_FILES.keys())
def test_bad_pid_file_is_removed_by_stop(rigged_town: TownFixture, content: bytes) -> None:
    t = rigged_town
    t.town.daemon_dir.mkdir(exist_ok=True)
    t.town.pid_file.write_bytes(content)
    stop = t.gt_dolt("stop")
    assert_clean(stop, 0)
    assert "is not running" in stop.stdout and not t.town.pid_file.exists()


def test_pid_file_with_the_servers_pid_and_a_nonce_line_is_understood(rigged_town: TownFixture) -> None:
    """Gas Town's daemon writes "PID\\nNONCE": two lines whose first names the live server."""
    t = rigged_town
    started = server.start(t.town, t.settings)
    t.town.pid_file.write_text(f"{started.pid}\n3f2a-nonce\n")
    status = t.gt_dolt("status")
    assert_clean(status, 0)
    assert f"pid {started.pid}" in status.stdout
    stop = t.gt_dolt("stop")
    assert_clean(stop, 0)
    assert f"stopped (pid {started.pid})" in stop.stdout


def test_garbage_pid_file_beside_a_running_server_is_reported_and_rewritten(rigged_town: TownFixture) -> None:
    t = rigged_town
    started = server.start(t.town, t.settings)
    t.town.pid_file.write_text("garbage\n")
    status = t.gt_dolt("status")
    assert_clean(status, 0)
    assert f"pid {started.pid}" in status.stdout and "does not hold a pid" in status.stdout
    again = t.gt_dolt("start")
    assert_clean(again, 0)
    assert "already running" in again.stdout and f"recorded pid {started.pid}" in again.stdout
    assert read_pid_file(t.town).pid == started.pid


def test_pid_file_that_is_a_folder_is_reported_not_a_traceback(rigged_town: TownFixture) -> None:
    t = rigged_town
    t.town.pid_file.mkdir(parents=True)
    status = t.gt_dolt("status")
    assert_clean(status, 1)
    assert str(t.town.pid_file) in status.stdout
    for command in ("start", "stop"):
        done = t.gt_dolt(command)
        assert_clean(done, 1)
        assert f"{t.town.pid_file} is a folder" in done.stderr and "remove it" in done.stderr
    assert not t.servers()


# --- case 4: a state file that is not what it should be --------------------------------------

BAD_STATE_FILES = {
    "empty": b"",
    "truncated": b'{"running": true, "pid": 12',
    "not-json": b"running=yes\n",
    "a-list": b"[1, 2, 3]",
    "null": b"null",
    "not-utf8": b'{"running": true, "pid": "\xff\xfe"}',
}


@pytest.mark.parametrize("content", BAD_STATE_FILES.values(), ids=BAD_STATE_FILES.keys())
def test_corrupt_state_file_warns_counts_as_unknown_and_start_rewrites_it(
    rigged_town: TownFixture, content: bytes
) -> None:
    t = rigged_town
    t.town.daemon_dir.mkdir(exist_ok=True)
    t.town.state_file.write_bytes(content)

    status = t.gt_dolt("status")
    assert_clean(status, 3)
    assert "treating the state as unknown" in status.stdout

    start = t.gt_dolt("start")
    assert_clean(start, 0)
    assert "treating the state as unknown" in start.stdout
    state = read_state(t.town)
    assert state.problem is None
    assert state.running is True and state.pid == read_pid_file(t.town).pid
    assert_clean(t.gt_dolt("stop"), 0)
    assert read_state(t.town).to_json()["running"] is False


WRONG_TYPED_STATES = {
    "pid-is-true": {"running": True, "pid": True},
    "pid-is-a-string": {"running": True, "pid": "123"},
    "pid-is-huge": {"running": True, "pid": 10**30},
    "pid-is-negative": {"running": True, "pid": -1},
    "create-time-is-text": {"running": True, "pid": 1, "create_time": "yesterday"},
    "port-is-text": {"running": True, "pid": 1, "port": "not-a-port"},
}


@pytest.mark.parametrize("state", WRONG_TYPED_STATES.values(), ids=WRONG_TYPED_STATES.keys())
def test_state_file_with_wrong_typed_fields_is_survived_by_every_command(rigged_town: TownFixture, state: dict) -> None:
    t = rigged_town
    t.town.daemon_dir.mkdir(exist_ok=True)
    t.town.state_file.write_text(json.dumps(state))
    assert_clean(t.gt_dolt("status"), 3)
    assert_clean(t.gt_dolt("start"), 0)
    assert read_state(t.town).to_json()["pid"] == read_pid_file(t.town).pid
    assert_clean(t.gt_dolt("status"), 0)
    assert_clean(t.gt_dolt("stop"), 0)


def test_garbage_port_in_the_state_file_is_not_used_for_a_server_without_a_port_flag(
    rigged_town: TownFixture, dolt_binary: Path
) -> None:
    """A server started by hand with --config has no --port flag; the state's port is garbage."""
    t = rigged_town
    config = t.town.data_dir / "by-hand.yaml"
    config.write_text(f"listener:\n  host: 127.0.0.1\n  port: {t.port}\n")
    by_hand = spawn_dolt_by_hand(dolt_binary, t, "--config", config.name)
    try:
        wait_for_sql(t)
        t.town.daemon_dir.mkdir(exist_ok=True)
        t.town.pid_file.write_text(f"{by_hand.pid}\n")
        t.town.state_file.write_text(json.dumps({"running": True, "pid": by_hand.pid, "port": "garbage"}))
        status = t.gt_dolt("status")
        assert_clean(status, 0)
        assert f"pid {by_hand.pid}" in status.stdout and f"port:       {t.port}" in status.stdout
        assert_clean(t.gt_dolt("stop"), 0)
        assert by_hand.wait(timeout=60) == 0  # SIGTERM: Dolt shuts down cleanly and exits 0
    finally:
        end(by_hand)


def test_killed_server_with_state_still_saying_running_reads_stopped(rigged_town: TownFixture) -> None:
    t = rigged_town
    started = server.start(t.town, t.settings)
    kill_9(started.pid)
    t.town.pid_file.unlink()  # only the state file still claims it runs
    status = t.gt_dolt("status", "--json")
    assert_clean(status, 3)
    assert json.loads(status.stdout)["running"] is False
    assert_clean(t.gt_dolt("stop"), 0)
    assert read_state(t.town).to_json()["running"] is False
