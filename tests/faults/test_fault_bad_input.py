"""Case 14: bad rig names, ports and timeouts: a clear error, and nothing created or started."""

from __future__ import annotations

import pytest

from conftest import BAD_RIG_NAMES, TownFixture, tree
from faultkit import assert_clean
from gastown_tasks.ops.errors import RigError
from gastown_tasks.ops.rigs.rigadmin import init_rig
from gastown_tasks.ops.server import server

pytestmark = pytest.mark.faults


@pytest.mark.parametrize("name", BAD_RIG_NAMES.values(), ids=BAD_RIG_NAMES.keys())
def test_gt_dolt_init_rig_rejects_a_bad_name_and_creates_nothing(rigged_town: TownFixture, name: str) -> None:
    t = rigged_town
    before = tree(t.root)
    done = t.gt_dolt("init-rig", f"--name={name}")
    assert_clean(done, 2)  # a bad argument
    assert f"invalid rig name {name!r}" in done.stderr
    assert tree(t.root) == before
    assert not t.servers()


def test_init_rig_rejects_every_bad_name_while_the_server_runs_and_it_serves_nothing_new(
    rigged_town: TownFixture,
) -> None:
    t = rigged_town
    server.start(t.town, t.settings)
    before = t.query("SHOW DATABASES")
    for name in BAD_RIG_NAMES.values():
        with pytest.raises(RigError, match="invalid rig name"):
            init_rig(t.town, t.settings, name)
    assert t.query("SHOW DATABASES") == before


@pytest.mark.parametrize("name", ["x\n", "hq\n"], ids=["new-name", "name-of-an-existing-rig"])
def test_rig_name_with_a_trailing_newline_is_rejected(rigged_town: TownFixture, name: str) -> None:
    """`$` in a Python regex also matches before a final newline: a name must match in full.

    Fails today: ops/files/datadir.py RIG_NAME uses ^...$ with .match (fix: \\Z or fullmatch); the rig
    "x\\n" gets created as a folder whose name ends in a newline.
    """
    t = rigged_town
    before = tree(t.root)
    with pytest.raises(RigError, match="invalid rig name"):
        init_rig(t.town, t.settings, name)
    assert tree(t.root) == before


BAD_PORTS = ["abc", "0", "70000", "-5", "65536", "3307.5", " ", "\u00b3", "9" * 5000]


@pytest.mark.parametrize("port", BAD_PORTS, ids=lambda p: repr(p)[:12])
def test_bad_port_flag_is_a_config_error_exit_2_and_nothing_is_created(town: TownFixture, port: str) -> None:
    t = town
    t.rig("hq")
    before = tree(t.root)
    for command in ("start", "stop", "status", "restart"):
        done = t.gt_dolt(command, f"--port={port}")
        assert_clean(done, 2)
        assert "invalid port" in done.stderr and "1 to 65535" in done.stderr
    assert tree(t.root) == before
    assert not t.servers()


# A blank GT_DOLT_PORT counts as unset (Gas Town reads it so): it would mean the default 3307,
# which tests never touch.
@pytest.mark.parametrize("port", [p for p in BAD_PORTS if p.strip()], ids=lambda p: repr(p)[:12])
def test_bad_gt_dolt_port_variable_is_a_config_error_exit_2(rigged_town: TownFixture, port: str) -> None:
    t = rigged_town
    done = t.gt_dolt("start", GT_DOLT_PORT=port)
    assert_clean(done, 2)
    assert "invalid port" in done.stderr and "GT_DOLT_PORT" in done.stderr
    assert not t.servers()


BAD_TIMEOUTS = ["-1", "-0.5", "abc", "nan", "inf", "-inf"]


@pytest.mark.parametrize("command", ["start", "stop", "restart"])
def test_bad_timeout_is_a_config_error_and_a_running_server_is_left_as_it_was(
    rigged_town: TownFixture, command: str
) -> None:
    t = rigged_town
    started = server.start(t.town, t.settings)
    for timeout in BAD_TIMEOUTS:
        done = t.gt_dolt(command, f"--timeout={timeout}")
        assert_clean(done, 2)
        assert "timeout" in done.stderr and "0 or more" in done.stderr
        assert [p.pid for p in t.servers()] == [started.pid]


def test_bad_timeout_when_stopped_starts_nothing(rigged_town: TownFixture) -> None:
    t = rigged_town
    done = t.gt_dolt("start", "--timeout", "-1")
    assert_clean(done, 2)
    assert not t.servers() and not t.town.pid_file.exists()
