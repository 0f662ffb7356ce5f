"""Remote mode: a town that uses a server on another host.  The other host is a network namespace
this test makes (a veth pair with its own 10.x addresses); its server listens there, with a password.
Test traffic goes only to that namespace's address and to loopback."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import GT_DOLT, TownFixture, cleanup_town, free_port, make_town
from faultkit import assert_clean, wait_until
from gastown_tasks.ops.build.binary import dolt_env

PASSWORD = "remote-s3cret"
IP = shutil.which("ip") or "/usr/sbin/ip"


pytestmark = pytest.mark.needs_root("makes a network namespace and a veth pair for the remote host")


@dataclass
class Remote:
    namespace: str
    address: str  # the namespace's address, reachable from here over the veth pair
    town: TownFixture

    def inside(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """gt-dolt run on the remote host: inside the namespace, in the remote town."""
        environ = {
            **os.environ,
            "GT_DOLT_HOST": self.address,
            "GT_DOLT_PORT": str(self.town.port),
            "GT_DOLT_PASSWORD": PASSWORD,
            **env,
        }
        return subprocess.run(
            [IP, "netns", "exec", self.namespace, *GT_DOLT, *args],
            cwd=self.town.root,
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )


def _ip(*args: str) -> None:
    subprocess.run([IP, *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def remote(tmp_path: Path, dolt_binary: Path) -> Iterator[Remote]:
    tag = secrets.token_hex(3)
    namespace, here, there = f"gt{tag}", f"gt{tag}a", f"gt{tag}b"
    octet = 200 + secrets.randbelow(50)
    subnet = f"10.{octet}.{secrets.randbelow(250)}"
    _ip("netns", "add", namespace)
    town = make_town(tmp_path / "remote-host")
    try:
        _ip("link", "add", here, "type", "veth", "peer", "name", there)
        _ip("link", "set", there, "netns", namespace)
        _ip("addr", "add", f"{subnet}.1/30", "dev", here)
        _ip("link", "set", here, "up")
        _ip("netns", "exec", namespace, IP, "addr", "add", f"{subnet}.2/30", "dev", there)
        _ip("netns", "exec", namespace, IP, "link", "set", there, "up")
        _ip("netns", "exec", namespace, IP, "link", "set", "lo", "up")
        town.rig("hq")
        users = (
            f"CREATE USER 'root'@'%' IDENTIFIED BY '{PASSWORD}'; GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION; "
            f"ALTER USER 'root'@'localhost' IDENTIFIED BY '{PASSWORD}'"
        )
        subprocess.run(
            [str(dolt_binary), "sql", "-q", users],
            cwd=town.town.data_dir,
            env=dolt_env(),
            check=True,
            capture_output=True,
            timeout=60,
        )
        node = Remote(namespace, f"{subnet}.2", town)
        started = node.inside("start")
        assert_clean(started, 0)
        yield node
    finally:
        subprocess.run(
            [IP, "netns", "exec", namespace, *GT_DOLT, "stop", "--force"],
            cwd=town.root,
            env={**os.environ, "GT_DOLT_PORT": str(town.port)},
            capture_output=True,
            timeout=120,
        )
        cleanup_town(town)
        subprocess.run([IP, "netns", "del", namespace], capture_output=True, timeout=30)
        subprocess.run([IP, "link", "del", here], capture_output=True, timeout=30)


def here(local: TownFixture, remote: Remote, *args: str, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    """gt-dolt in the local town, configured with the remote host's address."""
    env = {
        **local.env(),
        "GT_DOLT_HOST": remote.address,
        "GT_DOLT_PORT": str(remote.town.port),
        "GT_DOLT_PASSWORD": password,
    }
    return subprocess.run(
        [*GT_DOLT, *args],
        cwd=local.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def local(tmp_path: Path) -> Iterator[TownFixture]:
    town = make_town(tmp_path / "local")
    yield town
    cleanup_town(town)


def test_status_list_sql_init_rig_and_doctor_work_against_a_remote_server(local: TownFixture, remote: Remote) -> None:
    status = here(local, remote, "status", "--json")
    assert_clean(status, 0)
    data = json.loads(status.stdout)
    assert data["remote"] is True and data["running"] is True and data["databases"] == ["hq"]
    assert data["connection"] == f"mysql://root:***@{remote.address}:{remote.town.port}/"
    text = here(local, remote, "status")
    assert text.stdout.startswith(f"remote dolt sql-server at {remote.address}:{remote.town.port} answers")
    created = here(local, remote, "init-rig", "gastown")
    assert_clean(created, 0)
    listed = json.loads(here(local, remote, "list", "--json").stdout)
    assert [row["name"] for row in listed] == ["gastown", "hq"] and all(row["remote"] for row in listed)
    query = here(local, remote, "sql", "-q", "SELECT DATABASE() AS db, 6 * 7 AS answer")
    assert_clean(query, 0)
    assert "| hq " in query.stdout and "42" in query.stdout
    doctor = here(local, remote, "doctor")
    assert_clean(doctor, 0)
    assert "ok   reachable" in doctor.stdout and "ms for a query" in doctor.stdout
    assert not local.town.daemon_dir.exists() and not local.town.data_dir.exists()  # no local run files


@pytest.mark.parametrize("command", ["start", "stop", "restart", "migrate", "watch", "restore"])
def test_commands_that_manage_a_server_refuse_a_remote_one(local: TownFixture, remote: Remote, command: str) -> None:
    args = [command, "--rig", "hq"] if command == "restore" else [command]
    done = here(local, remote, *args)
    assert_clean(done, 5)
    assert f"the server at {remote.address}:{remote.town.port} is remote" in done.stderr
    assert "manage it on its host" in done.stderr
    assert not local.town.daemon_dir.exists()


def test_refused_credentials_and_an_unreachable_server_are_told_apart(local: TownFixture, remote: Remote) -> None:
    refused = here(local, remote, "status", password="wrong")
    assert_clean(refused, 6)
    assert "refuses our credentials" in refused.stdout and "GT_DOLT_PASSWORD" in refused.stdout
    assert_clean(remote.inside("stop"), 0)
    gone = here(local, remote, "status")
    assert_clean(gone, 3)
    assert "is not reachable" in gone.stdout


def test_a_remote_town_sees_a_clustered_primary(local: TownFixture, remote: Remote) -> None:
    """The remote server as a cluster primary (its standby not up, so it takes writes alone after
    its fence, as dolt.cluster.take_writes_alone allows): a remote town sees its role."""
    tasks = "from invoke import Collection\nimport gastown_tasks\nns = Collection()\ngastown_tasks.add_dolt(ns)\n"
    remote.town.root.joinpath("tasks.py").write_text(tasks)
    remote.town.root.joinpath("invoke.yaml").write_text(
        f"dolt:\n  cluster:\n    role: primary\n    epoch: 1\n    remotesapi_port: {free_port()}\n"
        f"    remotesapi_host: {remote.address}\n    fence_timeout: 0.5\n    take_writes_alone: true\n    standbys:\n"
        f"      - {{name: absent, host: {remote.address}, remotesapi_port: {free_port()}, sql_port: {free_port()}}}\n"
    )
    assert_clean(remote.inside("restart"), 0)
    wait_until(lambda: here(local, remote, "status").returncode == 0, "the remote server to answer again")
    status = json.loads(here(local, remote, "status", "--json").stdout)
    assert status["cluster"]["role"] == "primary" and status["cluster"]["epoch"] == 2
    assert status["cluster"]["writable"] is True
    assert "ok   cluster: it is primary at epoch 2" in here(local, remote, "doctor").stdout
    assert "role primary at epoch 2, takes writes" in here(local, remote, "cluster-status").stdout
