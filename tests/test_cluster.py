"""Dolt's own cluster replication, driven by gt-dolt: two or three towns on loopback, each with its
own SQL and remotesapi ports, real Dolt servers.  Fencing (ops/cluster/fencing.py): a server that was the
primary takes writes again only once every peer has answered with no higher epoch."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pymysql
import pytest

from conftest import FAKES, GT_DOLT, TownFixture, cleanup_town, first_line, free_port, make_town
from faultkit import assert_clean, end, kill_9, wait_until
from gastown_tasks.ops.build.binary import dolt_env
from gastown_tasks.ops.files.runfiles import read_pid_file

TOWN_TASKS = "from invoke import Collection\nimport gastown_tasks\nns = Collection()\ngastown_tasks.add_dolt(ns)\n"
FENCED, BROKEN = 7, 8  # start's exit codes: running read-only (fenced), running detected_broken_config


@dataclass
class Node:
    t: TownFixture
    name: str
    remotesapi: int
    peers: list[Node] = field(default_factory=list)

    def command(self, *args: str) -> tuple[list[str], dict[str, str]]:
        env = self.t.env()
        env.pop("GT_DOLT_PORT")  # each town's invoke.yaml names its ports
        return [*GT_DOLT, *args], env

    def gt(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv, env = self.command(*args)
        return subprocess.run(
            argv, cwd=self.t.root, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )

    def gt_popen(self, *args: str) -> subprocess.Popen[str]:
        argv, env = self.command(*args)
        return subprocess.Popen(
            argv,
            cwd=self.t.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )

    def query(self, sql: str, database: str | None = "hq") -> list[tuple]:
        return self.t.query(sql, database)

    def answers(self, sql: str, database: str | None = "hq") -> list[tuple] | None:
        try:
            return self.query(sql, database)
        except pymysql.err.MySQLError:
            return None

    def role(self) -> tuple[str, int]:
        role, epoch = self.query("SELECT @@GLOBAL.dolt_cluster_role, @@GLOBAL.dolt_cluster_role_epoch", None)[0]
        return role, int(epoch)

    def status(self) -> dict:
        done = self.gt("status", "--json")
        assert_clean(done, 0)
        return json.loads(done.stdout)["cluster"]

    def kill(self) -> None:
        kill_9(read_pid_file(self.t.town).pid or 0)


def configure(node: Node, role: str, *peers: Node, ack: int = 0, fence: float = 30, **extra: object) -> None:
    node.peers = list(peers)
    node.t.root.joinpath("tasks.py").write_text(TOWN_TASKS)
    more = "".join(f"    {key}: {json.dumps(value)}\n" for key, value in extra.items())
    entries = "".join(
        f"      - {{name: {p.name}, host: 127.0.0.1, remotesapi_port: {p.remotesapi}, sql_port: {p.t.port}}}\n"
        for p in peers
    )
    node.t.root.joinpath("invoke.yaml").write_text(
        f"dolt:\n  port: {node.t.port}\n  backup_max_age_hours: 0\n  cluster:\n    role: {role}\n    epoch: 1\n"
        f"    remotesapi_port: {node.remotesapi}\n    ack_writes_timeout: {ack}\n    fence_timeout: {fence}\n"
        f"{more}    standbys:\n{entries}"
    )


def pair(tmp_path: Path, ack: int = 0, fence: float = 30) -> tuple[Node, Node]:
    a = Node(make_town(tmp_path / "a"), "a", free_port())
    b = Node(make_town(tmp_path / "b"), "b", free_port())
    configure(a, "primary", b, ack=ack, fence=fence)
    configure(b, "standby", a, ack=ack, fence=fence)
    a.t.rig("hq")
    return a, b


def start_pair(a: Node, b: Node) -> None:
    """The standby first (it starts at once), then the primary, which promotes itself once b answers."""
    assert_clean(b.gt("start"), 0)
    started = a.gt("start")
    assert_clean(started, 0)
    assert "cluster: the primary at epoch 2, takes writes" in started.stdout
    a.query("CREATE TABLE beads (id INT PRIMARY KEY)")
    wait_until(lambda: b.answers("SELECT COUNT(*) FROM beads") is not None, "the table on the standby")


@contextlib.contextmanager
def cleaned_up(*nodes: Node) -> Iterator[None]:
    """Every server of these towns is stopped afterwards, whatever happened."""
    try:
        yield
    finally:
        for node in nodes:
            cleanup_town(node.t)


@contextlib.contextmanager
def started_pair(tmp_path: Path, ack: int = 0, fence: float = 30) -> Iterator[tuple[Node, Node]]:
    a, b = pair(tmp_path, ack=ack, fence=fence)
    with cleaned_up(a, b):
        start_pair(a, b)
        yield a, b


@pytest.fixture
def cluster(tmp_path: Path, dolt_binary: Path) -> Iterator[tuple[Node, Node]]:
    with started_pair(tmp_path) as nodes:
        yield nodes


def rows(node: Node) -> list[int]:
    return [row[0] for row in node.query("SELECT id FROM beads ORDER BY id")]


def refuses_writes(node: Node) -> bool:
    try:
        node.query("INSERT INTO beads VALUES (-1)")
    except pymysql.err.MySQLError as exc:
        return "read only" in str(exc) or "read-only" in str(exc)
    node.query("DELETE FROM beads WHERE id = -1")
    return False


def refuses_writes_anywhere(node: Node) -> bool:
    try:
        node.query("CREATE DATABASE fenced_probe", None)
    except pymysql.err.MySQLError as exc:
        return "read only" in str(exc)
    return False


def acknowledged_writer(node: Node, acknowledged: list[int], first: int) -> threading.Thread:
    """Writes rows from `first` on until the server goes; a row counts as acknowledged when its
    commit returned with no replication warning (ack_writes_timeout: the standby had it)."""

    def write() -> None:
        conn = node.t.connect("hq")
        try:
            for i in range(first, first + 100_000):
                with conn.cursor() as cur:
                    cur.execute("INSERT INTO beads VALUES (%s)", (i,))
                    cur.execute("SHOW WARNINGS")
                    if not cur.fetchall():
                        acknowledged.append(i)
        except pymysql.err.MySQLError:
            return
        finally:
            conn.close()

    thread = threading.Thread(target=write)
    thread.start()
    return thread


def kill_mid_write(node: Node, writes: int) -> list[int]:
    """Acknowledged writes on `node` until there are `writes`, then SIGKILL while they go on: the
    rows acknowledged."""
    acknowledged: list[int] = []
    writer = acknowledged_writer(node, acknowledged, 1)
    wait_until(lambda: len(acknowledged) >= writes, f"{writes} acknowledged writes on {node.name}")
    node.kill()
    writer.join(timeout=60)
    return acknowledged


def test_rows_written_on_the_primary_are_read_on_the_standby_which_refuses_writes(
    cluster: tuple[Node, Node],
) -> None:
    a, b = cluster
    a.query("INSERT INTO beads VALUES (1), (2)")
    wait_until(lambda: b.answers("SELECT id FROM beads ORDER BY id") == [(1,), (2,)], "replication to the standby")
    with pytest.raises(pymysql.err.MySQLError, match="read.only"):
        b.query("INSERT INTO beads VALUES (3)")
    status_a, status_b = a.gt("cluster-status"), b.gt("cluster-status")
    assert_clean(status_a, 0)
    assert status_a.stdout.startswith("role primary at epoch 2, takes writes") and "hq -> b: lag" in status_a.stdout
    assert status_b.stdout.startswith("role standby at epoch 2, read-only")
    assert "cluster:    primary at epoch 2, takes writes" in a.gt("status").stdout
    assert {k: a.status()[k] for k in ("role", "epoch", "writable", "fenced")} == {
        "role": "primary",
        "epoch": 2,
        "writable": True,
        "fenced": False,
    }
    assert {k: b.status()[k] for k in ("role", "epoch", "writable", "fenced")} == {
        "role": "standby",
        "epoch": 2,
        "writable": False,
        "fenced": False,
    }
    doctor = a.gt("doctor")
    assert (
        "ok   cluster: primary at epoch 2; one primary" in doctor.stdout
        and "ok   cluster b: is a standby at epoch 2" in doctor.stdout
    )
    status_b, doctor_b = b.gt("status"), b.gt("doctor")
    assert_clean(status_b, 0)
    assert_clean(doctor_b, 0)
    assert "READ-ONLY" in status_b.stdout and "warn health" not in doctor_b.stdout


def test_failover_is_refused_while_the_primary_is_alive_or_when_this_standby_cannot_know_it_is_caught_up(
    cluster: tuple[Node, Node],
) -> None:
    a, b = cluster
    alive = b.gt("failover")
    assert_clean(alive, 1)
    assert "peer a is alive and still the primary: demote it first" in alive.stderr
    a.kill()
    unknown = b.gt("failover")
    assert_clean(unknown, 1)
    assert "cannot know that this standby has every write" in unknown.stderr and "--force" in unknown.stderr
    assert b.role() == ("standby", 2)


# --- fencing -------------------------------------------------------------------------------------


def test_a_returning_old_primary_takes_no_write_it_would_lose_and_no_acknowledged_write_is_lost(
    tmp_path: Path, dolt_binary: Path
) -> None:
    """Issue 20, fault 1: A killed, B promoted, B down too, A started alone, then B back."""
    with started_pair(tmp_path, ack=5, fence=1) as (a, b):
        acknowledged = kill_mid_write(a, 20)
        assert_clean(b.gt("failover", "--force"), 0)
        assert b.role() == ("primary", 3)
        on_b: list[int] = []
        writer = acknowledged_writer(b, on_b, 1_000_000)  # B's standby (A) is down: warned, not acknowledged
        wait_until(
            lambda: b.answers("SELECT COUNT(*) FROM beads WHERE id >= 1000000") not in (None, [(0,)]), "B's rows"
        )
        b.kill()
        writer.join(timeout=60)
        b_rows = set(rows_of_stopped(b))
        returned = a.gt("start")  # the old primary, alone: it must not take writes B would discard
        assert_clean(returned, FENCED)
        assert "takes no writes: fenced: this server was the primary at epoch 2" in returned.stderr
        assert "peer b (127.0.0.1:" in returned.stderr and "gt-dolt failover --force" in returned.stderr
        assert a.role() == ("standby", 2) and refuses_writes(a)
        assert {k: a.status()[k] for k in ("role", "writable", "fenced")} == {
            "role": "standby",
            "writable": False,
            "fenced": True,
        }
        back = b.gt("start")  # B comes back: it was the primary at epoch 3, A answers at epoch 2
        assert_clean(back, 0)
        assert "cluster: the primary at epoch 4, takes writes" in back.stdout
        wait_until(lambda: a.answers("SELECT @@GLOBAL.dolt_cluster_role_epoch", None) == [(4,)], "A to follow B")
        wait_until(lambda: set(a.answers("SELECT id FROM beads") or []) == {(i,) for i in b_rows}, "A to catch up")
        final = set(rows(b))
        assert set(acknowledged) <= final, sorted(set(acknowledged) - final)[:10]
        assert final == b_rows  # nothing B wrote was discarded by A's return
        assert a.status()["fenced"] is False and a.gt("start").returncode == 0


def b_rows_so_far(node: Node) -> list[tuple]:
    return node.answers("SELECT id FROM beads WHERE id >= 1000000") or []


def rows_of_stopped(node: Node) -> list[int]:
    """A stopped town's rows, read with the Dolt CLI (no server answers)."""
    from gastown_tasks.ops.build.binary import find_dolt

    done = subprocess.run(
        [str(find_dolt()), "sql", "-r", "csv", "-q", "SELECT id FROM beads ORDER BY id"],
        cwd=node.t.town.rig_dir("hq"),
        env=dolt_env({"DOLT_ROOT_PATH": str(node.t.root / ".dolt-root")}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [int(line) for line in done.stdout.split()[1:]]


def test_both_servers_killed_and_restarted_together_end_with_one_primary_and_no_lost_write(
    tmp_path: Path, dolt_binary: Path
) -> None:
    with started_pair(tmp_path, ack=5) as (a, b):
        acknowledged = kill_mid_write(a, 20)
        b.kill()
        starts = [a.gt_popen("start"), b.gt_popen("start")]  # both hosts come back at once
        (a_out, a_err), (b_out, b_err) = (p.communicate(timeout=120) for p in starts)
        assert [p.returncode for p in starts] == [0, 0], a_err + b_err
        assert "cluster: the primary at epoch 3, takes writes" in a_out
        # B reports the epoch it saw: its own 2, or 3 if A's promotion reached it first
        assert re.search(r"cluster: a standby at epoch [23], read-only", b_out), b_out
        assert a.role() == ("primary", 3)
        wait_until(lambda: b.answers("SELECT @@GLOBAL.dolt_cluster_role_epoch", None) == [(3,)], "B to follow A")
        roles = sorted(node.role()[0] for node in (a, b))
        assert roles == ["primary", "standby"]
        survived = set(rows(a))
        assert set(acknowledged) <= survived, sorted(set(acknowledged) - survived)[:10]
        a.query("INSERT INTO beads VALUES (1000000)")
        wait_until(lambda: (1000000,) in (b.answers("SELECT id FROM beads") or []), "the new write on B")


@pytest.mark.parametrize("how", ["failover --force", "take_writes_alone"])
def test_a_lone_survivor_refuses_writes_until_failover_force_or_the_setting_says_take_them(
    tmp_path: Path, dolt_binary: Path, how: str
) -> None:
    with started_pair(tmp_path, fence=1) as (a, b):
        a.query("INSERT INTO beads VALUES (1)")
        wait_until(lambda: b.answers("SELECT id FROM beads") == [(1,)], "row 1 on B")
        b.kill()
        assert_clean(a.gt("stop"), 0)
        if how == "take_writes_alone":
            configure(a, "primary", b, fence=1, take_writes_alone=True)
            alone = a.gt("start")
            assert_clean(alone, 0)
            assert "take_writes_alone: no answer from peer b" in alone.stdout
            assert "cluster: the primary at epoch 3, takes writes; took writes alone" in alone.stdout
        else:
            fenced = a.gt("start")
            assert_clean(fenced, FENCED)
            assert "warning: the server runs but takes no writes: fenced: this server was the primary" in fenced.stderr
            assert "peer b (127.0.0.1:" in fenced.stderr and "does not answer" in fenced.stderr
            assert refuses_writes(a) and a.status()["fenced"] is True
            doctor = a.gt("doctor")
            assert "fail cluster: this server is fenced" in doctor.stdout and "failover --force" in doctor.stdout
            refused = a.gt("failover")
            assert_clean(refused, 1)
            assert "cannot know that this standby has every write" in refused.stderr
            forced = a.gt("failover", "--force")
            assert_clean(forced, 0)
            assert "this server is now the primary at epoch 3" in forced.stdout
        a.query("INSERT INTO beads VALUES (2)")
        assert rows(a) == [1, 2] and a.status()["writable"] is True
        assert_clean(b.gt("start"), 0)  # B returns as a standby and follows the higher epoch
        wait_until(lambda: b.answers("SELECT id FROM beads ORDER BY id") == [(1,), (2,)], "B to catch up")
        assert b.role() == ("standby", 3)


def test_a_fenced_server_is_promoted_by_start_again_or_by_watch_once_its_peer_answers(
    tmp_path: Path, dolt_binary: Path
) -> None:
    a, b = pair(tmp_path, fence=0.5)
    with cleaned_up(a, b):
        assert_clean(a.gt("start"), FENCED)  # a new cluster started primary first: it waits for b
        assert a.role() == ("standby", 1) and a.status()["fenced"] is True
        assert_clean(b.gt("start"), 0)
        watched = a.gt("watch", "--once")
        assert_clean(watched, 0)
        assert "taking the primary role at epoch 2" in watched.stdout
        assert a.role() == ("primary", 2) and a.status()["fenced"] is False
        again = a.gt("start")
        assert_clean(again, 0)
        assert "already running" in again.stdout and "cluster: the primary at epoch 2" in again.stdout
        restarted = a.gt("restart")  # a restart is a return too: fenced, then promoted at the next epoch
        assert_clean(restarted, 0)
        assert "cluster: the primary at epoch 3, takes writes" in restarted.stdout
        wait_until(lambda: b.answers("SELECT @@GLOBAL.dolt_cluster_role_epoch", None) == [(3,)], "B to follow A")


def test_of_three_a_returning_primary_waits_for_every_peer_not_for_most(tmp_path: Path, dolt_binary: Path) -> None:
    """Any peer may have been promoted by hand while the others were down: one standby answering is
    no proof, whatever the majority."""
    a, b, c = (Node(make_town(tmp_path / name), name, free_port()) for name in "abc")
    configure(a, "primary", b, c, fence=1)
    configure(b, "standby", a, c, fence=1)
    configure(c, "standby", a, b, fence=1)
    a.t.rig("hq")
    with cleaned_up(a, b, c):
        assert_clean(b.gt("start"), 0)
        assert_clean(c.gt("start"), 0)
        assert_clean(a.gt("start"), 0)
        a.query("CREATE TABLE beads (id INT PRIMARY KEY)")
        a.query("INSERT INTO beads VALUES (1)")
        for standby in (b, c):
            wait_until(lambda s=standby: s.answers("SELECT id FROM beads") == [(1,)], f"row 1 on {standby.name}")
        for node in (a, b, c):
            node.kill()
        assert_clean(b.gt("start"), 0)
        fenced = a.gt("start")
        assert_clean(fenced, FENCED)
        assert "peer c (127.0.0.1:" in fenced.stderr and "peer b" not in fenced.stderr
        assert a.role() == ("standby", 2) and refuses_writes(a)
        assert_clean(c.gt("start"), 0)
        again = a.gt("start")
        assert_clean(again, 0)
        assert "cluster: the primary at epoch 3, takes writes" in again.stdout
        a.query("INSERT INTO beads VALUES (2)")
        for standby in (b, c):
            wait_until(lambda s=standby: s.answers("SELECT id FROM beads ORDER BY id") == [(1,), (2,)], "row 2")
            assert standby.role() == ("standby", 3)


def test_two_servers_both_configured_primary_end_with_one_primary(tmp_path: Path, dolt_binary: Path) -> None:
    """Without fencing both bootstrapped primary at epoch 1 and Dolt made both detected_broken_config."""
    a, b = pair(tmp_path, fence=0.5)
    configure(b, "primary", a, fence=0.5)
    with cleaned_up(a, b):
        assert_clean(a.gt("start"), FENCED)
        started = b.gt("start")
        assert_clean(started, 0)
        assert "cluster: the primary at epoch 2, takes writes" in started.stdout
        wait_until(lambda: a.answers("SELECT @@GLOBAL.dolt_cluster_role_epoch", None) == [(2,)], "A to follow B")
        assert a.role() == ("standby", 2) and b.role() == ("primary", 2)
        assert_clean(a.gt("start"), 0)  # no longer fenced: its mark was for epoch 1
        assert_clean(a.gt("doctor"), 0)


# --- failover --------------------------------------------------------------------------------------


def test_with_acknowledged_writes_a_killed_primary_loses_no_acknowledged_write(
    tmp_path: Path, dolt_binary: Path
) -> None:
    with started_pair(tmp_path, ack=5) as (a, b):
        acknowledged = kill_mid_write(a, 30)
        forced = b.gt("failover", "--force")
        assert_clean(forced, 0)
        assert "this server is now the primary at epoch 3" in forced.stdout and "may lose" in forced.stdout
        survived = set(rows(b))
        assert set(acknowledged) <= survived, sorted(set(acknowledged) - survived)[:10]
        b.query("INSERT INTO beads VALUES (1000000)")  # writes go on, on the new primary
        assert 1000000 in rows(b)


def test_with_the_standby_down_writes_acknowledged_with_a_warning_are_what_a_failover_loses(
    tmp_path: Path, dolt_binary: Path
) -> None:
    """What docs/cluster.md says is lost: writes committed while no standby had them."""
    with started_pair(tmp_path, ack=1) as (a, b):
        a.query("INSERT INTO beads VALUES (1), (2), (3)")
        wait_until(lambda: b.answers("SELECT COUNT(*) FROM beads") == [(3,)], "rows 1-3 on the standby")
        assert_clean(b.gt("stop"), 0)
        warned = []
        conn = a.t.connect("hq")
        with conn.cursor() as cur:
            for i in (4, 5, 6):
                cur.execute("INSERT INTO beads VALUES (%s)", (i,))
                cur.execute("SHOW WARNINGS")
                warned += [(i, row[1]) for row in cur.fetchall()]
        conn.close()
        assert [code for _, code in warned] == [3024, 3024, 3024]  # "Timed out replication of commit"
        a.kill()
        assert_clean(b.gt("start"), 0)
        assert_clean(b.gt("failover", "--force"), 0)
        assert rows(b) == [1, 2, 3]  # 4-6 were committed on the old primary only: lost
        returned = a.gt("start")  # the old primary sees the higher epoch, stays a standby and discards them
        assert_clean(returned, 0)
        assert "peer b (127.0.0.1:" in returned.stdout and "is the primary at epoch 3" in returned.stdout
        wait_until(lambda: a.answers("SELECT id FROM beads ORDER BY id") == [(1,), (2,), (3,)], "A to converge")
        assert a.role() == ("standby", 3)


def test_the_old_primary_returns_as_a_standby_and_a_second_failover_goes_back(cluster: tuple[Node, Node]) -> None:
    a, b = cluster
    a.query("INSERT INTO beads VALUES (1)")
    wait_until(lambda: b.answers("SELECT COUNT(*) FROM beads") == [(1,)], "row 1 on the standby")
    a.kill()
    assert_clean(b.gt("failover", "--force"), 0)
    b.query("INSERT INTO beads VALUES (2)")
    assert_clean(a.gt("start"), 0)
    wait_until(lambda: a.answers("SELECT COUNT(*) FROM beads") == [(2,)], "the old primary to catch up")
    assert a.gt("cluster-status").stdout.startswith("role standby at epoch 3")
    assert b.gt("cluster-status").stdout.startswith("role primary at epoch 3")
    refused = a.gt("failover")
    assert_clean(refused, 1)
    demoted = b.gt("demote")
    assert_clean(demoted, 0)
    assert "this server is now standby at epoch 4" in demoted.stdout
    back = a.gt("failover")
    assert_clean(back, 0)
    assert "assuming the primary role at epoch 5" in back.stdout
    a.query("INSERT INTO beads VALUES (3)")
    wait_until(lambda: b.answers("SELECT COUNT(*) FROM beads") == [(3,)], "row 3 on the new standby")


def test_init_rig_on_the_primary_appears_on_the_standby(cluster: tuple[Node, Node]) -> None:
    a, b = cluster
    assert_clean(a.gt("init-rig", "gastown"), 0)
    wait_until(lambda: ("gastown",) in (b.answers("SHOW DATABASES", None) or []), "the new rig on the standby")
    refused = b.gt("init-rig", "other")
    assert_clean(refused, 1)
    assert "read only" in refused.stderr


@pytest.mark.parametrize("peer", ["a plain Dolt", "refuses our login"])
def test_failover_never_promotes_past_a_peer_it_cannot_know_even_with_force(
    tmp_path: Path, dolt_binary: Path, peer: str
) -> None:
    """A wrong sql_port (a server that is no member) or another password on the peer is not "the
    primary is gone": the primary may be alive there."""
    other = make_town(tmp_path / "other")
    b = Node(make_town(tmp_path / "b"), "b", free_port())
    configure(b, "standby", Node(other, "a", free_port()))
    fake = None
    try:
        if peer == "a plain Dolt":
            other.rig("hq")
            assert_clean(
                subprocess.run([*GT_DOLT, "start"], cwd=other.root, env=other.env(), capture_output=True, text=True), 0
            )
        else:
            fake = subprocess.Popen(
                [sys.executable, str(FAKES / "fake_mysql.py"), str(other.port), str(tmp_path / "capture"), "deny"],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert first_line(fake).strip() == "listening"
        assert_clean(b.gt("start"), 0)
        for args in (["failover"], ["failover", "--force"]):
            done = b.gt(*args)
            assert_clean(done, 1)
            said = "is not a member of this cluster" if peer == "a plain Dolt" else "refuses our login"
            assert said in done.stderr, done.stderr
        assert b.role()[0] == "standby"
        line = next(line for line in b.gt("doctor").stdout.splitlines() if line.split()[1:3] == ["cluster", "a:"])
        assert line.startswith("fail")
    finally:
        if fake is not None:
            end(fake)
        cleanup_town(other)
        cleanup_town(b.t)


class Forward:
    """A TCP port forward on loopback (as NAT or a container's published port would be): the only
    way to make a peer entry that no address check can see is this server itself."""

    def __init__(self, to_port: int) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.to_port = to_port
        self.closed = threading.Event()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.to_port), timeout=5)
            except OSError:
                client.close()  # nothing listens behind the forward: refused, as the port itself would be
                continue
            upstream.settimeout(None)
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self.pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed.set()
        self.server.close()


def test_a_peer_that_is_this_server_under_a_forwarded_port_is_named_and_never_promoted_past(
    tmp_path: Path, dolt_binary: Path
) -> None:
    a = Node(make_town(tmp_path / "a"), "a", free_port())
    a.t.rig("hq")
    forward = Forward(a.t.port)
    mirror = Node(TownFixture(a.t.town, a.t.settings.with_overrides(port=forward.port)), "b", free_port())
    with cleaned_up(a), contextlib.closing(forward):
        configure(a, "primary", mirror, fence=5)
        fenced = a.gt("start")  # it would wait for itself for ever: refused at once, naming why
        assert_clean(fenced, FENCED)
        assert f"peer b (127.0.0.1:{forward.port}) is this server itself (the same server_uuid)" in fenced.stderr
        for args in (["failover"], ["failover", "--force"]):
            done = a.gt(*args)
            assert_clean(done, 1)
            assert f"peer b (127.0.0.1:{forward.port}) is this server itself (the same server_uuid)" in done.stderr
        assert a.role() == ("standby", 1) and refuses_writes_anywhere(a)
        assert "fail cluster b: is this server itself" in a.gt("doctor").stdout


# --- the truth at start: a broken persisted state, and its repair -----------------------------------


def break_by_hand(node: Node, dolt: Path) -> None:
    """What an older gt-dolt allowed (issue 20, fault 2): the server started with a standby entry
    that is itself.  Dolt replicates to itself, sees two primaries at one epoch, and persists
    detected_broken_config in the town's .dolt-root."""
    own = node.t.root / "self.yaml"
    own.write_text(
        f"listener: {{host: 127.0.0.1, port: {node.t.port}}}\ndata_dir: {node.t.town.data_dir}\ncluster:\n"
        f"  standby_remotes:\n  - name: itself\n    remote_url_template: http://127.0.0.1:{node.remotesapi}/{{database}}\n"
        f"  bootstrap_role: primary\n  bootstrap_epoch: 1\n"
        f"  remotesapi: {{address: 127.0.0.1, port: {node.remotesapi}}}\n"
    )
    server = subprocess.Popen(
        [str(dolt), "sql-server", "--config", str(own)],
        cwd=node.t.town.data_dir,
        env=dolt_env({"DOLT_ROOT_PATH": str(node.t.root / ".dolt-root")}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        broken = [("detected_broken_config",)]
        wait_until(lambda: node.answers("SELECT @@GLOBAL.dolt_cluster_role", None) == broken, "Dolt to see itself")
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_broken_persisted_state_fails_start_with_exit_8_and_the_repair_doctor_names_works(
    tmp_path: Path, dolt_binary: Path
) -> None:
    with started_pair(tmp_path) as (a, b):
        a.query("INSERT INTO beads VALUES (1)")
        wait_until(lambda: b.answers("SELECT id FROM beads") == [(1,)], "row 1 on B")
        assert_clean(a.gt("stop"), 0)
        break_by_hand(a, dolt_binary)
        started = a.gt("start")  # the config is right now; the broken state is in .dolt-root
        assert_clean(started, BROKEN)
        assert "detected_broken_config at epoch 2" in started.stderr and "gt-dolt doctor" in started.stderr
        assert a.status()["role"] == "detected_broken_config" and a.status()["writable"] is False
        doctor = a.gt("doctor")
        assert_clean(doctor, 1)
        line = next(line for line in doctor.stdout.splitlines() if line.startswith("fail cluster:"))
        assert "detected_broken_config" in line and "-- fix:" in line and "gt-dolt failover on the server" in line
        from_b = b.gt("failover")  # the other way round names the broken peer and wants --force
        assert_clean(from_b, 1)
        assert "peer a (127.0.0.1:" in from_b.stdout and "is in Dolt's detected_broken_config" in from_b.stdout
        assert "whatever a wrote as a primary" in from_b.stderr and "detected_broken_config" in from_b.stderr
        repaired = a.gt("failover")  # the repair doctor names, on the server that should be the primary
        assert_clean(repaired, 0)
        assert "this server is now the primary at epoch 3" in repaired.stdout
        a.query("INSERT INTO beads VALUES (2)")
        wait_until(lambda: b.answers("SELECT id FROM beads ORDER BY id") == [(1,), (2,)], "B to follow A")
        assert b.role() == ("standby", 3)
        assert_clean(a.gt("doctor"), 0)


def test_a_clustered_server_keeps_its_own_dolt_root_in_the_town_and_backups_keep_the_role(
    cluster: tuple[Node, Node],
) -> None:
    a, _ = cluster
    config = a.t.root / ".dolt-root" / ".dolt" / "config_global.json"
    assert config.is_file() and config.parent.stat().st_mode & 0o777 == 0o700  # Dolt makes the file 0777
    assert_clean(a.gt("backup"), 0)
    kept = a.t.town.backup_dir / "dolt-root" / "config_global.json"
    assert kept.read_bytes() == config.read_bytes()


# --- configurations that can never work -----------------------------------------------------------


IMPOSSIBLE = {
    "a standby at 127.0.0.1 on our SQL port": ("127.0.0.1", "peer_api", "own_sql", "is this server itself"),
    "a standby at localhost on our remotesapi port": ("localhost", "own_api", "peer_sql", "is this server itself"),
    "a standby at ::ffff:127.0.0.1 on our ports": ("::ffff:127.0.0.1", "own_api", "own_sql", "is this server itself"),
    "a standby at 0.0.0.0 on our SQL port": ("0.0.0.0", "peer_api", "own_sql", "is this server itself"),
    "a standby at 127.0.0.2 on our remotesapi port": ("127.0.0.2", "own_api", "peer_sql", "is this server itself"),
    "remotesapi_port equal to the SQL port": ("127.0.0.1", "peer_api", "peer_sql", "also this server's SQL port"),
    "two standbys with one name": ("127.0.0.1", "peer_api", "peer_sql", "has that name already"),
    "two standbys at one address": ("127.0.0.1", "peer_api", "peer_sql", "is the same server"),
}


@pytest.mark.parametrize("case", sorted(IMPOSSIBLE))
def test_an_impossible_cluster_is_refused_before_anything_starts(tmp_path: Path, dolt_binary: Path, case: str) -> None:
    a, b = pair(tmp_path)
    host, api, sql, said = IMPOSSIBLE[case]
    ports = {"own_api": a.remotesapi, "own_sql": a.t.port, "peer_api": b.remotesapi, "peer_sql": b.t.port}
    entry = f"{{name: b, host: '{host}', remotesapi_port: {ports[api]}, sql_port: {ports[sql]}}}"
    entries = [entry]
    own_api = a.remotesapi
    if case == "remotesapi_port equal to the SQL port":
        own_api = a.t.port
    elif case == "two standbys with one name":
        entries.append("{name: B, host: 192.0.2.9, remotesapi_port: 50051, sql_port: 3307}")
    elif case == "two standbys at one address":
        entries.append(f"{{name: c, host: localhost, remotesapi_port: 50051, sql_port: {b.t.port}}}")
    a.t.root.joinpath("invoke.yaml").write_text(
        f"dolt:\n  port: {a.t.port}\n  cluster:\n    role: primary\n    remotesapi_port: {own_api}\n    standbys:\n"
        + "".join(f"      - {e}\n" for e in entries)
    )
    with cleaned_up(a):
        for command in ("start", "failover"):
            done = a.gt(command)
            assert_clean(done, 2)
            assert said in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert not a.t.servers() and not (a.t.root / ".dolt-root").exists()


def test_a_bad_cluster_setting_is_refused_before_anything_starts(tmp_path: Path, dolt_binary: Path) -> None:
    a, b = pair(tmp_path)
    with cleaned_up(a, b):
        a.t.root.joinpath("invoke.yaml").write_text(f"dolt:\n  port: {a.t.port}\n  cluster:\n    role: leader\n")
        done = a.gt("start")
        assert_clean(done, 2)
        assert "dolt.cluster.role" in done.stderr and not a.t.servers()
