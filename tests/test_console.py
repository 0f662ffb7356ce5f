"""logs and sql as a user runs them, against a real Dolt."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time

from conftest import GT_DOLT, Lines, TownFixture, end
from gastown_tasks.ops.server import server


def test_logs_prints_the_last_n_lines(rigged_town: TownFixture) -> None:
    t = rigged_town
    t.town.daemon_dir.mkdir(parents=True, exist_ok=True)
    t.town.log_file.write_text("".join(f"line {i}\n" for i in range(1, 201)))
    done = t.gt_dolt("logs", "-n", "3")
    assert done.returncode == 0
    assert done.stdout.splitlines() == ["line 198", "line 199", "line 200"]
    assert len(t.gt_dolt("logs").stdout.splitlines()) == 50


def test_logs_of_a_started_server_show_dolt_output(rigged_town: TownFixture) -> None:
    # Dolt says "Server ready" at info; the town's default is gt's warning
    server.start(rigged_town.town, rigged_town.settings.with_overrides(log_level="info"))
    assert "Server ready" in rigged_town.gt_dolt("logs", "-n", "200").stdout


def test_logs_without_a_log_says_so_and_where(town: TownFixture) -> None:
    done = town.gt_dolt("logs")
    assert done.returncode == 0 and "no log yet" in done.stdout and str(town.town.log_file) in done.stdout


def _follower(t: TownFixture) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*GT_DOLT, "logs", "-n", "1", "-f"],
        cwd=t.root,
        env=t.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_logs_follow_sees_appended_truncated_and_rotated_lines_and_ctrl_c_exits_0(
    rigged_town: TownFixture,
) -> None:
    t = rigged_town
    t.town.daemon_dir.mkdir(parents=True, exist_ok=True)
    log = t.town.log_file
    log.write_text("old line\n")
    follower = _follower(t)
    lines = Lines(follower.stdout)
    try:
        assert lines.next() == "old line\n"
        with log.open("a") as handle:
            handle.write("appended after follow started\n")
        assert lines.next() == "appended after follow started\n"
        log.write_text("")  # truncated in place (copytruncate)
        with log.open("a") as handle:
            handle.write("after truncation\n")
        assert lines.next() == "after truncation\n"
        os.rename(log, log.with_suffix(".log.1"))  # rotated: a new file takes the name
        log.write_text("in the new file\n")
        assert lines.next() == "in the new file\n"
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=30) == 0
        assert "Traceback" not in follower.stderr.read()
    finally:
        end(follower)


def test_sql_query_prints_the_result_through_the_running_server(rigged_town: TownFixture) -> None:
    t = rigged_town
    server.start(t.town, t.settings)
    t.query("CREATE TABLE beads (id INT PRIMARY KEY, title VARCHAR(20))", "hq")
    t.query("INSERT INTO beads VALUES (7, 'seven')", "hq")
    done = t.gt_dolt("sql", "--rig", "hq", "-q", "SELECT title FROM beads WHERE id = 7")
    assert done.returncode == 0, done.stderr
    assert "seven" in done.stdout


def test_sql_error_exits_non_zero_with_dolts_message(rigged_town: TownFixture) -> None:
    t = rigged_town
    server.start(t.town, t.settings)
    done = t.gt_dolt("sql", "--rig", "hq", "-q", "SELECT * FROM no_such_table")
    assert done.returncode == 1
    assert "no_such_table" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr


def test_sql_reads_piped_input(rigged_town: TownFixture) -> None:
    t = rigged_town
    server.start(t.town, t.settings)
    done = subprocess.run(
        [*GT_DOLT, "sql"],
        cwd=t.root,
        env=t.env(),
        input="SELECT 40 + 2 AS answer;\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "42" in done.stdout


def test_sql_query_is_one_argument_never_a_shell_string(rigged_town: TownFixture) -> None:
    t = rigged_town
    server.start(t.town, t.settings)
    done = t.gt_dolt("sql", "-q", "SELECT 'a;b $(echo pwned) `x`' AS s")
    assert done.returncode == 0, done.stderr
    assert "a;b $(echo pwned) `x`" in done.stdout


def test_sql_without_a_server_uses_the_embedded_engine_and_says_so(rigged_town: TownFixture) -> None:
    t = rigged_town
    done = t.gt_dolt("sql", "-q", "SELECT DATABASE()")
    assert done.returncode == 0, done.stderr
    assert "sql: rig hq (the default; --rig NAME to choose); the server is not running" in done.stderr
    assert "hq" in done.stdout
    assert not t.servers()


def _read_until(fd: int, token: bytes, seen: bytearray, timeout: float = 60) -> bool:
    """Read the terminal until `token` shows (an event), within a generous bound."""
    deadline = time.monotonic() + timeout
    while token not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return token in seen


def test_sql_on_a_terminal_runs_the_interactive_dolt_shell(
    rigged_town: TownFixture,
) -> None:
    t = rigged_town
    server.start(t.town, t.settings)
    master, slave = pty.openpty()
    shell = subprocess.Popen(
        [*GT_DOLT, "sql", "--rig", "hq"], cwd=t.root, env=t.env(), stdin=slave, stdout=slave, stderr=slave
    )
    os.close(slave)
    seen = bytearray()
    try:
        assert _read_until(master, b"hq", seen), seen  # the prompt names the database
        os.write(master, b"select 6*7 as answer;\n")
        assert _read_until(master, b"42", seen), seen
        os.write(master, b"exit\n")
        assert shell.wait(timeout=60) == 0
    finally:
        os.close(master)
        if shell.poll() is None:
            shell.kill()
            shell.wait()
