"""Rule 6, everything ends: every client call has a deadline, and a wait on the town lock says who
holds it.

The matrix: a server frozen with SIGSTOP (the port still accepts connections; nothing answers),
times every command that talks to it.  Each must end with one line and its exit code, never a
traceback and never a hang; the test's own timeout on each command is the bound that would fail.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

import faultkit
from conftest import GT_DOLT, TownFixture
from faultkit import alive, assert_clean, wait_until
from gastown_tasks.ops.server import server

pytestmark = pytest.mark.hostile

BOUND = 90  # seconds any one command may take against a frozen server (a hang fails the test)
FROZEN = {
    ("sql", "-q", "SELECT 1"): (1, "does not answer in time"),
    ("status",): (0, "does not answer SQL"),
    ("list",): (0, "does not answer SQL"),
    ("doctor",): (1, "is wedged (stopped)"),  # a server that serves nothing fails doctor
    ("backup",): (1, "does not answer in time"),
    ("init-rig", "fresh"): (1, "does not answer in time"),
    ("restore", "--rig", "hq", "--as", "copy"): (1, "does not answer in time"),
    ("fix-metadata",): (0, ""),
    ("stop", "--timeout", "2"): (0, "killed (SIGKILL)"),  # a stopped process cannot take SIGTERM
}


@pytest.fixture
def frozen(rigged_town: TownFixture) -> Iterator[TownFixture]:
    """A running server of this town, with a backup of hq, then frozen (SIGSTOP); thawed after."""
    t = rigged_town
    started = server.start(t.town, t.settings)
    assert_clean(t.gt_dolt("backup"), 0)
    with faultkit.frozen(started.pid):  # `stop` may end it; it is thawed only if it still lives
        yield t


class TestEverythingEnds:
    @pytest.mark.parametrize("args", list(FROZEN), ids=[" ".join(a) for a in FROZEN])
    def test_a_command_against_a_frozen_server_ends_with_one_message(
        self, frozen: TownFixture, args: tuple[str, ...]
    ) -> None:
        code, said = FROZEN[args]
        done = frozen.gt_dolt(*args, timeout=BOUND)
        assert_clean(done, code)
        assert said in done.stdout + done.stderr
        assert not (frozen.town.data_dir / "copy").exists() and not (frozen.town.data_dir / "fresh").exists()

    def test_a_query_whose_server_freezes_while_it_runs_is_ended(self, rigged_town: TownFixture) -> None:
        t = rigged_town
        started = server.start(t.town, t.settings)
        proc = psutil.Process(started.pid)
        query = subprocess.Popen(
            [*GT_DOLT, "sql", "-q", "SELECT SLEEP(30)"],
            cwd=t.root,
            env=t.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_until(lambda: _client_of(query.pid) is not None, "the Dolt client to run the query")
            proc.suspend()
            _, err = query.communicate(timeout=BOUND)
            assert query.returncode == 1 and "stopped answering" in err and "Traceback" not in err, err
            assert _client_of(query.pid) is None  # the Dolt client was ended with it
        finally:
            proc.resume()
            if query.poll() is None:
                query.kill()

    def test_a_wait_for_the_town_lock_says_who_holds_it(self, rigged_town: TownFixture) -> None:
        t = rigged_town
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(t.town.lock_file)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
            done = t.gt_dolt(
                "init-rig",
                "second",
                INVOKE_DOLT_START_TIMEOUT="0",
                INVOKE_DOLT_STOP_TIMEOUT="0",
                INVOKE_DOLT_DRAIN_TIMEOUT="0",
                timeout=BOUND,
            )
            assert_clean(done, 1)
            assert f"waiting for {t.town.lock_file}: pid {holder.pid} (" in done.stderr  # said while it waits
            assert f"pid {holder.pid} (" in done.stderr.splitlines()[-1] and "held" in done.stderr.splitlines()[-1]
            assert not (t.town.data_dir / "second").exists()
        finally:
            holder.kill()
            holder.wait(timeout=30)

    def test_stop_while_a_watcher_runs_says_the_watcher_will_start_it_again(self, rigged_town: TownFixture) -> None:
        t = rigged_town
        server.start(t.town, t.settings)
        watcher = subprocess.Popen(
            [*GT_DOLT, "watch", "--interval", "600"],
            cwd=t.root,
            env=t.env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert watcher.stdout is not None and "watching" in watcher.stdout.readline()
            done = t.gt_dolt("stop")
            assert_clean(done, 0)
            assert f"gt-dolt watch (pid {watcher.pid}" in done.stdout and "will start the server again" in done.stdout
        finally:
            watcher.terminate()
            watcher.wait(timeout=60)
        assert not alive(watcher.pid)


HOLD = """
import fcntl, sys, time
fd = open(sys.argv[1], "r")
fcntl.flock(fd, fcntl.LOCK_EX)
print("holding", flush=True)
time.sleep(600)
"""


def _client_of(pid: int) -> psutil.Process | None:
    try:
        kids = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return None
    return next((k for k in kids if _is_running(k) and "sql" in k.cmdline()), None)


def _is_running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
