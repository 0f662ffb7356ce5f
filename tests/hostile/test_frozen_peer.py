"""A cluster peer frozen with SIGSTOP: alive, its port still accepting connections in the kernel's
backlog, never answering.  Every cluster command run beside it ends (each call has a deadline) with
one clear line and its exit code, never a traceback; failover never promotes past it without
--force; a watcher's loop keeps turning.  Real Dolt pairs (tests/test_cluster.py's helpers); each
test freezes and continues only a server it started, by pid; a hang fails at the run's timeout."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path

import psutil
import pytest
from test_cluster import FENCED, Node, configure, refuses_writes, rows, started_pair

from conftest import Lines
from faultkit import assert_clean, end, frozen, kill_9, wait_until
from gastown_tasks.ops.files.runfiles import read_pid_file

pytestmark = pytest.mark.hostile

BOUND = 120  # seconds any one command may take beside a frozen peer: past it, the run is a hang


def frozen_node(node: Node) -> contextlib.AbstractContextManager[psutil.Process]:
    """The server this test started for `node`, frozen (faultkit.frozen), thawed afterwards."""
    pid = read_pid_file(node.t.town).pid
    assert pid is not None
    return frozen(pid)


def line_with(lines: Lines, text: str) -> str:
    """The child's next line that holds `text`, each line within BOUND (a stuck child fails)."""
    while text not in (line := lines.next(timeout=BOUND)):
        pass
    return line


def one_line(text: str, start: str) -> str:
    """The one output line that starts with `start` (it must be there)."""
    found = [line for line in text.splitlines() if line.startswith(start)]
    assert len(found) == 1, text
    return found[0]


def test_beside_a_frozen_standby_the_primarys_cluster_commands_end_and_a_fenced_restart_stays_read_only(
    tmp_path: Path, dolt_binary: Path
) -> None:
    with started_pair(tmp_path, fence=2) as (a, b), frozen_node(b):
        a.query("INSERT INTO beads VALUES (1)")  # the frozen standby lacks it
        said = a.gt("cluster-status", timeout=BOUND)
        assert_clean(said, 0)
        assert said.stdout.startswith("role primary at epoch 2, takes writes")
        status = a.gt("status", timeout=BOUND)
        assert_clean(status, 0)
        assert "cluster:    primary at epoch 2, takes writes" in status.stdout
        doctor = a.gt("doctor", timeout=BOUND)  # a standby down is a warning, as a stopped one is
        assert_clean(doctor, 0)
        peer = one_line(doctor.stdout, "warn cluster b:")
        assert f"127.0.0.1:{b.t.port} does not answer in time" in peer and "frozen" in peer, peer
        assert "answers but" not in peer and "-- fix: gt-dolt doctor on its host" in peer, peer
        demote = a.gt("demote", timeout=BOUND)
        assert_clean(demote, 1)
        assert "this server is still the primary (nothing was lost)" in demote.stderr, demote.stderr
        assert a.role() == ("primary", 2)
        assert_clean(a.gt("stop", timeout=BOUND), 0)
        fenced = a.gt("start", timeout=BOUND)
        assert_clean(fenced, FENCED)
        assert f"peer b (127.0.0.1:{b.t.port}) does not answer in time" in fenced.stderr, fenced.stderr
        assert "answers but" not in fenced.stderr
        assert "gt-dolt failover --force" in fenced.stderr and len(fenced.stderr.strip().splitlines()) == 1
        assert "start it (a frozen one: gt-dolt recover on its host), then" in fenced.stderr, fenced.stderr
        assert a.role() == ("standby", 2) and refuses_writes(a)
        refused = a.gt("failover", timeout=BOUND)
        assert_clean(refused, 1)
        assert "cannot know that this standby has every write" in refused.stderr and "--force" in refused.stderr
        assert a.role() == ("standby", 2) and a.status()["fenced"] is True
        # take_writes_alone goes past silent peers only: a frozen one may be alive, and the primary
        configure(a, "primary", b, fence=2, take_writes_alone=True)
        still = a.gt("restart", timeout=BOUND)
        assert_clean(still, FENCED)
        assert "take_writes_alone" not in still.stdout
        assert f"peer b (127.0.0.1:{b.t.port}) does not answer in time" in still.stderr
        assert a.role() == ("standby", 2) and refuses_writes(a)


def test_beside_a_frozen_primary_the_standby_refuses_failover_and_takes_over_only_with_force(
    tmp_path: Path, dolt_binary: Path
) -> None:
    with started_pair(tmp_path, fence=2) as (a, b):
        a.query("INSERT INTO beads VALUES (1)")
        wait_until(lambda: b.answers("SELECT id FROM beads") == [(1,)], "row 1 on b")
        with frozen_node(a):
            said = b.gt("cluster-status", timeout=BOUND)
            assert_clean(said, 0)
            assert said.stdout.startswith("role standby at epoch 2, read-only")
            assert_clean(b.gt("status", timeout=BOUND), 0)
            doctor = b.gt("doctor", timeout=BOUND)
            assert_clean(doctor, 1)
            own = one_line(doctor.stdout, "fail cluster:")
            assert "no primary answers" in own and "gt-dolt failover" in own, own
            peer = one_line(doctor.stdout, "warn cluster a:")
            assert f"127.0.0.1:{a.t.port} does not answer in time" in peer and "answers but" not in peer, peer
            assert_clean(b.gt("stop", timeout=BOUND), 0)
            restarted = b.gt("start", timeout=BOUND)
            assert_clean(restarted, 0)
            assert "cluster: a standby at epoch 2, read-only" in restarted.stdout
            refused = b.gt("failover", timeout=BOUND)
            assert_clean(refused, 1)
            assert f"peer a (127.0.0.1:{a.t.port}) does not answer" in refused.stdout, refused.stdout
            assert "cannot know that this standby has every write" in refused.stderr
            assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
            assert b.role() == ("standby", 2)
            forced = b.gt("failover", "--force", timeout=BOUND)
            assert_clean(forced, 0)
            assert "--force: this failover may lose whatever a had not replicated" in forced.stdout
            assert "this server is now the primary at epoch 3" in forced.stdout
            b.query("INSERT INTO beads VALUES (2)")
        # thawed, the old primary meets the higher epoch and follows: one primary, b's history kept
        b.query("INSERT INTO beads VALUES (3)")
        wait_until(lambda: a.answers("SELECT @@GLOBAL.dolt_cluster_role", None) == [("standby",)], "a to follow b")
        wait_until(lambda: a.answers("SELECT id FROM beads ORDER BY id") == [(1,), (2,), (3,)], "a to catch up")
        assert a.role() == ("standby", 3) and b.role() == ("primary", 3) and rows(b) == [1, 2, 3]


def test_a_watcher_beside_a_frozen_peer_keeps_checking_and_finishes_the_fence_once_it_thaws(
    tmp_path: Path, dolt_binary: Path
) -> None:
    with started_pair(tmp_path, fence=2) as (a, b):
        with frozen_node(b):
            assert_clean(a.gt("stop", timeout=BOUND), 0)
            assert_clean(a.gt("start", timeout=BOUND), FENCED)
            watcher = a.gt_popen("watch", "--interval", "0.2")
            try:
                lines = Lines(watcher.stdout)
                assert "watching" in lines.next(timeout=60)
                old = read_pid_file(a.t.town).pid
                kill_9(old or 0)  # only a loop still turning restarts it while b stays frozen
                line_with(lines, "the server is not running; restarted it")
                assert read_pid_file(a.t.town).pid not in (None, old)
                assert a.role() == ("standby", 2) and refuses_writes(a)
            except BaseException:
                end(watcher)
                raise
        try:
            # b thawed: a later check proves the fence and promotes
            line_with(lines, "fencing: every peer is a standby at this epoch or below; taking the primary role")
            wait_until(lambda: a.answers("SELECT @@GLOBAL.dolt_cluster_role", None) == [("primary",)], "a promoted")
            watcher.send_signal(signal.SIGINT)
            assert watcher.wait(timeout=60) == 0
        finally:
            end(watcher)
