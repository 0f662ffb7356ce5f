"""Safe by default on the network: no open bind without a password, no socket in /tmp, no secret in
the server's environment, IPv6 addresses bracketed."""

from __future__ import annotations

import psutil
import pymysql
import pytest

from conftest import TownFixture
from faultkit import assert_clean
from gastown_tasks.ops.files.runfiles import read_pid_file
from gastown_tasks.ops.server import server
from gastown_tasks.ops.settings import resolve_settings

pytestmark = pytest.mark.hostile


def test_binding_beyond_loopback_without_a_password_is_refused_naming_the_setting(rigged_town: TownFixture) -> None:
    t = rigged_town
    done = t.gt_dolt("start", GT_DOLT_HOST="0.0.0.0")
    assert_clean(done, 2)
    assert "allow_passwordless_bind" in done.stderr and "password" in done.stderr
    assert not t.servers() and not t.town.pid_file.exists()


def test_localhost_is_127_0_0_1_so_dolt_opens_no_socket_in_tmp(rigged_town: TownFixture) -> None:
    t = rigged_town
    assert_clean(t.gt_dolt("start", GT_DOLT_HOST="localhost"), 0)
    pid = read_pid_file(t.town).pid
    assert pid is not None
    assert '  host: "127.0.0.1"' in t.town.config_file.read_text()
    sockets = [c.laddr for c in psutil.Process(pid).net_connections(kind="unix") if c.laddr]
    assert sockets == [], sockets
    assert "S=" not in t.town.log_file.read_text()  # Dolt names its socket at start when it opens one


def test_the_server_environment_holds_no_password(rigged_town: TownFixture) -> None:
    t = rigged_town
    server.start(t.town, t.settings)
    t.query("ALTER USER 'root'@'localhost' IDENTIFIED BY 's3cret'")
    env = {"GT_DOLT_PASSWORD": "s3cret", "INVOKE_DOLT_PASSWORD": "s3cret", "BEADS_DOLT_PASSWORD": "s3cret"}
    try:
        restarted = t.gt_dolt("restart", **env)
        assert_clean(restarted, 0)
        pid = read_pid_file(t.town).pid
        assert pid is not None
        environ = psutil.Process(pid).environ()
        assert not [key for key, value in environ.items() if "s3cret" in value], sorted(environ)
    finally:
        conn = pymysql.connect(host="127.0.0.1", port=t.port, user="root", password="s3cret", autocommit=True)
        with conn.cursor() as cur:
            cur.execute("ALTER USER 'root'@'localhost' IDENTIFIED BY ''")
        conn.close()


@pytest.mark.parametrize(
    ("host", "address"),
    [("::1", "[::1]:3307"), ("[::1]", "[::1]:3307"), ("127.0.0.1", "127.0.0.1:3307"), ("localhost", "127.0.0.1:3307")],
)
def test_ipv6_hosts_are_bracketed_in_addresses_and_connection_strings(host: str, address: str) -> None:
    settings = resolve_settings(environ={}, host=host)
    assert settings.address == address
    assert settings.connection_string == f"mysql://root@{address}/"


def test_a_server_on_ipv6_loopback_starts_answers_and_its_shell_connects(rigged_town: TownFixture) -> None:
    t = rigged_town
    started = t.gt_dolt("start", GT_DOLT_HOST="::1")
    assert_clean(started, 0)
    assert f"on [::1]:{t.port}" in started.stdout
    done = t.gt_dolt("sql", "-q", "SELECT 40 + 2", GT_DOLT_HOST="::1")
    assert_clean(done, 0)
    assert "42" in done.stdout
    assert_clean(t.gt_dolt("stop", GT_DOLT_HOST="::1"), 0)
