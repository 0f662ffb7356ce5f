"""A wedged server (ops/wedge.py) against a real Dolt: stopped, pinned at its connection cap,
read-only as Dolt makes a database read-only; `status`, `watch`, `dump` and `recover` on each, and
no process but the town's server ever signalled."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
from pathlib import Path

import psutil
import pymysql
import pytest

from conftest import Lines, TownFixture, first_line, spawn_fake_server
from faultkit import assert_clean, audit_events, audited_gt_dolt, end, frozen, gt_dolt_popen, sleeper, wait_until
from gastown_tasks.ops.files.datadir import PROBE_DATABASE
from gastown_tasks.ops.files.runfiles import read_pid_file
from gastown_tasks.ops.host import procs
from gastown_tasks.ops.server import server
from gastown_tasks.ops.server.discovery import Running, record_running

TOWN_TASKS = "from invoke import Collection\nimport gastown_tasks\nns = Collection()\ngastown_tasks.add_dolt(ns)\n"
READ_ONLY = "cannot update manifest: database is read only"


def configure(t: TownFixture, yaml: str) -> None:
    (t.root / "tasks.py").write_text(TOWN_TASKS)
    (t.root / "invoke.yaml").write_text(yaml)


def _answers(t: TownFixture) -> bool:
    try:
        return t.query("SELECT 1") == [(1,)]
    except pymysql.err.MySQLError:
        return False


def _watch_log(t: TownFixture) -> str:
    return t.town.watch_log.read_text() if t.town.watch_log.exists() else ""


def _status(t: TownFixture) -> dict:
    done = t.gt_dolt("status", "--json")
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout)


def _new_server_answers(t: TownFixture, old: int) -> bool:
    pid = read_pid_file(t.town).pid
    return pid is not None and pid != old and _answers(t)


def test_a_stopped_server_is_wedged_in_status_and_watch_dumps_it_and_starts_it_again(
    rigged_town: TownFixture,
) -> None:
    t = rigged_town
    first = server.start(t.town, t.settings)
    t.query("CREATE TABLE beads (id INT PRIMARY KEY)", "hq")
    t.query("INSERT INTO beads VALUES (7)", "hq")
    with frozen(first.pid, end_it=True) as proc:
        seen = _status(t)
        assert seen["wedge"]["kind"] == "stopped" and str(first.pid) in seen["wedge"]["said"]
        text = t.gt_dolt("status").stdout
        assert f"pid {first.pid} but WEDGED (stopped)" in text and "gt-dolt recover" in text
        watcher = gt_dolt_popen(t, "watch", "--interval", "1")
        try:
            assert "watching" in Lines(watcher.stdout).next(timeout=60)
            wait_until(lambda: "restarted it" in _watch_log(t), "the watcher to dump and restart the server")
            assert _new_server_answers(t, first.pid)
            os.killpg(watcher.pid, signal.SIGINT)
            assert watcher.wait(timeout=60) == 0
        finally:
            end(watcher)
        assert procs.wait_exited(proc, 0)  # it ended on the dump's SIGQUIT (a zombie of this test)
    log = t.town.watch_log.read_text()
    assert "wedged (stopped)" in log, log
    assert f"dump of pid {first.pid}" in log and "goroutine stacks written" in log
    assert "SIGQUIT: quit" in t.town.log_file.read_text()
    assert t.query("SELECT id FROM beads", "hq") == [(7,)]


def test_a_server_pinned_at_its_connection_cap_is_full_and_recover_dumps_and_restarts_it(
    rigged_town: TownFixture,
) -> None:
    t = rigged_town
    configure(t, "dolt:\n  server:\n    listener:\n      max_connections: 3\n")
    assert_clean(t.gt_dolt("start"), 0)
    old = read_pid_file(t.town).pid
    held = [t.connect() for _ in range(3)]
    try:
        seen = _status(t)
        assert seen["sql"] == "not answering" and seen["wedge"]["kind"] == "full", seen
        done = t.gt_dolt("recover")
        assert_clean(done, 0)
        assert "wedged (full)" in done.stdout and f"dump of pid {old}" in done.stdout
        assert "takes writes again" in done.stdout
    finally:
        for conn in held:
            with contextlib.suppress(Exception):
                conn.close()
    assert _new_server_answers(t, old)  # recover returned only once it answered


def _undrop_while_locked(t: TownFixture, rig: str) -> None:
    """Make Dolt open `rig` read-only the way it happens in production: the server loads it while
    another process holds its journal lock (.dolt/noms/LOCK), so it falls back to read-only."""
    t.query(f"DROP DATABASE {rig}")
    lock = t.town.data_dir / ".dolt_dropped_databases" / rig / ".dolt" / "noms" / "LOCK"
    fd = os.open(lock, os.O_RDWR | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        t.query(f"CALL dolt_undrop('{rig}')")
    finally:
        os.close(fd)


def test_a_rig_dolt_opened_read_only_is_reported_and_recover_reopens_it(rigged_town: TownFixture) -> None:
    t = rigged_town
    t.rig("beta")
    server.start(t.town, t.settings)
    t.query("CREATE TABLE beads (id INT PRIMARY KEY)", "beta")
    t.query("INSERT INTO beads VALUES (1)", "beta")
    _undrop_while_locked(t, "beta")
    with pytest.raises(pymysql.err.OperationalError, match=READ_ONLY):
        t.query("INSERT INTO beads VALUES (2)", "beta")  # Dolt's own read-only mode, not a setting
    seen = _status(t)
    assert seen["wedge"]["kind"] == "read-only" and seen["wedge"]["read_only_rigs"] == ["beta"], seen
    assert not (t.town.data_dir / PROBE_DATABASE).exists()  # status wrote nothing
    done = t.gt_dolt("recover")
    assert_clean(done, 0)
    assert "wedged (read-only)" in done.stdout and "takes writes again" in done.stdout
    assert "dump of pid" not in done.stdout  # it answered: restarted gracefully, not dumped
    t.query("INSERT INTO beads VALUES (2)", "beta")
    assert t.query("SELECT id FROM beads ORDER BY id", "beta") == [(1,), (2,)]
    assert_clean(t.gt_dolt("recover"), 0)
    assert (t.town.data_dir / PROBE_DATABASE).is_dir()  # recover's write probe, and never a rig:
    assert PROBE_DATABASE not in t.gt_dolt("list").stdout and PROBE_DATABASE not in _status(t)["databases"]


def test_watch_restarts_a_read_only_rig_within_two_checks(rigged_town: TownFixture) -> None:
    t = rigged_town
    first = server.start(t.town, t.settings)
    _undrop_while_locked(t, "hq")
    watcher = gt_dolt_popen(t, "watch", "--interval", "1")
    try:
        wait_until(lambda: "restarted it" in _watch_log(t), "the watcher to restart the read-only server")
        assert _new_server_answers(t, first.pid)
        os.killpg(watcher.pid, signal.SIGINT)
        assert watcher.wait(timeout=60) == 0
    finally:
        end(watcher)
    log = t.town.watch_log.read_text()
    assert "wedged (read-only)" in log and "hq" in log and "dump of pid" not in log
    t.query("CREATE TABLE beads (id INT PRIMARY KEY)", "hq")


def test_a_server_read_only_by_setting_stays_wedged_after_recover_and_says_so(rigged_town: TownFixture) -> None:
    """behavior.read_only (a setting, not Dolt's lock fallback): @@read_only says it, and a
    restart cannot cure it, so recover exits 1."""
    t = rigged_town
    configure(t, "dolt:\n  server:\n    behavior:\n      read_only: true\n")
    assert_clean(t.gt_dolt("start"), 0)
    assert _status(t)["wedge"]["kind"] == "read-only"
    done = t.gt_dolt("recover")
    assert_clean(done, 1)
    assert "still wedged after the restart (read-only)" in done.stderr and "@@read_only" in done.stderr


def test_dump_ends_the_server_with_its_stacks_in_the_log_and_starts_it_again(rigged_town: TownFixture) -> None:
    t = rigged_town
    nothing = t.gt_dolt("dump")
    assert_clean(nothing, 3)
    assert "nothing to dump" in nothing.stderr
    first = server.start(t.town, t.settings)
    done = t.gt_dolt("dump")
    assert_clean(done, 0)
    assert "ENDS the server" in done.stdout and f"dump of pid {first.pid}" in done.stdout
    assert "goroutine stacks written" in done.stdout and "dolt sql-server started" in done.stdout
    assert _new_server_answers(t, first.pid)
    second = read_pid_file(t.town).pid
    kept = t.gt_dolt("dump", "--no-start")
    assert_clean(kept, 0)
    assert "the server is stopped (--no-start)" in kept.stdout
    assert not _answers(t) and t.gt_dolt("status").returncode == 3
    assert t.town.log_file.read_text().count("SIGQUIT: quit") == 2 and second != first.pid


def test_recover_on_a_healthy_or_stopped_town(rigged_town: TownFixture) -> None:
    t = rigged_town
    down = t.gt_dolt("recover")
    assert_clean(down, 3)
    assert "gt-dolt start" in down.stderr
    first = server.start(t.town, t.settings)
    fine = t.gt_dolt("recover")
    assert_clean(fine, 0)
    assert "nothing to recover" in fine.stdout and read_pid_file(t.town).pid == first.pid


def test_watch_and_dump_signal_nothing_but_the_towns_server(rigged_town: TownFixture, tmp_path: Path) -> None:
    """A foreign process named by the town's pid file, and the town's own server stopped: only the
    server's pid ever gets a signal (the audit hook records every os.kill)."""
    t = rigged_town
    foreign = sleeper()
    try:
        first = server.start(t.town, t.settings)
        log = tmp_path / "audit.jsonl"
        with frozen(first.pid, end_it=True):
            t.town.pid_file.write_text(f"{foreign.pid}\n")
            done = audited_gt_dolt(t, log, "dump")
            assert_clean(done, 0)
        signalled = {event["pid"] for event in audit_events(log) if event["event"].startswith(("os.kill", "signal"))}
        assert signalled == {first.pid}
        assert foreign.poll() is None
        assert _new_server_answers(t, first.pid)
    finally:
        end(foreign)


def test_a_user_who_may_not_create_the_scratch_database_sees_no_wedge(rigged_town: TownFixture) -> None:
    t = rigged_town
    server.start(t.town, t.settings)
    t.query("CREATE USER 'reader'@'%' IDENTIFIED BY 'pw'")
    t.query("GRANT SELECT ON *.* TO 'reader'@'%'")
    done = t.gt_dolt("recover", GT_DOLT_USER="reader", GT_DOLT_PASSWORD="pw")
    assert_clean(done, 0)
    assert "nothing to recover" in done.stdout and "the write probe could not run" in done.stdout


def test_a_server_without_a_listener_is_named_so_and_recover_replaces_it__FAKE(rigged_town: TownFixture) -> None:
    """A FAKE dolt that lives and never listens: a real Dolt cannot be made to drop its listener."""
    t = rigged_town
    fake = spawn_fake_server("dolt-fake-never-ready", t, t.port)
    try:
        first_line(fake)
        # the run files a start writes, as if it had answered and then lost its listener
        proc = psutil.Process(fake.pid)
        record_running(t.town, t.settings, Running(proc, t.port, "pid file", listening=True), ["hq"])
        seen = _status(t)
        assert seen["pid"] == fake.pid and seen["wedge"]["kind"] == "no listener", seen
        done = t.gt_dolt("recover")
        assert_clean(done, 0)
        assert "wedged (no listener)" in done.stdout and f"dump of pid {fake.pid}: no stacks reached" in done.stdout
        assert fake.wait(timeout=30) == -signal.SIGQUIT
        assert _new_server_answers(t, fake.pid)
    finally:
        end(fake)


def test_doctor_fails_a_stopped_server_with_recover_and_passes_it_once_it_serves_again(
    rigged_town: TownFixture,
) -> None:
    t = rigged_town
    first = server.start(t.town, t.settings)
    healthy = t.gt_dolt("doctor")
    assert f"ok   serving: pid {first.pid} takes logins and answers" in healthy.stdout, healthy.stdout
    with frozen(first.pid, end_it=True):
        done = t.gt_dolt("doctor")
        assert_clean(done, 1)
        assert f"fail serving: pid {first.pid} is wedged (stopped)" in done.stdout, done.stdout
        assert "-- fix: gt-dolt recover" in done.stdout
        assert "warn health: not measured: the server does not serve" in done.stdout
        assert_clean(t.gt_dolt("recover"), 0)
    again = t.gt_dolt("doctor")
    assert "ok   serving: pid" in again.stdout and f"pid {first.pid} " not in again.stdout, again.stdout
