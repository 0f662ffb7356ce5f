"""Running the server as production Dolt is run: managed config, drain, health, rotation, watch,
backups — against a real Dolt."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pymysql
import pytest

from conftest import FAKES, Lines, TownFixture, free_port
from faultkit import assert_clean, end, gt_dolt_popen, kill_9, wait_until
from gastown_tasks.ops.files.runfiles import read_pid_file
from gastown_tasks.ops.polling import poll_until
from gastown_tasks.ops.server import health, server
from gastown_tasks.ops.server.watch import Policy, supervise

TOWN_TASKS = "from invoke import Collection\nimport gastown_tasks\nns = Collection()\ngastown_tasks.add_dolt(ns)\n"


def configure(t: TownFixture, yaml: str) -> None:
    (t.root / "tasks.py").write_text(TOWN_TASKS)
    (t.root / "invoke.yaml").write_text(yaml)


def variables(t: TownFixture) -> dict[str, object]:
    names = ("max_connections", "net_read_timeout", "net_write_timeout", "dolt_transaction_commit", "wait_timeout")
    row = t.query("SELECT " + ", ".join(f"@@GLOBAL.{name}" for name in names))[0]
    return {name: int(value) for name, value in zip(names, row, strict=True)}


def test_the_managed_config_sets_a_towns_defaults_and_dolt_reads_them_back(rigged_town: TownFixture) -> None:
    t = rigged_town
    assert_clean(t.gt_dolt("start"), 0)
    assert variables(t) == {
        "max_connections": 1000,
        "net_read_timeout": 30,  # dolt.wait_timeout: the listener's read timeout closes idle connections
        "net_write_timeout": 300,
        "dolt_transaction_commit": 0,
        "wait_timeout": 28800,  # Dolt's, never written: the pinned Dolt does not enforce it
    }
    assert f"--config {t.town.config_file}" in " ".join(psutil.Process(read_pid_file(t.town).pid).cmdline())
    assert t.town.config_file.stat().st_mode & 0o777 == 0o600


def test_overrides_under_dolt_server_reach_the_server(rigged_town: TownFixture) -> None:
    t = rigged_town
    configure(
        t,
        "dolt:\n  wait_timeout: 0\n  server:\n    listener:\n      max_connections: 50\n"
        "      read_timeout_millis: 60000\n    behavior:\n      dolt_transaction_commit: true\n",
    )
    assert_clean(t.gt_dolt("start"), 0)
    assert variables(t) == {
        "max_connections": 50,
        "net_read_timeout": 60,
        "net_write_timeout": 300,
        "dolt_transaction_commit": 1,
        "wait_timeout": 28800,
    }


def test_an_override_of_a_key_we_own_is_refused_naming_it(rigged_town: TownFixture) -> None:
    t = rigged_town
    configure(t, "dolt:\n  server:\n    listener:\n      port: 1\n")
    done = t.gt_dolt("start")
    assert_clean(done, 2)
    assert "dolt.server.listener.port cannot be overridden" in done.stderr and not t.servers()


def test_stop_waits_for_an_open_transaction_and_its_rows_survive(rigged_town: TownFixture) -> None:
    t = rigged_town
    server.start(t.town, t.settings)
    t.query("CREATE TABLE beads (id INT PRIMARY KEY)", "hq")
    client = t.connect("hq")
    client.autocommit(False)
    with client.cursor() as cur:
        cur.execute("INSERT INTO beads VALUES (1), (2), (3)")
    stopping = gt_dolt_popen(t, "stop")
    try:
        waiting = Lines(stopping.stdout).next(timeout=60)
        assert "waiting for 1 client(s) to finish" in waiting
        client.commit()  # the transaction ends after the stop began
        client.close()
        assert stopping.wait(timeout=120) == 0
    finally:
        end(stopping)
    server.start(t.town, t.settings)
    assert t.query("SELECT id FROM beads ORDER BY id", "hq") == [(1,), (2,), (3,)]


def test_a_client_that_never_leaves_delays_stop_at_most_the_drain_timeout(rigged_town: TownFixture) -> None:
    t = rigged_town
    server.start(t.town, t.settings)
    busy = threading.Thread(target=lambda: _ignore(lambda: t.query("SELECT SLEEP(120)")), daemon=True)
    busy.start()
    wait_until(lambda: any("SLEEP" in str(row) for row in t.query("SHOW FULL PROCESSLIST")), "the query to run")
    done = t.gt_dolt("stop", INVOKE_DOLT_DRAIN_TIMEOUT="1", timeout=120)
    assert_clean(done, 0)
    assert "stopped with 1 client(s) still busy after 1s" in done.stdout and "SLEEP(120)" in done.stdout
    assert not t.servers()


def test_stop_force_does_not_wait(rigged_town: TownFixture) -> None:
    t = rigged_town
    server.start(t.town, t.settings)
    client = t.connect()
    with client.cursor() as cur:
        cur.execute("SELECT 1")
    done = t.gt_dolt("stop", "--force")
    assert_clean(done, 0)
    assert "waiting for" not in done.stdout and not t.servers()


def _ignore(call: object) -> None:
    with contextlib.suppress(pymysql.err.MySQLError):
        call()  # type: ignore[operator]


def test_status_reports_health_and_never_writes_into_a_rig(rigged_town: TownFixture) -> None:
    t = rigged_town
    server.start(t.town, t.settings)
    before = t.query("SELECT COUNT(*) FROM dolt_log", "hq")
    done = t.gt_dolt("status", "--json")
    assert_clean(done, 0)
    data = json.loads(done.stdout)["health"]
    assert data["latency_ms"] >= 0 and data["connections"]["max"] == 1000 and data["connections"]["used"] >= 1
    assert data["read_only"] is False and data["disk_free_bytes"] > 0 and data["disk_bytes"] is None
    assert data["newest_commit_age_seconds"]["hq"] >= 0 and data["metrics_url"] is None
    text = t.gt_dolt("status").stdout
    assert "health:" in text and "connections" in text and "disk:" in text
    assert t.query("SELECT COUNT(*) FROM dolt_log", "hq") == before
    assert t.query("SHOW TABLES", "hq") == []


def test_doctor_warns_on_read_only_and_on_connections_near_the_limit(rigged_town: TownFixture) -> None:
    t = rigged_town
    configure(t, "dolt:\n  server:\n    behavior:\n      read_only: true\n    listener:\n      max_connections: 4\n")
    assert_clean(t.gt_dolt("start"), 0)
    held = [t.connect() for _ in range(3)]
    try:
        done = t.gt_dolt("doctor")
        line = next(line for line in done.stdout.splitlines() if " health:" in line)
        assert line.startswith("warn") and "read-only" in line and "connections in use" in line
        serving = next(line for line in done.stdout.splitlines() if " serving:" in line)
        assert serving.startswith("warn serving:") and "wedged (read-only)" in serving, serving
    finally:
        for conn in held:
            conn.close()


def test_the_disk_growth_rule() -> None:
    base = {"latency_ms": 1.0, "connections": {"used": 1, "max": 1000}, "read_only": False}
    grown = {**base, "disk_bytes": {"hq": 500 * 1024 * 1024}}
    assert health.warnings(grown, 100 * 1024 * 1024)[0][0].startswith("the rigs grew")
    assert health.warnings(grown, 400 * 1024 * 1024) == []
    assert health.warnings({**base, "disk_bytes": {"hq": 10}}, 1) == []  # tiny rigs are not growth


def test_a_nearly_full_disk_is_a_warning_and_status_never_walks_the_rigs() -> None:
    base = {"latency_ms": 1.0, "connections": {"used": 1, "max": 1000}, "read_only": False, "disk_bytes": None}
    assert health.warnings({**base, "disk_free_bytes": 500 * 1024 * 1024}, None)[0][0].startswith("only 500.0 MiB")
    assert health.warnings({**base, "disk_free_bytes": 50 * 1024**3}, None) == []
    lines = health.health_lines({**base, "disk_free_bytes": 50 * 1024**3, "newest_commit_age_seconds": {}})
    assert lines[-1] == "  disk:       50.0 GiB free"


def test_metrics_port_turns_on_dolts_prometheus_endpoint_and_status_names_it(rigged_town: TownFixture) -> None:
    t = rigged_town
    port = free_port()
    configure(t, f"dolt:\n  metrics_port: {port}\n")
    server.start(t.town, t.settings.with_overrides(metrics_port=port))
    url = json.loads(t.gt_dolt("status", "--json").stdout)["health"]["metrics_url"]
    assert url == f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=30) as answer:  # raises on anything but 2xx
        body = answer.read()
    assert b"\ndss_connects " in body and b"\ndss_concurrent_connections " in body  # Dolt's own server metrics


def test_a_log_over_its_limit_is_rotated_at_start_and_the_server_keeps_writing(rigged_town: TownFixture) -> None:
    t = rigged_town
    t.town.log_file.write_text("old line\n" * 200)
    t.town.log_file.chmod(0o600)
    done = t.gt_dolt("start", INVOKE_DOLT_LOG_MAX_MB="0.001", GT_DOLT_LOGLEVEL="info")  # "Server ready" is info
    assert_clean(done, 0)
    assert "rotated the log" in done.stdout
    rotated = t.town.log_file.with_name("dolt.log.1.gz")
    assert gzip.decompress(rotated.read_bytes()).count(b"old line") == 200
    assert "old line" not in t.town.log_file.read_text() and "Server ready" in t.town.log_file.read_text()
    for _ in range(4):
        assert_clean(t.gt_dolt("logs", "--rotate", INVOKE_DOLT_LOG_KEEP="2"), 0)
        t.query("SELECT 1")
    kept = sorted(p.name for p in t.town.daemon_dir.glob("dolt.log.*.gz"))
    assert kept == ["dolt.log.1.gz", "dolt.log.2.gz"]
    wait_until(lambda: _tries_to_log(t), "the running server to write into the truncated log")


def _tries_to_log(t: TownFixture) -> bool:
    with contextlib.suppress(pymysql.err.MySQLError):
        t.query("SELECT no_such_column")
    return "no_such_column" in t.town.log_file.read_text()


def test_watch_brings_a_killed_server_back_with_its_rows(rigged_town: TownFixture) -> None:
    t = rigged_town
    first = server.start(t.town, t.settings)
    t.query("CREATE TABLE beads (id INT PRIMARY KEY)", "hq")
    t.query("INSERT INTO beads VALUES (7)", "hq")
    watcher = gt_dolt_popen(t, "watch", "--interval", "0.5")
    try:
        assert "watching" in Lines(watcher.stdout).next(timeout=60)
        kill_9(first.pid)
        wait_until(lambda: (read_pid_file(t.town).pid or first.pid) != first.pid and _answers(t), "a new server")
        assert t.query("SELECT id FROM beads", "hq") == [(7,)]
        second = t.gt_dolt("watch", "--once")
        assert_clean(second, 1)
        assert "another gt-dolt watch is already watching this town" in second.stderr
        os.killpg(watcher.pid, signal.SIGINT)
        assert watcher.wait(timeout=60) == 0
    finally:
        end(watcher)
    assert t.servers() and "restarted it" in t.town.watch_log.read_text()
    assert "watch ended (Ctrl-C)" in t.town.watch_log.read_text()


def _answers(t: TownFixture) -> bool:
    try:
        return t.query("SELECT 1") == [(1,)]
    except pymysql.err.MySQLError:
        return False


def test_watch_once_starts_a_stopped_server_and_exits_with_the_status(rigged_town: TownFixture) -> None:
    t = rigged_town
    done = t.gt_dolt("watch", "--once")
    assert_clean(done, 0)
    assert "the server is not running; restarted it" in done.stdout and _answers(t)


def test_watch_gives_up_on_a_server_that_keeps_dying(rigged_town: TownFixture) -> None:
    """A FAKE dolt that dies at every start; the policy is shortened so the test takes seconds."""
    t = rigged_town
    settings = t.settings.with_overrides(binary=str(FAKES / "dolt-fake-dies-at-start"))
    said: list[str] = []
    code = supervise(
        t.town,
        settings,
        0.05,
        echo=said.append,
        policy=Policy(backoff=0.01, max_backoff=0.02, max_restarts=3, window=600),
    )
    assert code == 1
    assert sum("failed" in line for line in said) == 3 and "giving up: 3 restarts" in said[-1]
    assert "giving up" in t.town.watch_log.read_text()


def _rows(t: TownFixture, rig: str) -> list[tuple]:
    return list(t.query("SELECT id FROM beads ORDER BY id", rig))


@pytest.mark.parametrize("running", [True, False], ids=["through-the-server", "through-the-cli"])
def test_backup_then_restore_brings_every_row_back(rigged_town: TownFixture, running: bool) -> None:
    t = rigged_town
    server.start(t.town, t.settings)
    t.query("CREATE TABLE beads (id INT PRIMARY KEY)", "hq")
    t.query("INSERT INTO beads VALUES " + ", ".join(f"({i})" for i in range(1, 101)), "hq")
    if not running:
        server.stop(t.town, t.settings)
    backed = t.gt_dolt("backup")
    assert_clean(backed, 0)
    assert "backed up rig hq to file://" in backed.stdout and (t.town.backup_dir / "hq").is_dir()
    if running:
        t.query("DROP DATABASE hq")
    else:
        import shutil

        shutil.rmtree(t.town.rig_dir("hq"))
    restored = t.gt_dolt("restore", "--rig", "hq")
    assert_clean(restored, 0)
    if not running:
        server.start(t.town, t.settings)
    assert _rows(t, "hq") == [(i,) for i in range(1, 101)]
    refused = t.gt_dolt("restore", "--rig", "hq")
    assert_clean(refused, 1)
    assert "already exists" in refused.stderr


def test_a_backup_while_writers_write_restores_a_consistent_prefix(rigged_town: TownFixture) -> None:
    t = rigged_town
    server.start(t.town, t.settings)
    t.query("CREATE TABLE beads (id INT PRIMARY KEY)", "hq")
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        conn = t.connect("hq")
        while not stop.is_set() and written[0] < 5000:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO beads VALUES (%s)", (written[0] + 1,))
            written[0] += 1
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        wait_until(lambda: written[0] >= 50, "the writer to write")
        assert_clean(t.gt_dolt("backup"), 0)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert_clean(t.gt_dolt("restore", "--rig", "hq", "--as", "copy"), 0)
    copied = [row[0] for row in _rows(t, "copy")]
    assert copied == list(range(1, len(copied) + 1)) and 50 <= len(copied) <= written[0]


def test_a_backup_killed_midway_leaves_the_previous_one_restorable(rigged_town: TownFixture) -> None:
    t = rigged_town
    server.start(t.town, t.settings)
    t.query("CREATE TABLE beads (id INT PRIMARY KEY, pad TEXT)", "hq")
    t.query("INSERT INTO beads VALUES (1, 'first backup')", "hq")
    assert_clean(t.gt_dolt("backup"), 0)
    for low in range(2, 60002, 9000):  # Dolt caps a recursive CTE at 10,000 rows
        high = min(low + 8999, 60001)
        t.query(
            f"INSERT INTO beads WITH RECURSIVE n(i) AS (SELECT {low} UNION ALL SELECT i + 1 FROM n "
            f"WHERE i < {high}) SELECT i, REPEAT(MD5(i), 20) FROM n",
            "hq",
        )
    server.stop(t.town, t.settings)  # through the CLI: a Dolt process of its own to kill
    backup = t.town.backup_dir / "hq"
    manifest, size = (backup / "manifest").read_bytes(), folder_bytes(backup)
    job = gt_dolt_popen(t, "backup")
    try:

        def backup_child() -> psutil.Process | None:
            with contextlib.suppress(psutil.NoSuchProcess):
                kids = psutil.Process(job.pid).children(recursive=True)
                return next((k for k in kids if "dolt_backup" in " ".join(k.cmdline())), None)
            return None

        child = poll_until(backup_child, 60)
        assert child is not None, "no Dolt doing the backup"
        # Killed once it has written part of the new backup, before it writes the manifest (its last step)
        wrote = poll_until(lambda: folder_bytes(backup) > size, 120, max_delay=0.001)
        child.suspend()
        assert wrote, "the backup never wrote"
        assert (backup / "manifest").read_bytes() == manifest, "the backup finished before it could be killed"
        child.kill()
        _, err = job.communicate(timeout=120)
    finally:
        end(job)
    assert job.returncode == 1 and "Traceback" not in err, err
    assert "backing up rig hq" in err and "(the previous backup is untouched) failed" in err
    server.start(t.town, t.settings)
    assert_clean(t.gt_dolt("restore", "--rig", "hq", "--as", "earlier"), 0)
    assert t.query("SELECT id, pad FROM beads", "earlier") == [(1, "first backup")]  # the previous backup, whole


def folder_bytes(folder: Path) -> int:
    """Bytes in the files under folder; a file renamed away while counted counts 0."""
    total = 0
    for current, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(current, name)).st_size
    return total


def test_status_and_doctor_warn_when_the_last_backup_is_too_old(rigged_town: TownFixture) -> None:
    t = rigged_town

    def status(**env: str) -> str:
        done = t.gt_dolt("status", **env)
        assert_clean(done, 3)  # stopped: the warning never changes the exit code
        return done.stdout

    fresh = status()
    assert "databases (on disk): hq" in fresh and "no backup" not in fresh  # made today: not overdue yet
    two_days_ago = time.time() - 2 * 86400
    os.utime(t.town.data_dir / "hq", (two_days_ago, two_days_ago))
    assert "no backup in the last 24h of: hq" in status()
    assert_clean(t.gt_dolt("backup"), 0)
    assert "no backup" not in status()
    record = t.town.daemon_dir / "dolt-backups.json"
    data = json.loads(record.read_text())
    data["hq"]["at"] = "2020-01-01T00:00:00+00:00"
    record.write_text(json.dumps(data))
    doctor = t.gt_dolt("doctor")
    assert_clean(doctor, 0)  # a warning, not a failure
    line = next(line for line in doctor.stdout.splitlines() if " backups:" in line)
    assert line.startswith("warn") and "hq" in line and "gt-dolt backup" in line
    assert "no backup" not in status(INVOKE_DOLT_BACKUP_MAX_AGE_HOURS="0")


def test_a_restore_from_a_missing_backup_leaves_no_ghost_rig(rigged_town: TownFixture, tmp_path: Path) -> None:
    t = rigged_town
    for running in (False, True):
        if running:
            server.start(t.town, t.settings)
        done = t.gt_dolt("restore", "--rig", "hq", "--as", "ghost", "--from", (tmp_path / "nothing").as_uri())
        assert_clean(done, 1)
        assert not t.town.rig_dir("ghost").exists()
        if running:
            assert ("ghost",) not in t.query("SHOW DATABASES")
