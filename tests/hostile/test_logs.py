"""Logs are bounded and lossless: a bounded tail on any file, a follow from the same open file."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import pytest

from conftest import GT_DOLT, Lines, TownFixture, end
from faultkit import assert_clean
from gastown_tasks.ops.polling import poll_until
from hostile import on_a_terminal

pytestmark = pytest.mark.hostile

BEFORE_THE_TAIL = 60_000  # the most lines written before the follower has shown its tail (below -n 100000)


def test_logs_follow_loses_no_line_written_while_it_starts(rigged_town: TownFixture) -> None:
    """A writer appends numbered lines, bursts of 50 as fast as it can, before, while and after the
    follower starts; every line must come out once, in order.  However slowly the follower starts,
    the writer waits at BEFORE_THE_TAIL lines until the follower's first line is out, so the tail
    can always hold what came before and the last 5,000 lines can only come through the follow."""
    t = rigged_town
    t.town.daemon_dir.mkdir(exist_ok=True)
    t.town.log_file.write_text("")
    t.town.log_file.chmod(0o600)
    stop, tail_shown = threading.Event(), threading.Event()
    written = [0]

    def writer() -> None:
        with open(t.town.log_file, "a", buffering=1) as log:
            while not stop.is_set():
                if written[0] >= BEFORE_THE_TAIL and not tail_shown.is_set():
                    tail_shown.wait(timeout=1)
                    continue
                for _ in range(50):
                    log.write(f"line {written[0]}\n")
                    written[0] += 1
                time.sleep(0.001)

    thread = threading.Thread(target=writer)
    thread.start()
    follower = subprocess.Popen(
        [*GT_DOLT, "logs", "-n", "100000", "-f"], cwd=t.root, env=t.env(), stdout=subprocess.PIPE, text=True
    )
    try:
        lines = Lines(follower.stdout)
        seen = [lines.next(timeout=60).rstrip("\n")]  # the tail has been read
        tail_shown.set()
        more = written[0] + 5_000  # lines that can only come through the follow
        assert poll_until(lambda: written[0] >= more, 60), "the writer stopped writing"
        stop.set()
        thread.join(timeout=60)
        last = f"line {written[0] - 1}"
        while seen[-1] != last:
            seen.append(lines.next(timeout=60).rstrip("\n"))
        assert seen == [f"line {i}" for i in range(written[0])]
    finally:
        stop.set()
        tail_shown.set()
        thread.join(timeout=60)
        follower.send_signal(signal.SIGINT)
        end(follower)


def test_logs_tail_of_256_mib_without_a_newline_is_bounded(rigged_town: TownFixture) -> None:
    t = rigged_town
    t.town.daemon_dir.mkdir(exist_ok=True)
    with open(t.town.log_file, "wb") as log:
        log.truncate(256 * 1024 * 1024)  # 256 MiB of NULs, not one newline (sparse: instant)
    os.chmod(t.town.log_file, 0o600)
    done = subprocess.run([*GT_DOLT, "logs", "-n", "5"], cwd=t.root, env=t.env(), capture_output=True, timeout=60)
    assert done.returncode == 0 and b"Traceback" not in done.stderr
    assert len(done.stdout) < 70 * 1024  # one line, cut at 64 KiB, and a note saying so
    assert b"line cut at 65,536" in done.stdout


def test_logs_on_a_terminal_show_control_characters_instead_of_obeying_them(rigged_town: TownFixture) -> None:
    t = rigged_town
    t.town.daemon_dir.mkdir(exist_ok=True)
    t.town.log_file.write_bytes(b"plain\n\x1b]0;pwned\x07 \x1b[2J cleared\n")
    t.town.log_file.chmod(0o600)
    code, seen = on_a_terminal(t, "logs")
    assert code == 0
    assert b"\x1b" not in seen and b"\\x1b]0;pwned\\x07" in seen and b"\\x1b[2J cleared" in seen


def test_logs_n_out_of_range_is_a_usage_error(rigged_town: TownFixture) -> None:
    done = rigged_town.gt_dolt("logs", "-n", "99999999999")
    assert_clean(done, 2)
