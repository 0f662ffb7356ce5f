"""Dolt's own cluster replication, driven by gt-dolt: two towns on loopback, each with its own SQL and
remotesapi ports, a primary and a standby, real Dolt servers."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest

from conftest import FAKES, GT_DOLT, TownFixture, cleanup_town, first_line, free_port, make_town
from faultkit import assert_clean, end, kill_9, wait_until
from gastown_tasks.ops.runfiles import read_pid_file

TOWN_TASKS = "from invoke import Collection\nimport gastown_tasks\nns = Collection()\ngastown_tasks.add_dolt(ns)\n"


@dataclass
class Node:
    t: TownFixture
    name: str
    remotesapi: int

    def gt(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = self.t.env()
        env.pop("GT_DOLT_PORT")  # each town's invoke.yaml names its ports
        return subprocess.run(
            [*GT_DOLT, *args],
            cwd=self.t.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def query(self, sql: str, database: str | None = "hq") -> list[tuple]:
        return self.t.query(sql, database)

    def answers(self, sql: str, database: str | None = "hq") -> list[tuple] | None:
        try:
            return self.query(sql, database)
        except pymysql.err.MySQLError:
            return None


def configure(node: Node, role: str, peer: Node, ack: int = 0) -> None:
    node.t.root.joinpath("tasks.py").write_text(TOWN_TASKS)
    node.t.root.joinpath("invoke.yaml").write_text(
        f"dolt:\n  port: {node.t.port}\n  backup_max_age_hours: 0\n  cluster:\n    role: {role}\n    epoch: 1\n"
        f"    remotesapi_port: {node.remotesapi}\n    ack_writes_timeout: {ack}\n    standbys:\n"
        f"      - {{name: {peer.name}, host: 127.0.0.1, remotesapi_port: {peer.remotesapi}, sql_port: {peer.t.port}}}\n"
    )


def pair(tmp_path: Path, ack: int = 0) -> tuple[Node, Node]:
    a = Node(make_town(tmp_path / "a"), "a", free_port())
    b = Node(make_town(tmp_path / "b"), "b", free_port())
    configure(a, "primary", b, ack)
    configure(b, "standby", a, ack)
    a.t.rig("hq")
    return a, b


@pytest.fixture
def cluster(tmp_path: Path, dolt_binary: Path) -> Iterator[tuple[Node, Node]]:
    a, b = pair(tmp_path)
    try:
        assert_clean(a.gt("start"), 0)
        assert_clean(b.gt("start"), 0)
        a.query("CREATE TABLE beads (id INT PRIMARY KEY)")
        wait_until(lambda: b.answers("SELECT COUNT(*) FROM beads") is not None, "the table on the standby")
        yield a, b
    finally:
        cleanup_town(a.t)
        cleanup_town(b.t)


def rows(node: Node) -> list[int]:
    return [row[0] for row in node.query("SELECT id FROM beads ORDER BY id")]


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
    assert status_a.stdout.startswith("role primary at epoch 1") and "hq -> b: lag" in status_a.stdout
    assert status_b.stdout.startswith("role standby at epoch 1")
    assert "cluster:    primary at epoch 1" in a.gt("status").stdout
    doctor = a.gt("doctor")
    assert (
        "ok   cluster: primary at epoch 1; one primary" in doctor.stdout and "ok   cluster b: standby" in doctor.stdout
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
    kill_9(read_pid_file(a.t.town).pid or 0)
    unknown = b.gt("failover")
    assert_clean(unknown, 1)
    assert "cannot know that this standby has every write" in unknown.stderr and "--force" in unknown.stderr
    assert b.query("SELECT @@GLOBAL.dolt_cluster_role", None) == [("standby",)]


def test_with_acknowledged_writes_a_killed_primary_loses_no_acknowledged_write(
    tmp_path: Path, dolt_binary: Path
) -> None:
    a, b = pair(tmp_path, ack=5)
    try:
        assert_clean(a.gt("start"), 0)
        assert_clean(b.gt("start"), 0)
        a.query("CREATE TABLE beads (id INT PRIMARY KEY)")
        wait_until(lambda: b.answers("SELECT COUNT(*) FROM beads") is not None, "the table on the standby")
        acknowledged: list[int] = []
        stop = threading.Event()

        def writer() -> None:
            conn = a.t.connect("hq")
            try:
                for i in range(1, 100_000):
                    if stop.is_set():
                        return
                    with conn.cursor() as cur:
                        cur.execute("INSERT INTO beads VALUES (%s)", (i,))
                        cur.execute("SHOW WARNINGS")
                        if not cur.fetchall():
                            acknowledged.append(i)  # the commit returned with no replication warning
            except pymysql.err.MySQLError:
                return
            finally:
                conn.close()

        thread = threading.Thread(target=writer)
        thread.start()
        wait_until(lambda: len(acknowledged) >= 30, "acknowledged writes")
        kill_9(read_pid_file(a.t.town).pid or 0)  # mid-write
        stop.set()
        thread.join(timeout=60)
        forced = b.gt("failover", "--force")
        assert_clean(forced, 0)
        assert "this server is now the primary at epoch 2" in forced.stdout and "may lose" in forced.stdout
        survived = set(rows(b))
        assert set(acknowledged) <= survived, sorted(set(acknowledged) - survived)[:10]
        b.query("INSERT INTO beads VALUES (1000000)")  # writes go on, on the new primary
        assert 1000000 in rows(b)
    finally:
        cleanup_town(a.t)
        cleanup_town(b.t)


def test_with_the_standby_down_writes_acknowledged_with_a_warning_are_what_a_failover_loses(
    tmp_path: Path, dolt_binary: Path
) -> None:
    """What docs/cluster.md says is lost: writes committed while no standby had them."""
    a, b = pair(tmp_path, ack=1)
    try:
        assert_clean(a.gt("start"), 0)
        assert_clean(b.gt("start"), 0)
        a.query("CREATE TABLE beads (id INT PRIMARY KEY)")
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
        kill_9(read_pid_file(a.t.town).pid or 0)
        assert_clean(b.gt("start"), 0)
        assert_clean(b.gt("failover", "--force"), 0)
        assert rows(b) == [1, 2, 3]  # 4-6 were committed on the old primary only: lost
        assert_clean(a.gt("start"), 0)  # the old primary rejoins as a standby and discards them
        wait_until(lambda: a.answers("SELECT id FROM beads ORDER BY id") == [(1,), (2,), (3,)], "A to converge")
        assert a.query("SELECT @@GLOBAL.dolt_cluster_role, @@GLOBAL.dolt_cluster_role_epoch", None) == [("standby", 2)]
    finally:
        cleanup_town(a.t)
        cleanup_town(b.t)


def test_the_old_primary_returns_as_a_standby_and_a_second_failover_goes_back(cluster: tuple[Node, Node]) -> None:
    a, b = cluster
    a.query("INSERT INTO beads VALUES (1)")
    wait_until(lambda: b.answers("SELECT COUNT(*) FROM beads") == [(1,)], "row 1 on the standby")
    kill_9(read_pid_file(a.t.town).pid or 0)
    assert_clean(b.gt("failover", "--force"), 0)
    b.query("INSERT INTO beads VALUES (2)")
    assert_clean(a.gt("start"), 0)
    wait_until(lambda: a.answers("SELECT COUNT(*) FROM beads") == [(2,)], "the old primary to catch up")
    assert a.gt("cluster-status").stdout.startswith("role standby at epoch 2")
    assert b.gt("cluster-status").stdout.startswith("role primary at epoch 2")
    refused = a.gt("failover")
    assert_clean(refused, 1)
    demoted = b.gt("demote")
    assert_clean(demoted, 0)
    assert "this server is now standby at epoch 3" in demoted.stdout
    back = a.gt("failover")
    assert_clean(back, 0)
    assert "assuming the primary role at epoch 4" in back.stdout
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
        assert b.query("SELECT @@GLOBAL.dolt_cluster_role", None) == [("standby",)]
        line = next(line for line in b.gt("doctor").stdout.splitlines() if line.split()[1:3] == ["cluster", "a:"])
        assert line.startswith("fail")
    finally:
        if fake is not None:
            end(fake)
        cleanup_town(other)
        cleanup_town(b.t)


def test_two_servers_bootstrapped_primary_at_one_epoch_fail_doctor(tmp_path: Path, dolt_binary: Path) -> None:
    a, b = pair(tmp_path)
    configure(b, "primary", a)
    try:
        assert_clean(a.gt("start"), 0)
        assert_clean(b.gt("start"), 0)
        broken = [("detected_broken_config",)]
        wait_until(
            lambda: all(n.answers("SELECT @@GLOBAL.dolt_cluster_role", None) == broken for n in (a, b)),
            "both servers to notice the second primary (detected_broken_config)",
        )
        done = a.gt("doctor")
        assert_clean(done, 1)
        assert "fail cluster:" in done.stdout
    finally:
        cleanup_town(a.t)
        cleanup_town(b.t)


def test_a_clustered_server_keeps_its_own_dolt_root_in_the_town_and_backups_keep_the_role(
    cluster: tuple[Node, Node],
) -> None:
    a, _ = cluster
    config = a.t.root / ".dolt-root" / ".dolt" / "config_global.json"
    assert config.is_file() and config.parent.stat().st_mode & 0o777 == 0o700  # Dolt makes the file 0777
    assert_clean(a.gt("backup"), 0)
    kept = a.t.town.backup_dir / "dolt-root" / "config_global.json"
    assert kept.read_bytes() == config.read_bytes()


def test_a_bad_cluster_setting_is_refused_before_anything_starts(tmp_path: Path, dolt_binary: Path) -> None:
    a, b = pair(tmp_path)
    try:
        a.t.root.joinpath("invoke.yaml").write_text(f"dolt:\n  port: {a.t.port}\n  cluster:\n    role: leader\n")
        done = a.gt("start")
        assert_clean(done, 2)
        assert "dolt.cluster.role" in done.stderr and not a.t.servers()
    finally:
        cleanup_town(a.t)
        cleanup_town(b.t)
