"""Processes that are not provably ours, refused credentials, a frozen server, an interrupted stop."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pymysql
import pytest

from conftest import FAKES, TownFixture, first_line, free_port, spawn_fake_server
from faultkit import alive, assert_clean, audit_events, audited_gt_dolt, end, gt_dolt_popen, wait_until
from gastown_tasks.ops.files.runfiles import read_pid_file, read_state
from gastown_tasks.ops.server import server
from gastown_tasks.ops.sql import sqlclient

pytestmark = pytest.mark.hostile

NOBODY = 65534


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A folder another user can read (pytest's own tmp folders are private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="gastown-spoof-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def spoof_as_nobody(t: TownFixture, folder: Path) -> subprocess.Popen[str]:
    """Another user's process named `dolt … sql-server --data-dir <this town's .dolt-data>`, listening nowhere."""
    shutil.copy(FAKES / "fake_dolt.py", folder / "fake_dolt.py")
    wrapper = folder / "dolt-fake-spoof"
    wrapper.write_text(f'#!/bin/bash\nexec -a "$0" /usr/bin/python3 {folder / "fake_dolt.py"} never-ready "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    (folder / "fake_dolt.py").chmod(0o644)
    spoof = subprocess.Popen(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            str(wrapper),
            "sql-server",
            "--data-dir",
            str(t.town.data_dir),
            "--port",
            str(t.port),
        ],
        cwd=t.town.data_dir,  # where a server works: its data dir
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert "pretending to start" in first_line(spoof)
    assert psutil.Process(spoof.pid).uids().effective == NOBODY
    return spoof


needs_root = pytest.mark.needs_root("runs a process as another user (setpriv)")


@needs_root
def test_another_users_process_posing_as_this_towns_server_is_never_adopted_or_signalled(
    rigged_town: TownFixture, world_readable_dir: Path, tmp_path: Path
) -> None:
    t = rigged_town
    spoof = spoof_as_nobody(t, world_readable_dir)
    audit = tmp_path / "audit.jsonl"
    try:
        t.town.daemon_dir.mkdir(exist_ok=True)
        t.town.pid_file.write_text(f"{spoof.pid}\n")  # even named by our own pid file
        status = audited_gt_dolt(t, audit, "status", GT_AUDIT_PROTECT=str(spoof.pid))
        assert_clean(status, 1)
        assert f"pid {spoof.pid} (run by nobody) runs as another user" in status.stdout
        start = audited_gt_dolt(t, audit, "start", GT_AUDIT_PROTECT=str(spoof.pid))
        assert_clean(start, 1)
        assert f"pid {spoof.pid} (run by nobody)" in start.stderr and "neither adopted nor signalled" in start.stderr
        assert read_pid_file(t.town).pid == spoof.pid  # not replaced by an adoption
        stop = audited_gt_dolt(t, audit, "stop", GT_AUDIT_PROTECT=str(spoof.pid))
        assert_clean(stop, 0)
        assert "is not running" in stop.stdout and f"pid {spoof.pid} (run by nobody)" in stop.stdout
        doctor = audited_gt_dolt(t, audit, "doctor", GT_AUDIT_PROTECT=str(spoof.pid))
        assert_clean(doctor, 1)
        assert "fail orphans" in doctor.stdout and f"pid {spoof.pid}" in doctor.stdout
        signals = [e for e in audit_events(audit) if e["event"].startswith("os.kill") and e["pid"] == spoof.pid]
        assert signals == [] and alive(spoof.pid)
        assert not [p for p in t.servers() if p.pid != spoof.pid]
    finally:
        end(spoof)


def test_a_process_of_ours_posing_as_the_server_but_listening_nowhere_is_not_adopted(
    rigged_town: TownFixture, tmp_path: Path
) -> None:
    """Same uid, right name and data dir, but no port and no run file recording its start."""
    t = rigged_town
    fake = spawn_fake_server("dolt-fake-never-ready", t)
    audit = tmp_path / "audit.jsonl"
    try:
        assert "pretending" in first_line(fake)
        start = audited_gt_dolt(t, audit, "start", GT_AUDIT_PROTECT=str(fake.pid))
        assert_clean(start, 1)
        assert "listens on no port and no run file records its start" in start.stderr
        stop = audited_gt_dolt(t, audit, "stop", GT_AUDIT_PROTECT=str(fake.pid))
        assert_clean(stop, 0)
        assert not [e for e in audit_events(audit) if e["event"].startswith("os.kill")] and alive(fake.pid)
    finally:
        end(fake)


def test_a_wrong_password_fails_the_start_at_once_naming_the_setting(rigged_town: TownFixture) -> None:
    t = rigged_town
    done = t.gt_dolt("start", GT_DOLT_PASSWORD="wrong")
    assert_clean(done, 6)
    assert "refused user 'root': access denied" in done.stderr and "GT_DOLT_PASSWORD" in done.stderr
    assert "raise dolt.start_timeout" not in done.stderr  # not mistaken for a slow server
    log = t.town.log_file.read_text(errors="replace")
    assert 1 <= log.count("Error authenticating user root") <= 3, "it retried a refused login"
    assert not t.servers() and not t.town.pid_file.exists()
    assert read_state(t.town).running is False


@pytest.fixture
def passworded(rigged_town: TownFixture) -> Iterator[TownFixture]:
    """A running server whose root needs a password ("s3cret"), which the town's settings lack."""
    t = rigged_town
    server.start(t.town, t.settings)
    t.query("ALTER USER 'root'@'localhost' IDENTIFIED BY 's3cret'")
    yield t
    conn = pymysql.connect(host="127.0.0.1", port=t.port, user="root", password="s3cret", autocommit=True)
    with conn.cursor() as cur:
        cur.execute("ALTER USER 'root'@'localhost' IDENTIFIED BY ''")
    conn.close()


def test_every_sql_command_says_which_user_was_refused_and_where_the_password_comes_from(
    passworded: TownFixture,
) -> None:
    t = passworded
    for command, code in (("status", 6), ("list", 6), ("init-rig", 6), ("doctor", 1), ("start", 6)):
        args = [command, "fresh"] if command == "init-rig" else [command]
        done = t.gt_dolt(*args)
        assert_clean(done, code)
        said = done.stdout + done.stderr
        assert "refused user 'root': access denied" in said and "GT_DOLT_PASSWORD" in said, said
    assert not (t.town.data_dir / "fresh").exists()
    ok = t.gt_dolt("init-rig", "fresh", GT_DOLT_PASSWORD="s3cret")
    assert_clean(ok, 0)
    assert "served now by the running server" in ok.stdout


def test_a_frozen_server_gives_one_message_within_a_bound(rigged_town: TownFixture) -> None:
    """SIGSTOP: the port accepts connections, nothing answers; no command may hang or crash."""
    t = rigged_town
    started = server.start(t.town, t.settings)
    frozen = psutil.Process(started.pid)
    frozen.suspend()
    try:
        init = t.gt_dolt("init-rig", "fresh", timeout=90)
        assert_clean(init, 1)
        assert "does not answer in time" in init.stderr
        status = t.gt_dolt("status", timeout=90)
        assert_clean(status, 0)
        assert "does not answer SQL" in status.stdout
    finally:
        frozen.resume()


def test_an_interrupted_stop_leaves_files_that_match_what_runs(rigged_town: TownFixture, tmp_path: Path) -> None:
    """Ctrl-C while stop waits for a server that ignores SIGTERM (a FAKE): it still runs, the files say so."""
    t = rigged_town
    fake = spawn_fake_server("dolt-fake-ignores-sigterm", t, port=t.port)
    audit = tmp_path / "audit.jsonl"
    try:
        assert "listening" in first_line(fake)
        recorded = t.gt_dolt("doctor", "--fix")  # records it: the files say it runs
        assert_clean(recorded, 1)  # and doctor fails it: it answers no login (serving)
        assert "fixed: recorded the running server" in recorded.stdout and "fail serving:" in recorded.stdout
        assert read_pid_file(t.town).pid == fake.pid and read_state(t.town).claims(fake.pid)
        stopping = gt_dolt_popen(t, "stop", "--timeout", "60", audit=audit)
        wait_until(lambda: any(e["event"] == "os.kill" for e in audit_events(audit)), "stop to send SIGTERM")
        os.killpg(stopping.pid, signal.SIGINT)
        _, err = stopping.communicate(timeout=60)
        assert stopping.returncode == 130 and "interrupted" in err and "Traceback" not in err
        assert alive(fake.pid)
        assert read_pid_file(t.town).pid == fake.pid and read_state(t.town).claims(fake.pid)
        status = t.gt_dolt("status")
        assert_clean(status, 0)
        assert f"pid {fake.pid}" in status.stdout
    finally:
        end(fake)


@pytest.mark.parametrize(
    "level", ["info", "warning"]
)  # Dolt says it listens at info; at warning, its sockets are asked
def test_a_listener_that_takes_the_port_while_dolt_starts_is_never_sent_the_login(
    rigged_town: TownFixture, tmp_path: Path, level: str
) -> None:
    """Another user can bind the port between the preflight and Dolt's own bind and ask for the
    password in clear text; start proves the listener is the server it launched before it logs in."""
    t = rigged_town
    capture = tmp_path / "captured"
    done = t.gt_dolt(
        "start",
        "--timeout",
        "20",
        INVOKE_DOLT_BINARY=str(FAKES / "dolt-fake-port-thief"),
        GT_DOLT_PASSWORD="s3cret",
        GT_DOLT_LOGLEVEL=level,
        FAKE_MYSQL_CAPTURE=str(capture),
    )
    thief_pid = Path(f"{capture}.pid")
    try:
        assert_clean(done, 1)
        thief = int(thief_pid.read_text())
        assert f"port {t.port} is in use by pid {thief}" in done.stderr and "fake_mysql.py" in done.stderr
        assert not capture.exists()  # nothing ever logged in to it, so it was sent nothing at all
        assert t.servers() == [] and not read_state(t.town).running
    finally:
        end_thief(thief_pid, capture)


def end_thief(pid_file: Path, capture: Path) -> None:
    """Kill the fake MySQL server the FAKE port thief started for this test: by the pid it recorded,
    once its command line proves it is this test's (it names this test's capture file)."""
    with contextlib.suppress(FileNotFoundError, ValueError, psutil.NoSuchProcess):
        thief = psutil.Process(int(pid_file.read_text()))
        if str(capture) in thief.cmdline():
            thief.kill()
            wait_until(lambda: not alive(thief.pid), f"the port thief (pid {thief.pid}) to die", timeout=30)


def test_a_server_asking_for_the_password_in_clear_text_is_not_sent_it(
    rigged_town: TownFixture, tmp_path: Path
) -> None:
    capture = tmp_path / "captured"
    port = free_port()
    fake = subprocess.Popen(
        [sys.executable, str(FAKES / "fake_mysql.py"), str(port), str(capture)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert first_line(fake).strip() == "listening"
        settings = rigged_town.settings.with_overrides(port=port, password="s3cret")
        with pytest.raises(pymysql.err.OperationalError, match="clear text"):
            sqlclient.connect(settings)
        assert b"s3cret" not in capture.read_bytes()
    finally:
        end(fake)
