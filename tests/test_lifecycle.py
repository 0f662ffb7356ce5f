"""Start, stop, restart and status against a real `dolt sql-server` in a temporary town."""

from __future__ import annotations

import json
import signal
import subprocess

import psutil
import pytest

from conftest import TownFixture, end, free_port, spawn_dolt_by_hand
from faultkit import alive, wait_for_sql
from gastown_tasks.ops.errors import NoRigs
from gastown_tasks.ops.files.runfiles import read_pid_file, read_state
from gastown_tasks.ops.server import server, serverstatus


def test_first_query_after_start_succeeds(rigged_town: TownFixture) -> None:
    result = server.start(rigged_town.town, rigged_town.settings)
    assert result.started
    assert rigged_town.query("SELECT 1") == [(1,)]
    assert "hq" in result.databases


def test_rows_written_before_stop_are_there_after_next_start(rigged_town: TownFixture) -> None:
    t = rigged_town
    server.start(t.town, t.settings)
    t.query("CREATE TABLE beads (id INT PRIMARY KEY, title VARCHAR(50))", "hq")
    t.query("INSERT INTO beads VALUES (1, 'first'), (2, 'second')", "hq")
    assert server.stop(t.town, t.settings).was_running
    assert not t.servers()
    server.start(t.town, t.settings)
    assert t.query("SELECT id, title FROM beads ORDER BY id", "hq") == [(1, "first"), (2, "second")]


def test_second_start_changes_nothing(rigged_town: TownFixture) -> None:
    t = rigged_town
    first = server.start(t.town, t.settings)
    state_before = t.town.state_file.read_text()
    second = server.start(t.town, t.settings)
    assert not second.started
    assert second.pid == first.pid
    assert t.town.state_file.read_text() == state_before
    assert [p.pid for p in t.servers()] == [first.pid]


def test_start_writes_pid_and_state_files_gt_can_read(rigged_town: TownFixture) -> None:
    t = rigged_town
    result = server.start(t.town, t.settings)
    assert read_pid_file(t.town).pid == result.pid
    state = json.loads(t.town.state_file.read_text())
    assert state["running"] is True
    assert state["pid"] == result.pid
    assert state["port"] == t.port
    assert state["data_dir"] == str(t.town.data_dir)
    assert state["databases"] == ["hq"]
    assert state["started_at"]


def test_stop_removes_pid_file_and_keeps_state_history(rigged_town: TownFixture) -> None:
    t = rigged_town
    started = server.start(t.town, t.settings)
    stopped = server.stop(t.town, t.settings)
    assert stopped.was_running and stopped.pid == started.pid and not stopped.killed
    assert not t.town.pid_file.exists()
    state = read_state(t.town).to_json()
    assert state["running"] is False and state["pid"] == started.pid and state["stopped_at"]
    assert not alive(started.pid)  # gone, or a zombie nobody has reaped yet


def test_stop_when_not_running_says_so(rigged_town: TownFixture) -> None:
    result = server.stop(rigged_town.town, rigged_town.settings)
    assert not result.was_running


def test_server_started_by_hand_is_seen_and_stopped(rigged_town: TownFixture, dolt_binary) -> None:
    t = rigged_town
    by_hand = spawn_dolt_by_hand(dolt_binary, t)
    try:
        wait_for_sql(t)
        st = serverstatus.status(t.town, t.settings)
        assert st.running and st.pid == by_hand.pid and st.found_via == "port"
        assert st.databases == ["hq"]
        again = server.start(t.town, t.settings)
        assert not again.started and again.pid == by_hand.pid
        stopped = server.stop(t.town, t.settings)
        assert stopped.was_running and stopped.pid == by_hand.pid
        assert by_hand.wait(timeout=30) == 0  # SIGTERM: Dolt shuts down cleanly and exits 0
    finally:
        end(by_hand)


def test_status_exit_codes_running_stopped_and_stale_pid(rigged_town: TownFixture) -> None:
    t = rigged_town
    assert t.gt_dolt("status").returncode == 3
    started = server.start(t.town, t.settings)
    running = t.gt_dolt("status")
    assert running.returncode == 0, running.stderr
    assert f"pid {started.pid}" in running.stdout
    psutil.Process(started.pid).send_signal(signal.SIGKILL)
    psutil.Process(started.pid).wait(timeout=30)
    stale = t.gt_dolt("status")
    assert stale.returncode == 1
    assert "stale pid file" in stale.stdout


def test_status_outside_a_town_exits_4(tmp_path) -> None:
    done = subprocess.run(
        [*__import__("conftest").GT_DOLT, "status"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 4
    assert "not in a Gas Town workspace" in done.stderr
    assert "Traceback" not in done.stderr


def test_status_json_has_the_documented_fields(rigged_town: TownFixture) -> None:
    t = rigged_town
    started = server.start(t.town, t.settings)
    done = t.gt_dolt("status", "--json")
    assert done.returncode == 0
    data = json.loads(done.stdout)
    assert data["running"] is True
    assert data["pid"] == started.pid
    assert data["port"] == t.port
    assert data["data_dir"] == str(t.town.data_dir)
    assert data["databases"] == ["hq"]
    assert data["started_at"] and data["connection"].endswith(f":{t.port}/")


def test_status_json_when_stopped_lists_databases_on_disk(rigged_town: TownFixture) -> None:
    done = rigged_town.gt_dolt("status", "--json")
    assert done.returncode == 3
    data = json.loads(done.stdout)
    assert data["running"] is False and data["pid"] is None and data["databases"] == ["hq"]


def test_start_without_rigs_names_init_rig(town: TownFixture) -> None:
    with pytest.raises(NoRigs, match="init-rig <name>"):
        server.start(town.town, town.settings)
    done = town.gt_dolt("start")
    assert done.returncode == 1 and "init-rig" in done.stderr and "Traceback" not in done.stderr


def test_restart_gives_a_new_server_that_answers(rigged_town: TownFixture) -> None:
    t = rigged_town
    first = server.start(t.town, t.settings)
    stopped, started = server.restart(t.town, t.settings)
    assert stopped.pid == first.pid and started.started and started.pid != first.pid
    assert t.query("SELECT 1") == [(1,)]


def test_server_running_block_stops_only_what_it_started(rigged_town: TownFixture) -> None:
    t = rigged_town
    with server.server_running(t.town, t.settings) as result:
        assert result.started and t.query("SELECT 1") == [(1,)]
    assert not t.servers()
    outer = server.start(t.town, t.settings)
    with server.server_running(t.town, t.settings) as inner:
        assert not inner.started
    assert [p.pid for p in t.servers()] == [outer.pid]


def test_server_running_block_stops_the_server_when_the_block_fails(rigged_town: TownFixture) -> None:
    t = rigged_town
    with pytest.raises(RuntimeError), server.server_running(t.town, t.settings):
        raise RuntimeError("the body failed")
    assert not t.servers()


def test_two_towns_run_side_by_side_on_their_own_ports(tmp_path, dolt_binary) -> None:
    from conftest import cleanup_town, make_town

    a, b = make_town(tmp_path / "a"), make_town(tmp_path / "b", port=free_port())
    try:
        a.rig("hq")
        b.rig("gastown")
        server.start(a.town, a.settings)
        server.start(b.town, b.settings)
        assert a.query("SHOW DATABASES LIKE 'hq'") == [("hq",)]
        assert b.query("SHOW DATABASES LIKE 'gastown'") == [("gastown",)]
        assert server.stop(a.town, a.settings).was_running
        assert len(b.servers()) == 1
    finally:
        cleanup_town(a)
        cleanup_town(b)
